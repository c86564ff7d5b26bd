package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hoctl/hoctl/pkg/consul"
	"github.com/hoctl/hoctl/pkg/inventory"
	"github.com/hoctl/hoctl/pkg/iostreams"
	"github.com/hoctl/hoctl/pkg/sshexec"
	"github.com/hoctl/hoctl/pkg/sshexec/sshexectest"
	"github.com/hoctl/hoctl/pkg/tasks"
	"github.com/spf13/cobra"
)

const testInventory = `
hosts:
  zippy: {address: 10.0.0.1, roles: [storage]}
  c1: {address: 10.0.0.11, roles: [compute, quorum]}
  c2: {address: 10.0.0.12, roles: [compute, quorum]}
  fractal: {address: 10.0.0.9, managed: false}
groups:
  cattle: [c1, c2]
`

// fakeConnector is the test's hosts: a down one refuses the connection,
// the others answer through handler, every command recorded.
type fakeConnector struct {
	down    map[string]sshexec.Reason
	handler func(host string, c sshexec.Cmd) (stdout, stderr string, code int)
	hosts   sshexectest.Hosts
}

func (f *fakeConnector) Runner(_ context.Context, h *inventory.Host) (sshexec.Runner, error) {
	if r, ok := f.down[h.Name]; ok {
		return nil, &sshexec.ConnError{Host: h.Name, Addr: h.Address, Reason: r, Err: errors.New("dial tcp: " + string(r))}
	}
	return f.hosts.Runner(h.Name), nil
}

// lines are the commands run, as "host: command line".
func (f *fakeConnector) lines() []string { return f.hosts.Lines() }

func (f *fakeConnector) Close() error { return nil }

type harness struct {
	f        *Factory
	out, err *strings.Builder
	conn     *fakeConnector
}

func newHarness(t *testing.T) *harness {
	t.Helper()
	dir := t.TempDir()
	path := filepath.Join(dir, "inventory.yaml")
	if err := os.WriteFile(path, []byte(testInventory), 0o600); err != nil {
		t.Fatal(err)
	}
	ios, _, _, _ := iostreams.Test()
	out, errOut := &strings.Builder{}, &strings.Builder{}
	ios.Out, ios.ErrOut = &syncWriter{w: out}, &syncWriter{w: errOut}
	conn := &fakeConnector{down: map[string]sshexec.Reason{}, handler: func(host string, c sshexec.Cmd) (string, string, int) {
		return host + "\n", "", 0
	}}
	conn.hosts.Answer = func(host string, c sshexec.Cmd) sshexectest.Reply {
		out, errOut, code := conn.handler(host, c)
		return sshexectest.Reply{Stdout: out, Stderr: errOut, Code: code}
	}
	env := map[string]string{"HOCTL_INVENTORY": path}
	f := &Factory{IO: ios, Version: "test", Getenv: func(k string) string { return env[k] },
		Connect: func(*inventory.Inventory) (Connector, error) { return conn, nil }}
	return &harness{f: f, out: out, err: errOut, conn: conn}
}

type syncWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (s *syncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}

// String reads what was written, under the writer's lock, while a
// command may still be writing.
func (s *syncWriter) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return fmt.Sprint(s.w)
}

// exec runs a command line through the real cobra tree and returns the
// exit code Main would return.
func (h *harness) exec(args ...string) int {
	root := NewRootCmd(h.f)
	root.SetArgs(args)
	return ExitCode(Execute(context.Background(), root))
}

func TestHostsPlainAndJSON(t *testing.T) {
	h := newHarness(t)
	if code := h.exec("hosts", "cattle"); code != 0 {
		t.Fatalf("code %d: %s", code, h.err)
	}
	out := h.out.String()
	if !strings.Contains(out, "HOST") || !strings.Contains(out, "c1") || strings.Contains(out, "zippy") || strings.Contains(out, "\x1b[") {
		t.Fatalf("plain output:\n%s", out)
	}
	h = newHarness(t)
	if code := h.exec("--json", "hosts"); code != 0 {
		t.Fatal(code)
	}
	lines := strings.Split(strings.TrimSpace(h.out.String()), "\n")
	if len(lines) != 4 {
		t.Fatalf("json lines: %q", lines)
	}
	var row hostRow
	if err := json.Unmarshal([]byte(lines[3]), &row); err != nil || row.Name != "fractal" || row.Managed {
		t.Fatalf("row %+v err %v", row, err)
	}
}

