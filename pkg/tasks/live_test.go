package tasks

import (
	"context"
	"errors"
	"io"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hoctl/hoctl/pkg/hostout/hostouttest"
	"github.com/hoctl/hoctl/pkg/inventory"
	"github.com/hoctl/hoctl/pkg/iostreams"
	"github.com/hoctl/hoctl/pkg/sshexec"
)

// liveFixture is a fixture whose reporter is the live view, as on a
// colour terminal; term collects what it draws.
func liveFixture(t *testing.T) (*fixture, *screen) {
	t.Helper()
	fx := newFixture(t)
	ios, _, _, _ := iostreams.Test()
	ios.SetTTY(false, false, true)
	ios.SetColor(true)
	sc := &screen{}
	ios.ErrOut = sc
	fx.eng.Reporter = NewReporter(ios, nil)
	if _, ok := fx.eng.Reporter.(*liveReporter); !ok {
		t.Fatalf("reporter %T on a terminal", fx.eng.Reporter)
	}
	return fx, sc
}

// screen is a terminal as far as the live view drives one: it keeps the
// lines as they would show after the cursor moves up (CSI n A), lines
// are erased (CSI 2K) and written over; colours are dropped.
type screen struct {
	mu    sync.Mutex
	raw   strings.Builder
	lines []string
	row   int
}

var reCSI = regexp.MustCompile(`^\x1b\[([0-9;?]*)([A-Za-z])`)

func (s *screen) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.raw.Write(p)
	b := string(p)
	for len(b) > 0 {
		if m := reCSI.FindStringSubmatch(b); m != nil {
			switch m[2] {
			case "A":
				n, _ := strconv.Atoi(m[1])
				s.row = max(0, s.row-max(n, 1))
			case "K":
				s.at(s.row)
				s.lines[s.row] = ""
			}
			b = b[len(m[0]):]
			continue
		}
		if b[0] == '\n' {
			s.row++
			s.at(s.row)
			b = b[1:]
			continue
		}
		i := strings.IndexAny(b, "\n\x1b")
		if i == 0 {
			i = 1 // an escape that is not ours: kept, the test looks for it
		}
		if i < 0 {
			i = len(b)
		}
		s.at(s.row)
		s.lines[s.row] += b[:i]
		b = b[i:]
	}
	return len(p), nil
}

func (s *screen) at(row int) {
	for len(s.lines) <= row {
		s.lines = append(s.lines, "")
	}
}

// String is what the screen shows now.
func (s *screen) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return strings.TrimRight(strings.Join(s.lines, "\n"), "\n")
}

func (s *screen) Raw() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.raw.String()
}

