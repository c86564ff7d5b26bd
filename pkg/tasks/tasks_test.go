package tasks

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hoctl/hoctl/pkg/inventory"
	"github.com/hoctl/hoctl/pkg/iostreams"
	"github.com/hoctl/hoctl/pkg/sshexec"
	"github.com/hoctl/hoctl/pkg/sshexec/sshexectest"
)

const inv5 = `
hosts:
  h1: {address: 10.0.0.1, roles: [web]}
  h2: {address: 10.0.0.2, roles: [web]}
  h3: {address: 10.0.0.3, roles: [web]}
  h4: {address: 10.0.0.4, roles: [web]}
  db: {address: 10.0.0.9}
`

// fakeHosts answers shell commands by a function of host and command
// (with the secrets' variables expanded, as the host's shell would), and
// records every command in order.
type fakeHosts struct {
	*sshexectest.Hosts
	answer func(host, cmd string) (string, int)
}

func newFakeHosts() *fakeHosts {
	f := &fakeHosts{Hosts: &sshexectest.Hosts{}}
	f.Answer = func(host string, c sshexec.Cmd) sshexectest.Reply {
		if f.answer == nil {
			return sshexectest.Reply{}
		}
		script := c.Script
		for k, v := range c.Secrets {
			script = strings.ReplaceAll(script, `"$`+k+`"`, v)
		}
		out, code := f.answer(host, script)
		return sshexectest.Reply{Stdout: out, Code: code}
	}
	return f
}

// commands are the scripts run, as "host: script".
func (f *fakeHosts) commands() []string {
	var out []string
	for _, c := range f.Calls() {
		out = append(out, c.Host+": "+c.Cmd.Script)
	}
	return out
}

type fixture struct {
	inv   *inventory.Inventory
	hosts *fakeHosts
	eng   *Engine
	out   *strings.Builder
	state string
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	inv, err := inventory.Parse("inv.yaml", []byte(inv5))
	if err != nil {
		t.Fatal(err)
	}
	fh := newFakeHosts()
	ios, _, _, _ := iostreams.Test()
	out := &strings.Builder{}
	ios.ErrOut = &lockedBuf{w: out}
	state := t.TempDir()
	eng := &Engine{
		Env:      &Env{Inventory: inv, Connect: fh.Connect},
		Reporter: NewReporter(ios, nil),
		StateDir: state,
		Yes:      true,
		Command:  "hoctl test",
	}
	return &fixture{inv: inv, hosts: fh, eng: eng, out: out, state: state}
}

type lockedBuf struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

func (fx *fixture) runbook(t *testing.T, src string) *Runbook {
	t.Helper()
	rb, err := ParseRunbook("rb.yaml", []byte(src), fx.inv, LoadOptions{Getenv: func(string) string { return "" }})
	if err != nil {
		t.Fatal(err)
	}
	return rb
}

func (fx *fixture) journal(t *testing.T, id string) []Record {
	t.Helper()
	recs, err := ReadJournal(fx.state, id)
	if err != nil {
		t.Fatal(err)
	}
	return recs
}

func TestStepsRunInOrderWithChecks(t *testing.T) {
	fx := newFixture(t)
	rb := fx.runbook(t, `
name: order
steps:
  - title: one
    hosts: db
    before: check-one
    run: do-one
    after: verify-one
  - title: two
    hosts: db
    run: do-two
`)
	id, err := fx.eng.Run(context.Background(), rb, RunOptions{})
	if err != nil {
		t.Fatal(err)
	}
	// The plan runs the before checks once, then the run does.
	want := []string{"db: check-one", "db: check-one", "db: do-one", "db: verify-one", "db: do-two"}
	if got := fx.hosts.commands(); !slices.Equal(got, want) {
		t.Fatalf("commands %q, want %q", got, want)
	}
	s := Summarize(id, fx.journal(t, id))
	if s.Status != StatusOK || s.Done[1] != StatusOK || s.Done[2] != StatusOK || s.Command != "hoctl test" {
		t.Fatalf("summary %+v", s)
	}
}

func TestParallelHostsAndSerialBatches(t *testing.T) {
	fx := newFixture(t)
	fx.hosts.Delay = 50 * time.Millisecond
	rb := fx.runbook(t, "name: p\nsteps:\n  - {title: all, hosts: web, run: x}\n")
	if _, err := fx.eng.Run(context.Background(), rb, RunOptions{}); err != nil {
		t.Fatal(err)
	}
	if p := fx.hosts.Peak(); p != 4 {
		t.Fatalf("peak concurrency %d, want 4 hosts at once", p)
	}
	fx = newFixture(t)
	fx.hosts.Delay = 50 * time.Millisecond
	rb = fx.runbook(t, "name: s\nsteps:\n  - {title: all, hosts: web, run: x, serial: 2}\n")
	if _, err := fx.eng.Run(context.Background(), rb, RunOptions{}); err != nil {
		t.Fatal(err)
	}
	if p := fx.hosts.Peak(); p != 2 {
		t.Fatalf("peak concurrency %d, want batches of 2", p)
	}
}

func TestMaxFailAndStopOnFailure(t *testing.T) {
	fx := newFixture(t)
	fx.hosts.answer = func(host, cmd string) (string, int) {
		if cmd == "x" && (host == "h1" || host == "h2") {
			return "", 1
		}
		return "", 0
	}
	// serial 1: h1 fails (1 ≤ max_fail 1, go on), h2 fails (2 > 1): h3 and
	// h4 never run, and the next step does not either.
	rb := fx.runbook(t, "name: m\nsteps:\n  - {title: all, hosts: web, run: x, serial: 1, max_fail: 1}\n  - {title: next, hosts: db, run: y}\n")
	_, err := fx.eng.Run(context.Background(), rb, RunOptions{})
	var se *StepError
	if !errors.As(err, &se) || se.Step != 1 {
		t.Fatalf("err = %v", err)
	}
	got := fx.hosts.commands()
	if !slices.Equal(got, []string{"h1: x", "h2: x"}) {
		t.Fatalf("commands %q", got)
	}
	// Within max_fail the step succeeds.
	fx = newFixture(t)
	fx.hosts.answer = func(host, cmd string) (string, int) {
		if host == "h3" {
			return "", 1
		}
		return "", 0
	}
	rb = fx.runbook(t, "name: m\nsteps:\n  - {title: all, hosts: web, run: x, max_fail: 1}\n  - {title: next, hosts: db, run: y}\n")
	if _, err := fx.eng.Run(context.Background(), rb, RunOptions{}); err != nil {
		t.Fatalf("one failure within max_fail 1: %v", err)
	}
}