func TestHostsTableOnTTY(t *testing.T) {
	h := newHarness(t)
	h.f.IO.SetTTY(false, true, true)
	h.f.IO.SetColor(true)
	if code := h.exec("hosts"); code != 0 {
		t.Fatal(code)
	}
	if !strings.Contains(h.out.String(), "╭") {
		t.Fatalf("no table border on a TTY:\n%s", h.out)
	}
}

func TestUnknownTargetIsUsageError(t *testing.T) {
	h := newHarness(t)
	root := NewRootCmd(h.f)
	root.SetArgs([]string{"run", "catle", "--", "true"})
	err := Execute(context.Background(), root)
	if ExitCode(err) != ExitUsage || !strings.Contains(err.Error(), `did you mean "cattle"`) {
		t.Fatalf("err = %v", err)
	}
	if len(h.conn.lines()) != 0 {
		t.Fatal("ran commands despite a bad target")
	}
}

func TestPingReportsUnreachableAndExit4(t *testing.T) {
	h := newHarness(t)
	h.conn.down["c2"] = sshexec.ReasonRefused
	h.conn.down["fractal"] = sshexec.ReasonHostKeyChanged
	code := h.exec("ping", "all")
	if code != ExitUnreachable {
		t.Fatalf("code = %d", code)
	}
	out := h.out.String()
	for _, want := range []string{"zippy", "c1", "CONNECTION REFUSED", "HOST KEY CHANGED"} {
		if !strings.Contains(out, want) {
			t.Errorf("missing %q in:\n%s", want, out)
		}
	}
	if !strings.Contains(h.err.String(), "2/4 hosts answered, 2 unreachable") {
		t.Errorf("summary: %s", h.err)
	}
}

func TestPingJSON(t *testing.T) {
	h := newHarness(t)
	h.conn.down["c1"] = sshexec.ReasonTimeout
	if code := h.exec("--json", "ping", "cattle"); code != ExitUnreachable {
		t.Fatal(code)
	}
	got := map[string]PingResult{}
	for _, l := range strings.Split(strings.TrimSpace(h.out.String()), "\n") {
		var r PingResult
		if err := json.Unmarshal([]byte(l), &r); err != nil {
			t.Fatalf("not JSON: %q", l)
		}
		got[r.Host] = r
	}
	if !got["c2"].OK || got["c2"].Hostname != "c2" || got["c1"].OK || got["c1"].Reason != "timed out" {
		t.Fatalf("got %+v", got)
	}
	if h.err.Len() != 0 {
		t.Errorf("stderr in --json mode: %q", h.err)
	}
}

func TestRunStreamsPrefixedAndSummarises(t *testing.T) {
	h := newHarness(t)
	h.conn.handler = func(host string, c sshexec.Cmd) (string, string, int) {
		if host == "c2" {
			return "partial line", "boom\n", 3
		}
		return "line1\nline2\n", "", 0
	}
	code := h.exec("run", "zippy,cattle", "--", "uptime")
	if code != ExitFailed {
		t.Fatalf("code = %d", code)
	}
	out := h.out.String()
	for _, want := range []string{"zippy | line1\n", "zippy | line2\n", "c1    | line1\n", "c2    | partial line\n"} {
		if !strings.Contains(out, want) {
			t.Errorf("missing %q in:\n%s", want, out)
		}
	}
	errOut := h.err.String()
	if !strings.Contains(errOut, "c2    ! boom") || !strings.Contains(errOut, "2/3 hosts exited 0; 1 failed, 0 unreachable") || !strings.Contains(errOut, "c2: exit 3") {
		t.Errorf("stderr:\n%s", errOut)
	}
}

func TestRunArgvQuotingAndScript(t *testing.T) {
	h := newHarness(t)
	if code := h.exec("run", "c1", "--", "ls", "-l", "/data/my dir"); code != 0 {
		t.Fatal(code)
	}
	if code := h.exec("run", "c1", "--", "systemctl is-active nomad && uptime"); code != 0 {
		t.Fatal(code)
	}
	want := []string{"c1: ls -l '/data/my dir'", "c1: systemctl is-active nomad && uptime"}
	if fmt.Sprint(h.conn.lines()) != fmt.Sprint(want) {
		t.Fatalf("lines = %q", h.conn.lines())
	}
}