// waitFor waits until the screen shows a line matching re, and fails
// the test with the screen when it does not within a generous time.
func (s *screen) waitFor(t *testing.T, re *regexp.Regexp) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !re.MatchString(s.String()) {
		if time.Now().After(deadline) {
			t.Fatalf("the screen never showed %q:\n%s", re, s.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// blockingRunner prints out and then waits for release before its
// command ends: a long command, caught while it runs.
type blockingRunner struct {
	host    string
	out     string
	release chan struct{}
}

func (r *blockingRunner) Name() string { return r.host }
func (r *blockingRunner) Run(ctx context.Context, c sshexec.Cmd) (*sshexec.Result, error) {
	_, _ = io.WriteString(c.Stdout, r.out)
	select {
	case <-r.release:
	case <-ctx.Done():
		return &sshexec.Result{Host: r.host, ExitCode: -1}, ctx.Err()
	}
	return &sshexec.Result{Host: r.host}, nil
}

// While a step's command runs, the live view shows the last line it
// printed on the host's row, made safe: a hostile host's escapes are
// shown, not acted on. Before, the row said "run…" until the command
// ended.
func TestLiveViewShowsEachHostsLastLineWhileItRuns(t *testing.T) {
	fx, sc := liveFixture(t)
	release := make(chan struct{})
	outs := map[string]string{
		"h1": "fetching\nunpacking 3/10\n",
		"h2": "copying 40%\rcopying 80%\r",
		"h3": "start\n" + hostouttest.Hostile,
	}
	fx.eng.Env.Connect = func(_ context.Context, h *inventory.Host) (sshexec.Runner, error) {
		return &blockingRunner{host: h.Name, out: outs[h.Name], release: release}, nil
	}
	rb := fx.runbook(t, "name: l\nsteps:\n  - {title: upgrade, hosts: 'h1,h2,h3', run: upgrade}\n")
	done := make(chan error, 1)
	go func() {
		_, err := fx.eng.Run(context.Background(), rb, RunOptions{})
		done <- err
	}()
	sc.waitFor(t, regexp.MustCompile(`(?m)^    h1 run… unpacking 3/10$`))
	sc.waitFor(t, regexp.MustCompile(`(?m)^    h2 run… copying 80%$`))
	sc.waitFor(t, regexp.MustCompile(`(?m)^    h3 run… .*`+regexp.QuoteMeta(`\x7f end`)+`$`))
	close(release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	raw := sc.Raw()
	if !strings.Contains(raw, `\x1b[?1049h\u202eevil`) {
		t.Errorf("the hostile line is not shown escaped:\n%q", raw)
	}
	// Only the view's own sequences (cursor up, erase line, colour)
	// reach the terminal.
	own := regexp.MustCompile(`\x1b\[[0-9;]*[AKm]`)
	if u := hostouttest.FirstUnsafe(own.ReplaceAllString(raw, "")); u != "" {
		t.Errorf("%s reached the terminal:\n%q", u, raw)
	}
	if !strings.Contains(sc.String(), "✓ [1/1] upgrade") {
		t.Errorf("final screen:\n%s", sc.String())
	}
}

// After a serial step's after check fails on its first host, the view
// says what happened on every host, as the journal does: the failed
// check and then the undo on that host, and the hosts the step then left
// alone as not run. Before, it showed "undo ✓" over the check's output
// ("exit 1", as if the undo had failed) and "waiting" for hosts that
// would never run.
func TestLiveViewAfterSerialAfterCheckFailure(t *testing.T) {
	fx, sc := liveFixture(t)
	fx.hosts.answer = func(host, cmd string) (string, int) {
		if cmd == "healthy?" && host == "h1" {
			return "unhealthy: port 80 closed", 1
		}
		return "", 0
	}
	rb := fx.runbook(t, "name: s\nsteps:\n  - {title: roll, hosts: web, serial: 1, run: change, after: 'healthy?', undo: revert}\n")
	id, err := fx.eng.Run(context.Background(), rb, RunOptions{})
	var ue *UnverifiedError
	if !errors.As(err, &ue) {
		t.Fatalf("err = %v", err)
	}
	got := sc.String()
	for _, want := range []string{
		"✗ [1/1] roll: changed but not verified (after check failed)",
		"    h1 run ✓ · after ✗ · undo ✓\n        after: unhealthy: port 80 closed: exit 1\n",
		"    h2 not run (more than max_fail 0 failed)\n",
		"    h3 not run (more than max_fail 0 failed)\n",
		"    h4 not run (more than max_fail 0 failed)\n",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("the screen lacks %q:\n%s", want, got)
		}
	}
	if strings.Contains(got, "waiting") {
		t.Errorf("a host still waiting after the step ended:\n%s", got)
	}
	// The journal says the same: h1's action, failed check and undo;
	// nothing for h2..h4.
	var h1 []string
	for _, rec := range fx.journal(t, id) {
		switch {
		case rec.Host == "h1" && rec.Type != "":
			h1 = append(h1, rec.Type+" "+rec.Phase+" "+strconv.FormatBool(rec.OK != nil && *rec.OK))
		case rec.Host != "":
			t.Errorf("journaled for %s, which did not run: %+v", rec.Host, rec)
		}
	}
	if strings.Join(h1, ", ") != "action  true, check after false, undo  true" {
		t.Errorf("h1 journaled %q", h1)
	}
}

// A check that fails and then passes on a retry shows as passed, not as
// a failure followed by a pass.
func TestLiveViewRetriedCheckShowsItsLastAttempt(t *testing.T) {
	fx, sc := liveFixture(t)
	var mu sync.Mutex
	tries := 0
	fx.hosts.answer = func(host, cmd string) (string, int) {
		if cmd == "up?" {
			mu.Lock()
			defer mu.Unlock()
			if tries++; tries < 2 {
				return "not yet", 1
			}
		}
		return "", 0
	}
	rb := fx.runbook(t, "name: r\nsteps:\n  - {title: start, hosts: 'db,h1', run: start, after: 'up?', retries: 3, retry_delay: 1ms}\n")
	fx.hosts.answer = func(orig func(string, string) (string, int)) func(string, string) (string, int) {
		return func(host, cmd string) (string, int) {
			switch {
			case host == "h1" && cmd == "start":
				return "boom", 2
			case host == "h1":
				return "", 0
			}
			return orig(host, cmd)
		}
	}(fx.hosts.answer)
	if _, err := fx.eng.Run(context.Background(), rb, RunOptions{}); err == nil {
		t.Fatal("the step should fail on h1")
	}
	if tries != 2 {
		t.Fatalf("up? ran %d times", tries)
	}
	got := sc.String()
	if !strings.Contains(got, "    h1 run ✗\n        run: boom: exit 2\n    db run ✓ · after ✓\n") {
		t.Errorf("screen:\n%s", got)
	}
}

// Without a terminal nothing of the live view reaches machines: plain
// lines say when a command ended, --json events are the journal's
// records, and neither carries a running command's lines.
func TestNoLiveLinesWithoutATerminal(t *testing.T) {
	for _, json := range []bool{false, true} {
		fx := newFixture(t)
		ios, _, stdout, _ := iostreams.Test()
		ios.JSON = json
		errOut := &lockedBuf{w: &strings.Builder{}}
		ios.ErrOut = errOut
		fx.eng.Reporter = NewReporter(ios, nil)
		if _, ok := fx.eng.Reporter.(lineReporter); ok {
			t.Fatalf("json %v: %T shows live lines", json, fx.eng.Reporter)
		}
		fx.hosts.answer = func(string, string) (string, int) { return "unpacking 3/10\n", 0 }
		rb := fx.runbook(t, "name: l\nsteps:\n  - {title: upgrade, hosts: 'h1,h2', run: upgrade}\n")
		if _, err := fx.eng.Run(context.Background(), rb, RunOptions{}); err != nil {
			t.Fatal(err)
		}
		out := bufString(errOut) + stdout.String()
		if json {
			// The command's output is in its action record, as journaled,
			// and in no other event.
			actions := 0
			for _, l := range strings.Split(strings.TrimSpace(stdout.String()), "\n") {
				switch {
				case strings.Contains(l, "unpacking") && strings.Contains(l, `"event":"action"`):
					actions++
				case strings.Contains(l, "unpacking"):
					t.Errorf("output outside the action record: %s", l)
				}
			}
			if actions != 2 {
				t.Errorf("%d action records with the output:\n%s", actions, stdout)
			}
			continue
		}
		if strings.Contains(out, "unpacking") || strings.Contains(out, "\x1b[") {
			t.Errorf("plain output shows a running command's line or escapes:\n%s", out)
		}
	}
}

func bufString(b *lockedBuf) string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.w.(*strings.Builder).String()
}