func TestBeforeRefusalRunsNothing(t *testing.T) {
	fx := newFixture(t)
	fx.hosts.answer = func(host, cmd string) (string, int) {
		if cmd == "ready?" && host == "h3" {
			return "", 1
		}
		return "", 0
	}
	rb := fx.runbook(t, "name: r\nsteps:\n  - {title: go, hosts: web, before: 'ready?', run: change}\n")
	// Failing when planned: refused there, without asking (Confirm would
	// fail the test) and without journaling a run.
	fx.eng.Yes = false
	fx.eng.Confirm = func(_ context.Context, q string) (bool, error) {
		t.Fatalf("asked %q although a before check fails", q)
		return false, nil
	}
	id, err := fx.eng.Run(context.Background(), rb, RunOptions{})
	var re *RefusedError
	if !errors.As(err, &re) || !slices.Equal(re.Hosts, []string{"h3"}) || !re.AtPlan || id != "" {
		t.Fatalf("id %q err = %v", id, err)
	}
	if runs, _ := History(fx.state); len(runs) != 0 {
		t.Fatalf("a refused plan was journaled: %+v", runs[0])
	}
	for _, c := range fx.hosts.commands() {
		if strings.HasSuffix(c, "change") {
			t.Fatalf("an action ran after a refusal: %q", fx.hosts.commands())
		}
	}
	// Passing when planned, failing when the step starts: the run was
	// journaled, and its step refused.
	fx = newFixture(t)
	var calls atomic.Int64
	fx.hosts.answer = func(host, cmd string) (string, int) {
		if cmd == "ready?" && host == "h3" && calls.Add(1) > 1 {
			return "", 1
		}
		return "", 0
	}
	id, err = fx.eng.Run(context.Background(), fx.runbook(t, "name: r\nsteps:\n  - {title: go, hosts: web, before: 'ready?', run: change}\n"), RunOptions{})
	if !errors.As(err, &re) || re.AtPlan {
		t.Fatalf("err = %v", err)
	}
	if s := Summarize(id, fx.journal(t, id)); s.Status != StatusRefused || s.FailedStep != 1 {
		t.Fatalf("summary %+v", s)
	}
}

func TestAfterFailureIsUnverifiedAndUndoRuns(t *testing.T) {
	fx := newFixture(t)
	var tries atomic.Int64
	fx.hosts.answer = func(host, cmd string) (string, int) {
		if cmd == "healthy?" {
			tries.Add(1)
			return "not yet", 1
		}
		return "", 0
	}
	rb := fx.runbook(t, "name: u\nsteps:\n  - {title: deploy, hosts: db, run: change, after: 'healthy?', undo: revert, retries: 2, retry_delay: 10ms}\n")
	id, err := fx.eng.Run(context.Background(), rb, RunOptions{})
	var ue *UnverifiedError
	if !errors.As(err, &ue) {
		t.Fatalf("err = %v", err)
	}
	if tries.Load() != 3 {
		t.Fatalf("after check tried %d times, want 1 + 2 retries", tries.Load())
	}
	if got := fx.hosts.commands(); got[len(got)-1] != "db: revert" {
		t.Fatalf("undo did not run last: %q", got)
	}
	recs := fx.journal(t, id)
	s := Summarize(id, recs)
	if s.Status != StatusUnverified || !strings.Contains(s.Error, "changed but not verified") {
		t.Fatalf("summary %+v", s)
	}
}