func TestRunUnreachableIsExit4AndOthersStillRun(t *testing.T) {
	h := newHarness(t)
	h.conn.down["c1"] = sshexec.ReasonTimeout
	code := h.exec("run", "all", "--", "true")
	if code != ExitUnreachable {
		t.Fatalf("code = %d", code)
	}
	if len(h.conn.lines()) != 3 {
		t.Fatalf("the reachable hosts must still run: %q", h.conn.lines())
	}
}

func TestRunGroupAndJSON(t *testing.T) {
	h := newHarness(t)
	if code := h.exec("run", "--group", "cattle", "--", "hostname"); code != 0 {
		t.Fatal(code)
	}
	if !strings.Contains(h.out.String(), "── c1 (exit 0, ") || !strings.Contains(h.out.String(), "\nc1\n") {
		t.Fatalf("group output:\n%s", h.out)
	}
	h = newHarness(t)
	h.conn.handler = func(host string, c sshexec.Cmd) (string, string, int) { return "o", "e", 2 }
	if code := h.exec("--json", "run", "c1", "--", "x"); code != ExitFailed {
		t.Fatal(code)
	}
	var r RunResult
	if err := json.Unmarshal([]byte(strings.TrimSpace(h.out.String())), &r); err != nil {
		t.Fatal(err)
	}
	if r.Host != "c1" || r.Stdout != "o" || r.Stderr != "e" || r.ExitCode != 2 {
		t.Fatalf("%+v", r)
	}
}

func TestRunUsageErrors(t *testing.T) {
	for _, args := range [][]string{{"run", "c1"}, {"run", "c1", "uptime"}, {"run", "--", "uptime"}, {"run", "c1", "--", " "}, {"run", "--parallel", "0", "c1", "--", "x"}, {"ping", "a", "b"}, {"bogus"}} {
		h := newHarness(t)
		if code := h.exec(args...); code != ExitUsage {
			t.Errorf("%q: code %d, want 2", args, code)
		}
	}
}

func TestPingAndRunFlagsParse(t *testing.T) {
	h := newHarness(t)
	var got *RunOptions
	cmd := NewCmdRun(h.f, func(o *RunOptions) error { got = o; return nil })
	root := &cobra.Command{Use: "x"}
	root.AddCommand(cmd)
	root.SetArgs([]string{"run", "--parallel", "5", "--group", "--timeout", "3s", "c*", "--", "a", "b c"})
	if err := root.Execute(); err != nil {
		t.Fatal(err)
	}
	if got.Parallel != 5 || !got.Group || strings.Join(got.Targets, " ") != "c*" || got.Command.Timeout.String() != "3s" || got.Command.Line() != "a 'b c'" {
		t.Fatalf("%+v", got)
	}
}

func TestExitCodes(t *testing.T) {
	cases := map[error]int{
		nil:                                               0,
		errors.New("x"):                                   1,
		&UsageError{Err: errors.New("x")}:                 2,
		&inventory.Error{}:                                2,
		&inventory.TargetError{}:                          2,
		&HostsError{Unreachable: 1}:                       4,
		&HostsError{Failed: 1}:                            1,
		&sshexec.ConnError{}:                              4,
		context.Canceled:                                  130,
		fmt.Errorf("w: %w", &SilentError{Code: 5}):        5,
		&tasks.RefusedError{Err: errors.New("x")}:         3,
		&tasks.StepError{Err: errors.New("x")}:            1,
		&tasks.UnverifiedError{Err: errors.New("x")}:      5,
		&tasks.StepError{Err: &sshexec.ConnError{}}:       4,
		&tasks.RefusedError{Err: &sshexec.ConnError{}}:    4,
		&tasks.UnverifiedError{Err: &sshexec.ConnError{}}: 5,
		&tasks.LockedError{}:                              3,
		&consul.HeldError{}:                               3,
		&tasks.ConfirmError{}:                             6,
		&tasks.NoRunError{}:                               2,
		tasks.ErrLockLost:                                 1,
	}
	for err, want := range cases {
		if got := ExitCode(err); got != want {
			t.Errorf("ExitCode(%v) = %d, want %d", err, got, want)
		}
	}
}