func TestContinueOnError(t *testing.T) {
	fx := newFixture(t)
	fx.hosts.answer = func(host, cmd string) (string, int) {
		if cmd == "flaky" {
			return "", 2
		}
		return "", 0
	}
	rb := fx.runbook(t, "name: c\nsteps:\n  - {title: a, hosts: db, run: flaky, continue_on_error: true}\n  - {title: b, hosts: db, run: then}\n")
	id, err := fx.eng.Run(context.Background(), rb, RunOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got := fx.hosts.commands(); !slices.Equal(got, []string{"db: flaky", "db: then"}) {
		t.Fatalf("%q", got)
	}
	if s := Summarize(id, fx.journal(t, id)); s.Done[1] != "continued" || s.Status != StatusOK {
		t.Fatalf("%+v", s)
	}
}

func TestNoTerminalNoYesRefusesBeforeAnyChange(t *testing.T) {
	fx := newFixture(t)
	fx.eng.Yes = false
	fx.eng.Confirm = nil
	rb := fx.runbook(t, "name: c\nsteps:\n  - {title: a, hosts: db, before: check, run: change}\n")
	_, err := fx.eng.Run(context.Background(), rb, RunOptions{})
	var ce *ConfirmError
	if !errors.As(err, &ce) {
		t.Fatalf("err = %v", err)
	}
	if got := fx.hosts.commands(); !slices.Equal(got, []string{"db: check"}) {
		t.Fatalf("only the plan's check may run: %q", got)
	}
	if runs, _ := History(fx.state); len(runs) != 0 {
		t.Fatalf("a refused run must not be journaled as started: %d runs", len(runs))
	}
	// Saying no is the same; yes runs it; per-step confirm asks again.
	var asked []string
	fx.eng.Confirm = func(_ context.Context, q string) (bool, error) { asked = append(asked, q); return len(asked) == 1, nil }
	rb = fx.runbook(t, "name: c\nsteps:\n  - {title: a, hosts: db, run: one}\n  - {title: b, hosts: db, run: two, confirm: true}\n")
	_, err = fx.eng.Run(context.Background(), rb, RunOptions{})
	if !errors.As(err, &ce) || len(asked) != 2 || !strings.Contains(asked[1], "Step 2: b") {
		t.Fatalf("err = %v asked %q", err, asked)
	}
	if got := fx.hosts.commands(); slices.Contains(got, "db: two") {
		t.Fatalf("step 2 ran without confirmation: %q", got)
	}
}

func TestLocalLockExcludesSecondRun(t *testing.T) {
	fx := newFixture(t)
	l, err := AcquireLocal(fx.state, "storage", LockHolder{PID: 4242, Run: "R1", Start: time.Now()})
	if err != nil {
		t.Fatal(err)
	}
	rb := fx.runbook(t, "name: l\nlock: storage\nsteps:\n  - {title: a, hosts: db, run: change}\n")
	_, err = fx.eng.Run(context.Background(), rb, RunOptions{})
	var le *LockedError
	if !errors.As(err, &le) || le.Holder.PID != 4242 || !strings.Contains(err.Error(), "run R1") {
		t.Fatalf("err = %v", err)
	}
	if slices.Contains(fx.hosts.commands(), "db: change") {
		t.Fatal("ran despite the lock")
	}
	_ = l.Release()
	if _, err := fx.eng.Run(context.Background(), rb, RunOptions{}); err != nil {
		t.Fatalf("after release: %v", err)
	}
}

type fakeClusterLock struct{ lost chan struct{} }

func (f *fakeClusterLock) Lost() <-chan struct{} { return f.lost }
func (f *fakeClusterLock) Release() error        { return nil }

func TestLostClusterLockStopsBeforeNextStep(t *testing.T) {
	fx := newFixture(t)
	cl := &fakeClusterLock{lost: make(chan struct{})}
	fx.eng.ClusterLock = func(context.Context, string, string) (ClusterLock, error) { return cl, nil }
	fx.hosts.answer = func(host, cmd string) (string, int) {
		if cmd == "one" {
			close(cl.lost) // the session is invalidated while step 1 runs
		}
		return "", 0
	}
	rb := fx.runbook(t, "name: l\nlock: fo\ncluster_lock: true\nsteps:\n  - {title: a, hosts: db, run: one}\n  - {title: b, hosts: db, run: two}\n")
	_, err := fx.eng.Run(context.Background(), rb, RunOptions{})
	if !errors.Is(err, ErrLockLost) {
		t.Fatalf("err = %v", err)
	}
	if slices.Contains(fx.hosts.commands(), "db: two") {
		t.Fatal("step 2 ran after the lock was lost")
	}
}

// A secret is in no command line (the host gets it beside the command),
// and neither the hoctl command line that gave it with --var nor output
// that prints it, in pieces or past the point where output is cut,
// brings it into the journal or the operator's view.
func TestSecretsNeverReachJournalOrOutput(t *testing.T) {
	const secret = "s3cr3t-value"
	// Any piece of it is a leak.
	leaks := func(s string) bool {
		return strings.Contains(s, "s3cr") || strings.Contains(s, "cr3t") || strings.Contains(s, "t-val")
	}
	for _, viaVar := range []bool{false, true} {
		fx := newFixture(t)
		// Output that is cut: the secret straddles the end of the head
		// kept, and comes again at the very end.
		pad := strings.Repeat("x", OutputHead-20)
		fx.hosts.answer = func(host, cmd string) (string, int) {
			return pad + cmd + strings.Repeat("y", 3*OutputTail) + cmd, 1
		}
		o := LoadOptions{Getenv: func(k string) string { return map[string]string{"MY_TOKEN": secret}[k] }}
		if viaVar {
			o = LoadOptions{Vars: map[string]string{"token": secret}}
			fx.eng.Command = "hoctl runbook run --var token=" + secret + " rb.yaml"
		}
		rb, err := ParseRunbook("rb.yaml", []byte("name: s\nsecrets: {token: MY_TOKEN}\nsteps:\n  - {title: a, hosts: db, run: 'curl -H X-Token:{{.Vars.token}} x'}\n"), fx.inv, o)
		if err != nil {
			t.Fatal(err)
		}
		fx.eng.Env.Secrets = rb.Secrets
		ios, _, stdout, _ := iostreams.Test()
		ios.ErrOut = &lockedBuf{w: fx.out}
		fx.eng.Reporter = NewReporter(ios, rb.Secrets)
		id, _ := fx.eng.Run(context.Background(), rb, RunOptions{})
		data, _ := os.ReadFile(filepath.Join(fx.state, "runs", id+".jsonl"))
		if leaks(string(data)) || !strings.Contains(string(data), `X-Token:\"$HOCTL_SECRET_token\"`) {
			t.Fatalf("journal leaks or lacks the reference:\n%s", data)
		}
		if !strings.Contains(string(data), "X-Token:***") || !strings.Contains(string(data), "bytes of output dropped") {
			t.Fatalf("journal lacks the redacted output or the truncation marker:\n%s", data)
		}
		if leaks(fx.out.String() + stdout.String()) {
			t.Fatalf("output leaks the secret:\n%s", fx.out)
		}
		if got := fx.hosts.commands(); len(got) != 1 || strings.Contains(got[0], secret) {
			t.Fatalf("the command line carries the secret: %q", got)
		}
		// The same run's events in --json.
		jsonIO, _, jsonOut, _ := iostreams.Test()
		jsonIO.JSON = true
		fx.eng.Reporter = NewReporter(jsonIO, rb.Secrets)
		_, _ = fx.eng.Run(context.Background(), rb, RunOptions{})
		if leaks(jsonOut.String()) || !strings.Contains(jsonOut.String(), "X-Token:***") {
			t.Fatalf("--json leaks or lacks the output:\n%s", jsonOut)
		}
	}
}

// Redaction as output streams catches a secret split across writes, one
// byte at a time or where two secrets overlap.
func TestRedactWriterAcrossWrites(t *testing.T) {
	for _, step := range []int{1, 2, 3, 7, 1000} {
		var b strings.Builder
		w := newRedactWriter(&b, []string{"abcdef", "cd", "zz"})
		in := "..abcdef..cd..abcd..zzz..abcdeabcdef"
		for i := 0; i < len(in); i += step {
			_, _ = w.Write([]byte(in[i:min(i+step, len(in))]))
		}
		w.Flush()
		if got, want := b.String(), "..***..***..ab***..***z..ab***e***"; got != want {
			t.Fatalf("step %d: got %q want %q", step, got, want)
		}
	}
}

// Values are pasted into commands only through q; the plan names every
// place that pastes one unquoted.
func TestTemplateQuotingAndUnquotedWarnings(t *testing.T) {
	fx := newFixture(t)
	rb, err := ParseRunbook("rb.yaml", []byte(`name: q
vars: {app: "x"}
secrets: {pw: PW}
steps:
  - {title: a, hosts: db, run: 'echo {{ .Vars.app | q }} {{ q .Vars.app }} {{ .Vars.pw }} {{ .Vars.pw | q }} on {{ .Host }}'}
  - {title: b, hosts: db, run: 'echo {{ .Vars.app }}', after: 'test {{ if .Vars.app }}{{ .HostInfo.User }}{{ end }}'}
`), fx.inv, LoadOptions{Vars: map[string]string{"app": "pa$$w0rd; `id` 'x'"}, Getenv: func(string) string { return "p w" }})
	if err != nil {
		t.Fatal(err)
	}
	got, _ := rb.Steps[0].Action.Describe(fx.inv.Host("db"))
	word := `'pa$$w0rd; ` + "`id`" + ` '\''x'\'''`
	want := `echo ` + word + ` ` + word + ` "$HOCTL_SECRET_pw" "$HOCTL_SECRET_pw" on db`
	if got != want {
		t.Fatalf("got  %s\nwant %s", got, want)
	}
	if len(rb.Warnings) != 2 || !strings.Contains(rb.Warnings[0], "step 2 run: {{.Vars.app}}") || !strings.Contains(rb.Warnings[1], "step 2 after: {{.HostInfo.User}}") {
		t.Fatalf("warnings: %q", rb.Warnings)
	}
	// What the shell makes of it: the value, intact, one word.
	out, err := exec.Command("sh", "-c", "printf '[%s]' "+word+" "+word).Output()
	if err != nil || string(out) != "[pa$$w0rd; `id` 'x'][pa$$w0rd; `id` 'x']" {
		t.Fatalf("shell read %q (%v)", out, err)
	}
}

func TestJournalEndsAtLastCompletedStepAndResume(t *testing.T) {
	fx := newFixture(t)
	fx.hosts.answer = func(host, cmd string) (string, int) {
		if cmd == "two" {
			return "", 1
		}
		return "", 0
	}
	rb := fx.runbook(t, "name: j\nsteps:\n  - {title: a, hosts: db, run: one}\n  - {title: b, hosts: db, before: pre-two, run: two}\n  - {title: c, hosts: db, run: three}\n")
	id, err := fx.eng.Run(context.Background(), rb, RunOptions{})
	if err == nil {
		t.Fatal("step 2 should fail")
	}
	s := Summarize(id, fx.journal(t, id))
	if s.NextStep() != 2 || s.Status != StatusFailed {
		t.Fatalf("%+v next %d", s, s.NextStep())
	}
	fx.hosts.answer = nil
	before := len(fx.hosts.commands())
	if _, err := fx.eng.Run(context.Background(), rb, RunOptions{ResumeID: id, From: s.NextStep()}); err != nil {
		t.Fatal(err)
	}
	// Resumed at step 2, re-running its before check; step 1 not again.
	got := fx.hosts.commands()[before:]
	want := []string{"db: pre-two", "db: pre-two", "db: two", "db: three"}
	if !slices.Equal(got, want) {
		t.Fatalf("resumed commands %q, want %q", got, want)
	}
	recs := fx.journal(t, id)
	s = Summarize(id, recs)
	if s.Status != StatusOK || s.Resumes != 1 {
		t.Fatalf("%+v", s)
	}
}

func TestInterruptedRunWithoutEndIsInterrupted(t *testing.T) {
	recs := []Record{
		{Type: "run_start", PID: 999999999, Steps: []string{"a", "b"}},
		{Type: "step_start", Step: 1},
		{Type: "step_end", Step: 1, Status: StatusOK},
		{Type: "step_start", Step: 2},
	}
	s := Summarize("x", recs)
	if s.Status != StatusInterrupted || s.NextStep() != 2 || s.FailedTitle != "b" {
		t.Fatalf("%+v", s)
	}
}

func TestCancelMidStepIsInterrupted(t *testing.T) {
	fx := newFixture(t)
	fx.hosts.Delay = 5 * time.Second
	rb := fx.runbook(t, "name: c\nsteps:\n  - {title: a, hosts: web, run: slow}\n")
	ctx, cancel := context.WithCancel(context.Background())
	go func() { time.Sleep(100 * time.Millisecond); cancel() }()
	id, err := fx.eng.Run(ctx, rb, RunOptions{})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v", err)
	}
	if s := Summarize(id, fx.journal(t, id)); s.Status != StatusInterrupted {
		t.Fatalf("%+v", s)
	}
}