// Every command either honours --yes and --dry-run (and lists them in its
// help) or refuses them with exit 2 (and does not list them), in either
// position on the command line.
func TestGlobalFlagsHonouredOrRefused(t *testing.T) {
	// Arguments that pass each command's own checks, so the refusal is
	// what is tested.
	sampleArgs := map[string][]string{"snapshots": {"zippy"}, "target-filter": {"/tmp/x"}, "dir-op": {"/tmp/x", "list", "services"}, "runbook plan": {"x.yaml"}, "run": {"c1", "--", "uptime"}, "guard": {"--key", "k"}}
	honours := map[string][2]bool{ // command: {yes, dry-run}
		"run": {false, true}, "replicate": {true, true}, "failover": {true, true}, "migrate-jobs": {true, true},
		"deploy": {true, true}, "runbook run": {true, true}, "resume": {true, true}, "guard": {false, true},
		"copy": {true, true},
	}
	h := newHarness(t)
	var walk func(c *cobra.Command)
	seen := 0
	walk = func(c *cobra.Command) {
		for _, sub := range c.Commands() {
			walk(sub)
		}
		if !c.Runnable() || c == c.Root() {
			return
		}
		seen++
		path := strings.TrimPrefix(c.CommandPath(), "hoctl ")
		want := honours[path]
		help := c.UsageString()
		for i, flag := range []string{"yes", "dry-run"} {
			if listed := strings.Contains(help, "--"+flag); listed != want[i] {
				t.Errorf("%s: --%s listed in help = %v, want %v", path, flag, listed, want[i])
			}
			if want[i] {
				continue
			}
			cmdWords := strings.Fields(path)
			for _, args := range [][]string{
				slices.Concat([]string{"--" + flag}, cmdWords, sampleArgs[path]),
				slices.Concat(cmdWords, []string{"--" + flag}, sampleArgs[path]),
			} {
				h := newHarness(t)
				root := NewRootCmd(h.f)
				root.SetArgs(args)
				err := Execute(context.Background(), root)
				if ExitCode(err) != ExitUsage || !strings.Contains(fmt.Sprint(err), "--"+flag+" does not apply") {
					t.Errorf("%q: %v (exit %d), want a refusal with exit 2", args, err, ExitCode(err))
				}
			}
		}
	}
	walk(NewRootCmd(h.f))
	if seen < 14 {
		t.Fatalf("walked %d commands", seen)
	}
}

// run --dry-run prints the hosts and the command and runs nothing,
// wherever the flag is.
func TestRunDryRunRunsNothing(t *testing.T) {
	for _, args := range [][]string{{"--dry-run", "run", "cattle", "--", "touch /data/x"}, {"run", "--dry-run", "cattle", "--", "touch /data/x"}} {
		h := newHarness(t)
		if code := h.exec(args...); code != 0 {
			t.Fatalf("%q: exit %d %s", args, code, h.err)
		}
		if len(h.conn.lines()) != 0 {
			t.Fatalf("%q ran %q", args, h.conn.lines())
		}
		if !strings.Contains(h.out.String(), "would run on 2 host(s)") || !strings.Contains(h.out.String(), "c1, c2") || !strings.Contains(h.out.String(), "touch /data/x") {
			t.Fatalf("%q: %s", args, h.out)
		}
	}
	h := newHarness(t)
	if code := h.exec("--json", "--dry-run", "run", "cattle", "--", "uptime"); code != 0 || len(h.conn.lines()) != 0 {
		t.Fatalf("exit %d, ran %q", code, h.conn.lines())
	}
	var ev struct {
		Event string `json:"event"`
		runPlanEvent
	}
	if err := json.Unmarshal([]byte(h.out.String()), &ev); err != nil || ev.Event != "run_plan" || strings.Join(ev.Hosts, ",") != "c1,c2" || ev.Cmd != "uptime" {
		t.Fatalf("%v %+v %s", err, ev, h.out)
	}
}

// A job file that does not parse makes migrate-jobs exit 2 (it used to
// exit 0), after the other files' diffs, and nothing is written.
func TestMigrateJobsParseErrorIsExit2(t *testing.T) {
	dir := t.TempDir()
	good := "job \"web\" {\n  group \"g\" {\n    task \"t\" {\n      driver = \"docker\"\n      config {\n        volumes = [\"/old/web:/data\"]\n      }\n    }\n  }\n}\n"
	if err := os.WriteFile(filepath.Join(dir, "web.hcl"), []byte(good), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "broken.hcl"), []byte("job \"x\" {\n  group = {\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, extra := range [][]string{nil, {"--write", "--yes"}} {
		h := newHarness(t)
		args := append([]string{"migrate-jobs", "--dir", dir, "--from", "/old", "--to", "/new"}, extra...)
		root := NewRootCmd(h.f)
		root.SetArgs(args)
		err := Execute(context.Background(), root)
		if ExitCode(err) != ExitUsage || !strings.Contains(fmt.Sprint(err), "1 job file(s) do not parse") {
			t.Fatalf("%q: exit %d: %v\n%s", args, ExitCode(err), err, h.err)
		}
		if !strings.Contains(h.out.String(), "+") {
			t.Fatalf("%q: the good file's diff is missing:\n%s", args, h.out)
		}
		if b, _ := os.ReadFile(filepath.Join(dir, "web.hcl")); string(b) != good {
			t.Fatalf("%q wrote web.hcl", args)
		}
	}
}