// Ctrl-C in the middle of a step, as the operator and the journal see it:
// each host's record says interrupted with exit 130, also for a Go step (a
// send) whose cut-short output said exit 0; the screen says "interrupted"
// once per host line and never Go's "context canceled". Before, history
// showed "FAILED exit 0" for an interrupted send and the screen printed
// "h: context canceled" under every host and after the run.
func TestInterruptionIsSaidAsSuch(t *testing.T) {
	fx := newFixture(t)
	fx.hosts.Delay = 5 * time.Second
	rb := fx.runbook(t, "name: c\nsteps:\n  - {title: a, hosts: web, run: slow}\n")
	// Interrupted once a send has begun, not after a fixed sleep: on a
	// loaded machine the sleep could end before any action started.
	started := make(chan struct{})
	var once sync.Once
	rb.Steps[0].Action = &Func{Desc: "send", Fn: func(ctx context.Context, _ *Env, h *inventory.Host) (string, error) {
		once.Do(func() { close(started) })
		<-ctx.Done()
		return "", fmt.Errorf("%s: send: %w", h.Name, ctx.Err())
	}}
	ctx, cancel := context.WithCancel(context.Background())
	go func() { <-started; time.Sleep(50 * time.Millisecond); cancel() }()
	id, err := fx.eng.Run(ctx, rb, RunOptions{})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v", err)
	}
	actions := 0
	for _, r := range fx.journal(t, id) {
		if r.Type != "action" {
			continue
		}
		actions++
		if r.Status != StatusInterrupted || r.ExitCode == nil || *r.ExitCode != 130 || r.Error != "interrupted" {
			t.Errorf("journaled %+v (exit %v), want status interrupted, exit 130", r, r.ExitCode)
		}
	}
	if actions == 0 {
		t.Fatal("no action journaled")
	}
	out := fx.out.String()
	if strings.Contains(out, "context canceled") || !regexp.MustCompile(`(?m)^  ✗ \w+ run [^\n]*: interrupted$`).MatchString(out) {
		t.Fatalf("screen:\n%s", out)
	}
}

// A step whose own bounded wait ran out (deploy's after check: "did not
// come back within 5s", wrapping context.DeadlineExceeded) left the
// change unverified; nothing interrupted the run, and the journal and the
// summary line must not say it was (found on the real cluster: a host
// that never came back was reported "✗ interrupted").
func TestOwnDeadlineInAStepIsNotAnInterruption(t *testing.T) {
	fx := newFixture(t)
	rb := fx.runbook(t, "name: d\nsteps:\n  - {title: a, hosts: db, run: deploy}\n")
	rb.Steps[0].After = &Func{Desc: "back within 1ms", Fn: func(ctx context.Context, _ *Env, h *inventory.Host) (string, error) {
		wctx, cancel := context.WithTimeout(ctx, time.Millisecond)
		defer cancel()
		<-wctx.Done()
		return "", fmt.Errorf("%s did not come back within 1ms: %w", h.Name, wctx.Err())
	}}
	id, err := fx.eng.Run(context.Background(), rb, RunOptions{})
	if !errors.As(err, new(*UnverifiedError)) {
		t.Fatalf("err = %v", err)
	}
	if s := Summarize(id, fx.journal(t, id)); s.Status != StatusUnverified {
		t.Fatalf("journaled as %q, want %q", s.Status, StatusUnverified)
	}
}

func TestPlanSkipsChecksThatNeedPreviousSteps(t *testing.T) {
	fx := newFixture(t)
	fx.hosts.answer = func(host, cmd string) (string, int) {
		if cmd == "exists?" {
			return "no such dir", 1
		}
		return "", 0
	}
	rb := fx.runbook(t, "name: p\nsteps:\n  - {title: a, hosts: db, before: 'true', run: mk}\n  - {title: b, hosts: db, before: 'exists?', run: use, needs_previous: true}\n  - {title: c, hosts: db, before: 'exists?', run: use}\n")
	p, err := fx.eng.Plan(context.Background(), rb, 1)
	if err != nil {
		t.Fatal(err)
	}
	if p.Steps[1].Items[0].BeforeChecked || p.Steps[1].Items[0].NotCheckedWhy == "" {
		t.Fatalf("step 2's check must not run in the plan: %+v", p.Steps[1].Items[0])
	}
	if !p.Steps[2].Items[0].BeforeChecked || p.Steps[2].Items[0].BeforeOK || p.Failing != 1 {
		t.Fatalf("step 3's check must run and fail: %+v", p)
	}
	if slices.Contains(fx.hosts.commands(), "db: mk") || slices.Contains(fx.hosts.commands(), "db: use") {
		t.Fatal("a plan ran an action")
	}
	var b strings.Builder
	PrintPlan(&b, iostreamsScheme(), p, nil)
	for _, want := range []string{"1. a", "run     mk", "not checked now", "FAILS now: no such dir"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("plan text lacks %q:\n%s", want, b.String())
		}
	}
}

func iostreamsScheme() *iostreams.ColorScheme {
	s, _, _, _ := iostreams.Test()
	return s.ColorScheme()
}