// A runbook given by a relative path resumes from another directory, by
// "last" or an id prefix, retrying only the host that failed.
func TestResumeFromAnotherDirectoryRetriesFailedHosts(t *testing.T) {
	h := newHarness(t)
	state := t.TempDir()
	getenv := h.f.Getenv
	h.f.Getenv = func(k string) string {
		if k == "XDG_STATE_HOME" {
			return state
		}
		return getenv(k)
	}
	rbDir := t.TempDir()
	if err := os.WriteFile(filepath.Join(rbDir, "rb.yaml"), []byte("name: r\nsteps:\n  - {title: touch, hosts: cattle, run: 'touch /x'}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	failC2 := true
	h.conn.handler = func(host string, c sshexec.Cmd) (string, string, int) {
		if host == "c2" && failC2 {
			return "", "boom", 1
		}
		return "", "", 0
	}
	wd, _ := os.Getwd()
	t.Cleanup(func() { _ = os.Chdir(wd) })
	if err := os.Chdir(rbDir); err != nil {
		t.Fatal(err)
	}
	if code := h.exec("--yes", "runbook", "run", "rb.yaml"); code != ExitFailed {
		t.Fatalf("first run: exit %d\n%s", code, h.err)
	}
	if err := os.Chdir(t.TempDir()); err != nil {
		t.Fatal(err)
	}
	failC2 = false
	h.conn.hosts.Reset()
	if code := h.exec("--yes", "resume", "last"); code != 0 {
		t.Fatalf("resume last: exit %d\n%s", code, h.err)
	}
	if strings.Join(h.conn.lines(), ";") != "c2: touch /x" {
		t.Fatalf("resume ran %q, want only c2's retry", h.conn.lines())
	}
	if !strings.Contains(h.err.String(), "step 1 already finished on c1") {
		t.Fatalf("%s", h.err)
	}
	runs, _ := tasks.History(filepath.Join(state, "hoctl"))
	if len(runs) != 1 {
		t.Fatalf("history in %s: %d runs\n%s", state, len(runs), h.err)
	}
	if runs[0].Status != tasks.StatusOK || !filepath.IsAbs(runs[0].Params["file"]) {
		t.Fatalf("%+v", runs[0])
	}
	// A finished run by a prefix of its id: refused, exit 3.
	root := NewRootCmd(h.f)
	root.SetArgs([]string{"--yes", "resume", runs[0].ID[:20]})
	if err := Execute(context.Background(), root); ExitCode(err) != ExitRefused || !strings.Contains(fmt.Sprint(err), "finished successfully") {
		t.Fatalf("exit %d: %v", ExitCode(err), err)
	}
}

// history lists the newest 20 on a terminal unless -n/--max says
// otherwise, everything when piped; bad filters are usage errors. --limit,
// its old name (a TARGET in every other command), still maps to it, with a
// warning.
func TestHistoryLimitAndFilters(t *testing.T) {
	state := t.TempDir()
	runs := filepath.Join(state, "hoctl", "runs")
	if err := os.MkdirAll(runs, 0o700); err != nil {
		t.Fatal(err)
	}
	base := time.Now().Add(-48 * time.Hour)
	for i := 0; i < 25; i++ {
		start := base.Add(time.Duration(i) * time.Hour)
		id := tasks.NewRunID(start)
		status := tasks.StatusOK
		if i == 24 {
			status = tasks.StatusFailed
		}
		var b []byte
		for _, r := range []tasks.Record{{Type: "run_start", Time: start, Run: id, Command: "hoctl x"}, {Type: "run_end", Time: start, Status: status}} {
			line, _ := json.Marshal(r)
			b = append(append(b, line...), '\n')
		}
		if err := os.WriteFile(filepath.Join(runs, id+".jsonl"), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	rows := func(tty bool, args ...string) (int, string, int) {
		h := newHarness(t)
		getenv := h.f.Getenv
		h.f.Getenv = func(k string) string {
			if k == "XDG_STATE_HOME" {
				return state
			}
			return getenv(k)
		}
		h.f.IO.SetTTY(false, tty, false)
		code := h.runLine(append([]string{"history"}, args...)...)
		return strings.Count(h.out.String(), "hoctl x"), h.err.String(), code
	}
	for _, c := range []struct {
		tty  bool
		args []string
		want int
	}{{true, nil, 20}, {false, nil, 25}, {true, []string{"-n", "0"}, 25}, {false, []string{"-n", "3"}, 3}, {false, []string{"--max", "4"}, 4},
		{false, []string{"--limit", "3"}, 3},
		{false, []string{"--failed"}, 1}, {false, []string{"--since", "30h30m"}, 7}, {false, []string{"--kind", "deploy"}, 0}} {
		n, errOut, code := rows(c.tty, c.args...)
		if n != c.want || code != 0 {
			t.Errorf("tty %v %q: %d rows (exit %d), want %d\n%s", c.tty, c.args, n, code, c.want, errOut)
		}
		// The footer names the current flag: --limit warns that it will go.
		if c.tty && c.args == nil && (!strings.Contains(errOut, "the newest 20 shown; older ones: -n N (0: all)") || strings.Contains(errOut, "--limit")) {
			t.Errorf("no note that older runs are hidden, with the flag that shows them: %s", errOut)
		}
	}
	if _, errOut, _ := rows(false, "--limit", "2"); !strings.Contains(errOut, "warning: history --limit is now -n/--max") {
		t.Errorf("--limit: no deprecation warning:\n%s", errOut)
	}
	for _, args := range [][]string{{"--kind", "bogus"}, {"--since", "yesterday"}, {"-n", "-1"}, {"last", "--failed"}, {"last", "-n", "2"}, {"-n", "2", "--limit", "3"}} {
		if _, errOut, code := rows(false, args...); code != ExitUsage {
			t.Errorf("%q: exit %d, want 2\n%s", args, code, errOut)
		}
	}
}

// An empty --limit (`--limit "$CANARY"` with the variable unset) is an
// error, never "no limit": it would act on every target.
func TestEmptyLimitIsRefused(t *testing.T) {
	for _, args := range [][]string{
		{"--dry-run", "deploy", "--limit", ""},
		{"--dry-run", "deploy", "--limit", " "},
		{"runbook", "plan", "x.yaml", "--limit="},
		{"--dry-run", "resume", "last", "--limit", ""},
	} {
		h := newHarness(t)
		root := NewRootCmd(h.f)
		root.SetArgs(args)
		err := Execute(context.Background(), root)
		if ExitCode(err) != ExitUsage || !strings.Contains(fmt.Sprint(err), "--limit: empty target") {
			t.Errorf("%q: %v (exit %d), want the empty --limit refused with exit 2", args, err, ExitCode(err))
		}
	}
}

// managed: false keeps a host out of deploy only; run and runbook steps
// still change it, so the table must not call it read-only.
func TestUnmanagedHostIsNotCalledReadOnly(t *testing.T) {
	h := newHarness(t)
	if code := h.exec("hosts", "fractal"); code != 0 {
		t.Fatalf("code %d: %s", code, h.err)
	}
	if out := h.out.String(); strings.Contains(out, "read-only") || !strings.Contains(out, "no (not deployed)") {
		t.Fatalf("unmanaged host shown as:\n%s", out)
	}
}

// help and completion print text and scripts: --json is refused there
// rather than ignored (a script on stdout is not an event).
func TestJSONRefusedByHelpAndCompletion(t *testing.T) {
	for _, args := range [][]string{{"--json", "help"}, {"help", "--json", "inventory"}, {"--json", "completion", "bash"}, {"completion", "zsh", "--json"}} {
		h := newHarness(t)
		root := NewRootCmd(h.f)
		root.SetArgs(args)
		err := Execute(context.Background(), root)
		if ExitCode(err) != ExitUsage || !strings.Contains(fmt.Sprint(err), "--json does not apply") {
			t.Errorf("%q: %v (exit %d), want a refusal with exit 2", args, err, ExitCode(err))
		}
	}
	h := newHarness(t)
	root := NewRootCmd(h.f)
	root.SetArgs([]string{"--json", "version"})
	if err := Execute(context.Background(), root); err != nil {
		t.Errorf("--json version: %v", err)
	}
}