func TestRunbookErrorsHaveLineAndColumn(t *testing.T) {
	inv, _ := inventory.Parse("inv.yaml", []byte(inv5))
	cases := map[string]string{
		"name: x\nsteps:\n  - {title: a, run: b, colour: red}\n":        "rb.yaml:3:24: steps.0: unknown field \"colour\"",
		"steps:\n  - {title: a, run: b}\n":                              "name: missing",
		"name: x\nsteps:\n  - {title: a}\n":                             "rb.yaml:3:5: steps.0: step 1: missing run",
		"name: x\nsteps:\n  - {title: a, run: 'echo {{.Vars.nope}}'}\n": "rb.yaml:3:21: steps.0.run: undefined variable nope (for host local)",
		"name: x\nsteps:\n  - {title: a, run: 'echo {{.Host'}\n":        "steps.0.run: bad template",
		// A field typo names the field, the fields there are and the
		// closest, not text/template's message with Go type names.
		"name: x\nsteps:\n  - {title: a, hosts: web, run: 'echo {{.HostInfo.Adress}}'}\n": "rb.yaml:3:33: steps.0.run: {{.HostInfo.Adress}}: .HostInfo has no field Adress; did you mean .HostInfo.Address? (fields: Name, Address, Roles, Managed, Vars, User, Port, IdentityFiles, KnownHosts, HostKeyPolicy, ConnectTimeout, CommandTimeout, Keepalive, Become, Jump) (for host h1)", //nolint:misspell // the typo is what is tested
		"name: x\nsteps:\n  - {title: a, run: 'echo {{.Hots}}'}\n":                        "steps.0.run: {{.Hots}}: the template's data has no field Hots; did you mean .Host? (fields: Host, HostInfo, Vars, Inventory) (for host local)",
		"name: x\nsteps:\n  - {title: a, run: 'echo {{.Inventory.Hosts.h1.Adress}}'}\n":   "steps.0.run: {{.Inventory.Hosts.h1.Adress}}: .Inventory.Hosts.h1 has no field Adress; did you mean .Inventory.Hosts.h1.Address?", //nolint:misspell // the typo is what is tested
		// A key given twice is reported with the file's other problems.
		"name: x\nname: y\nsteps:\n  - {title: a, run: b, colour: red}\n": "rb.yaml:2:1: name: key \"name\" is given twice here: first on line 1; a key may appear once in a mapping, so merge the two or rename one\nrb.yaml:4:24: steps.0: unknown field \"colour\"",
		"name: x\nsteps:\n  - {title: a, hosts: wbe, run: b}\n":           `did you mean "web"`,
		// retries, not retry_delay, which "retry" also begins.
		"name: x\nsteps:\n  - {title: a, run: b, retry: 3}\n":                 `steps.0: unknown field "retry"; did you mean "retries" or "retry_delay"?`,
		"name: x\nsteps:\n  - {title: a, run: b, timeout: soon}\n":            "steps.0.timeout: expected a duration",
		"name: x\nsecrets: {tok: NOPE_ENV}\nsteps:\n  - {title: a, run: b}\n": "secret \"tok\" comes from $NOPE_ENV, which is not set",
		"name: x\nlock: 'a b'\nsteps:\n  - {title: a, run: b}\n":              "lock: expected letters",
		"name: x\ncluster_lock: true\nsteps:\n  - {title: a, run: b}\n":       "cluster_lock: needs lock:",
		"":                     "runbook is empty",
		"name: x\nsteps: []\n": "expected at least one step",
		"name: x\nsteps:\n  - {title: a, run: b, serial: -1}\n": "must not be negative",
		"name: [x\n": "rb.yaml:1:",
	}
	for src, want := range cases {
		_, err := ParseRunbook("rb.yaml", []byte(src), inv, LoadOptions{Getenv: func(string) string { return "" }})
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q:\n got %v\nwant %q", src, err, want)
		}
	}
}

func TestVarOverrides(t *testing.T) {
	inv, _ := inventory.Parse("inv.yaml", []byte(inv5))
	rb, err := ParseRunbook("rb.yaml", []byte("name: x\nvars: {app: gitea}\nsteps:\n  - {title: a, hosts: db, run: 'sync {{.Vars.app}} on {{.Host}}'}\n"), inv,
		LoadOptions{Vars: map[string]string{"app": "immich"}})
	if err != nil {
		t.Fatal(err)
	}
	got, _ := rb.Steps[0].Action.Describe(inv.Host("db"))
	if got != "sync immich on db" || rb.Params["var.app"] != "immich" {
		t.Fatalf("%q %v", got, rb.Params)
	}
}

func FuzzParseRunbook(f *testing.F) {
	inv, err := inventory.Parse("inv.yaml", []byte(inv5))
	if err != nil {
		f.Fatal(err)
	}
	for _, p := range []string{"../../docs/runbooks/phase3-copy-data.yaml", "../../docs/runbooks/phase3-update-jobs.yaml", "../../docs/runbooks/phase3-remove-glusterfs.yaml"} {
		if data, err := os.ReadFile(p); err == nil {
			f.Add(data)
		}
	}
	f.Add([]byte("name: x\nvars: {a: b}\nsteps:\n  - {title: a, hosts: web, before: 'test -d {{.Vars.a}}', run: 'echo {{.Host}}', serial: 2, retries: 1, retry_delay: 1s}\n"))
	f.Add([]byte("name: x\nsecrets: {t: T}\nsteps:\n  - title: a\n    run: |\n      echo {{.Vars.t}}\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		rb, err := ParseRunbook("fuzz.yaml", data, inv, LoadOptions{Getenv: func(string) string { return "v" }})
		if err != nil {
			if err.Error() == "" {
				t.Fatal("empty error")
			}
			return
		}
		for _, s := range rb.Steps {
			for _, h := range s.hosts() {
				if _, err := s.Action.Describe(h); err != nil {
					t.Fatalf("validated runbook fails to render: %v", err)
				}
			}
		}
	})
}

// Two runs within one second: history orders them by start time, not by
// the random suffix of their IDs.
func TestHistoryOrdersRunsOfOneSecondByStart(t *testing.T) {
	dir := t.TempDir()
	runs := filepath.Join(dir, "runs")
	if err := os.MkdirAll(runs, 0o755); err != nil {
		t.Fatal(err)
	}
	base := time.Date(2026, 11, 26, 12, 36, 55, 0, time.UTC)
	for id, offset := range map[string]time.Duration{"20261126T123655Z-aaaaaa": 900 * time.Millisecond, "20261126T123655Z-ffffff": 100 * time.Millisecond} {
		rec, _ := json.Marshal(Record{Type: "run_start", Time: base.Add(offset), Run: id, Command: id})
		if err := os.WriteFile(filepath.Join(runs, id+".jsonl"), append(rec, '\n'), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got, err := History(dir)
	if err != nil || len(got) != 2 || got[0].ID != "20261126T123655Z-aaaaaa" {
		t.Fatalf("newest first: %v %v", got, err)
	}
}

// A failing after check is the same failure with or without serial: an
// UnverifiedError (exit 5), the hosts serial left alone noted in it.
func TestSerialAfterFailureIsUnverifiedLikeParallel(t *testing.T) {
	for _, serial := range []string{"", ", serial: 1"} {
		fx := newFixture(t)
		fx.hosts.answer = func(host, cmd string) (string, int) {
			if cmd == "ok?" && host == "h1" {
				return "", 1
			}
			return "", 0
		}
		rb := fx.runbook(t, "name: s\nsteps:\n  - {title: s, hosts: web, run: x, after: 'ok?'"+serial+"}\n")
		_, err := fx.eng.Run(context.Background(), rb, RunOptions{})
		var ue *UnverifiedError
		if !errors.As(err, &ue) || !slices.Equal(ue.Hosts, []string{"h1"}) || !strings.Contains(err.Error(), "changed but not verified: after check failed on h1") {
			t.Fatalf("serial %q: err = %v", serial, err)
		}
		if serial != "" && (ue.NotRun != 3 || !strings.Contains(err.Error(), "3 more host(s) not run")) {
			t.Fatalf("serial: %v", err)
		}
	}
}

// Resume retries a failed step only where it did not finish: hosts whose
// action (and after check) passed are left alone, checks included.
func TestResumeRetriesOnlyUnfinishedHosts(t *testing.T) {
	for _, after := range []string{"", ", after: 'ok?'"} {
		fx := newFixture(t)
		fx.hosts.answer = func(host, cmd string) (string, int) {
			if host == "h3" && (cmd == "change" && after == "" || cmd == "ok?") {
				return "", 1
			}
			return "", 0
		}
		rb := fx.runbook(t, "name: r\nsteps:\n  - {title: a, hosts: db, run: one}\n  - {title: b, hosts: web, before: 'ready?', run: change"+after+"}\n")
		id, err := fx.eng.Run(context.Background(), rb, RunOptions{})
		if err == nil {
			t.Fatal("step 2 should fail on h3")
		}
		s := Summarize(id, fx.journal(t, id))
		done := s.HostsDone(2, rb.Steps[1].After != nil)
		if len(done) != 3 || !done["h1"] || !done["h2"] || !done["h4"] || done["h3"] {
			t.Fatalf("after %q: done %v", after, done)
		}
		fx.hosts.answer = nil
		before := len(fx.hosts.commands())
		rb.Steps[1].Done = done
		if _, err := fx.eng.Run(context.Background(), rb, RunOptions{ResumeID: id, From: 2}); err != nil {
			t.Fatal(err)
		}
		for _, c := range fx.hosts.commands()[before:] {
			if !strings.HasPrefix(c, "h3: ") {
				t.Fatalf("after %q: resume ran %q on a host that had finished the step", after, c)
			}
		}
		if s := Summarize(id, fx.journal(t, id)); s.Status != StatusOK {
			t.Fatalf("%+v", s)
		}
	}
}

// A run whose PID now belongs to another process is not running: the
// journal records the process's start time as well as its PID.
func TestReusedPIDIsNotTheRun(t *testing.T) {
	me := os.Getpid()
	start := procStart(me)
	if start == "" {
		t.Fatal("no /proc start time for this process")
	}
	recs := func(ps string) []Record {
		return []Record{{Type: "run_start", PID: me, ProcStart: ps, Steps: []string{"a"}}, {Type: "step_start", Step: 1}}
	}
	if s := Summarize("x", recs(start)); s.Status != StatusRunning {
		t.Fatalf("the live writer: %s", s.Status)
	}
	// Same PID (alive), another process's start time: the run is dead.
	if s := Summarize("x", recs(start+"0")); s.Status != StatusInterrupted || s.NextStep() != 1 {
		t.Fatalf("a reused PID: %s", s.Status)
	}
}

func TestResolveRunID(t *testing.T) {
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "runs"), 0o700); err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2026, 11, 30, 4, 0, 0, 0, time.UTC)
	for i, id := range []string{"20261130T040000Z-aaaaaa", "20261130T040000Z-bbbbbb", "20261130T030000Z-cccccc", "20261129T010000Z-dddddd"} {
		// Two runs in one second: "last" goes by the recorded start.
		start := t0.Add(-time.Duration(i) * time.Hour)
		if i == 1 {
			start = t0.Add(500 * time.Millisecond)
		}
		b, _ := json.Marshal(Record{Type: "run_start", Time: start})
		if err := os.WriteFile(filepath.Join(dir, "runs", id+".jsonl"), append(b, '\n'), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	for arg, want := range map[string]string{"last": "20261130T040000Z-bbbbbb", "20261129": "20261129T010000Z-dddddd",
		"20261130T03": "20261130T030000Z-cccccc", "20261130T040000Z-aaaaaa": "20261130T040000Z-aaaaaa"} {
		if got, err := ResolveRunID(dir, arg); err != nil || got != want {
			t.Errorf("%q: %q %v, want %q", arg, got, err, want)
		}
	}
	var ae *AmbiguousRunError
	if _, err := ResolveRunID(dir, "20261130T04"); !errors.As(err, &ae) || len(ae.Candidates) != 2 || !strings.Contains(err.Error(), "20261130T040000Z-aaaaaa, 20261130T040000Z-bbbbbb") {
		t.Fatalf("ambiguous: %v", err)
	}
	var ne *NoRunError
	if _, err := ResolveRunID(dir, "2027"); !errors.As(err, &ne) {
		t.Fatalf("none: %v", err)
	}
	if _, err := ResolveRunID(dir, "../x"); err == nil {
		t.Fatal("a path as run id")
	}
}

// A failed run says how to go on: resume where resume can rebuild it,
// otherwise what to run instead, never a resume that will be refused.
func TestFailedRunHintMatchesResumability(t *testing.T) {
	for _, resumable := range []bool{true, false} {
		fx := newFixture(t)
		fx.hosts.answer = func(string, string) (string, int) { return "", 1 }
		rb := fx.runbook(t, "name: h\nsteps:\n  - {title: a, hosts: db, run: one}\n")
		rb.Resumable = resumable
		if !resumable {
			rb.Retry = "run it again"
		}
		id, _ := fx.eng.Run(context.Background(), rb, RunOptions{})
		out := fx.out.String()
		if resumable != strings.Contains(out, "continue with: hoctl resume "+id) || resumable == strings.Contains(out, "cannot be resumed: run it again") {
			t.Fatalf("resumable %v:\n%s", resumable, out)
		}
	}
}

// A one-host failure names the host once, however its error begins.
func TestStepErrorNamesHostOnce(t *testing.T) {
	timeout := fmt.Errorf("w: %w", fmt.Errorf("%w after 1s", sshexec.ErrTimeout))
	conn := &sshexec.ConnError{Host: "c4", Addr: "127.0.14.5:22", Reason: sshexec.ReasonRefused}
	for _, c := range []struct {
		err  error
		want string
	}{
		{&StepError{Step: 1, Title: "slow", Hosts: []string{"w"}, Err: timeout}, `step 1 "slow" failed on w: command timed out after 1s`},
		{&StepError{Step: 2, Title: "x", Hosts: []string{"c4"}, Err: conn}, `step 2 "x" failed on c4 (127.0.14.5:22): connection refused`},
		{&StepError{Step: 2, Title: "x", Hosts: []string{"a", "b"}, Err: errors.New("boom")}, `step 2 "x" failed on a, b: boom`},
		{&RefusedError{Step: 1, Title: "x", Hosts: []string{"c4"}, Err: conn}, `step 1 "x" refused to start: before check failed on c4 (127.0.14.5:22): connection refused`},
	} {
		if got := c.err.Error(); got != c.want {
			t.Errorf("got  %s\nwant %s", got, c.want)
		}
	}
}

// ListRuns filters and limits, newest first, and summarises a run the
// same way whether it reads all records or skips the per-host ones.
func TestListRunsFiltersAndLimits(t *testing.T) {
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "runs"), 0o700); err != nil {
		t.Fatal(err)
	}
	base := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	ok := true
	for i := 0; i < 30; i++ {
		start := base.Add(time.Duration(i) * time.Hour)
		id := NewRunID(start)
		kind, status := KindFile, StatusOK
		if i%3 == 0 {
			kind = "replicate"
		}
		if i%5 == 0 {
			status = StatusFailed
		}
		recs := []Record{
			{Type: "run_start", Time: start, Run: id, Kind: kind, Steps: []string{"a", "b"}},
			{Type: "step_start", Time: start, Step: 1},
			{Type: "action", Time: start, Step: 1, Host: "h", OK: &ok, Output: strings.Repeat("x", 200<<10)},
			{Type: "step_end", Time: start, Step: 1, Status: StatusOK},
			{Type: "run_end", Time: start, Status: status, Step: 2, Title: "b"},
		}
		var b []byte
		for _, r := range recs {
			line, _ := json.Marshal(r)
			b = append(append(b, line...), '\n')
		}
		if err := os.WriteFile(filepath.Join(dir, "runs", id+".jsonl"), b, 0o600); err != nil {
			t.Fatal(err)
		}
		full := Summarize(id, fx0(t, dir, id))
		fast, err := summarizeFile(dir, id)
		if err != nil || fast.Status != full.Status || fast.FailedStep != full.FailedStep || !fast.Start.Equal(full.Start) || fast.Kind != full.Kind {
			t.Fatalf("fast summary %+v, full %+v", fast, full)
		}
	}
	runs, more, err := ListRuns(dir, RunFilter{Limit: 4})
	if err != nil || len(runs) != 4 || !more || !runs[0].Start.Equal(base.Add(29*time.Hour)) || !runs[3].Start.Equal(base.Add(26*time.Hour)) {
		t.Fatalf("limit: %d more %v %v", len(runs), more, err)
	}
	runs, more, _ = ListRuns(dir, RunFilter{Failed: true, Kind: "replicate"})
	if len(runs) != 2 || more { // i = 0, 15
		t.Fatalf("failed replicate: %d", len(runs))
	}
	runs, _, _ = ListRuns(dir, RunFilter{Kind: "runbook", Since: base.Add(20 * time.Hour)})
	for _, r := range runs {
		if r.Start.Before(base.Add(20*time.Hour)) || r.KindName() != "runbook" {
			t.Fatalf("since/kind: %+v", r)
		}
	}
	if len(runs) != 7 { // 20..29 without 21, 24, 27
		t.Fatalf("since/kind: %d runs", len(runs))
	}
}

func fx0(t *testing.T, dir, id string) []Record {
	t.Helper()
	recs, err := ReadJournal(dir, id)
	if err != nil {
		t.Fatal(err)
	}
	return recs
}

// Ctrl-C during an action: the undo the plan promised runs at once (on a
// context of its own), not at the next run.
func TestInterruptedActionIsUndoneAtOnce(t *testing.T) {
	fx := newFixture(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	fx.hosts.answer = func(host, cmd string) (string, int) {
		if cmd == "send" {
			cancel() // the operator's Ctrl-C, mid-send
			return "", 130
		}
		return "", 0
	}
	rb := fx.runbook(t, "name: i\nsteps:\n  - {title: send, hosts: db, run: send, undo: 'delete partial'}\n  - {title: next, hosts: db, run: never}\n")
	_, err := fx.eng.Run(ctx, rb, RunOptions{})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v", err)
	}
	got := fx.hosts.commands()
	if len(got) == 0 || got[len(got)-1] != "db: delete partial" {
		t.Fatalf("the interrupted send was not undone: %q", got)
	}
	for _, c := range got {
		if c == "db: never" {
			t.Fatal("the run went on after Ctrl-C")
		}
	}
}

// A failing before check shows its first lines, where a command puts its
// error, not the last one: hoctl's "Run '... --help' for usage." after the
// error it explains hid that error.
func TestPlanShowsFirstLinesOfFailingCheck(t *testing.T) {
	p := &Plan{Name: "x", Failing: 1, Steps: []PlanStep{{Index: 1, Title: "a", Items: []PlanItem{{
		Host: "local", Before: "hoctl migrate-jobs --dir services", BeforeChecked: true, Run: "true",
		BeforeOutput: "job directory services: not a directory\n\nRun 'hoctl migrate-jobs --help' for usage.\nline 3\nline 4\nline 5",
	}}}}}
	var b strings.Builder
	PrintPlan(&b, iostreamsScheme(), p, nil)
	// Up to three non-blank lines, under the host's name; then how many
	// more there are.
	want := "local: FAILS now: job directory services: not a directory\n" +
		"               Run 'hoctl migrate-jobs --help' for usage.\n" +
		"               line 3\n" +
		"               … 2 more lines (--json shows them all)\n"
	if !strings.Contains(b.String(), want) {
		t.Errorf("plan:\n%s\nwant:\n%s", b.String(), want)
	}
}
