package e2e

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hoctl/hoctl/internal/lab"
)

// Two `hoctl resume` of one run at once: the second refuses (exit 3),
// naming the first, and the remaining step runs once per host, not
// twice. The runbook has no lock: of its own, so only the run's lock
// stands between them.
func TestConcurrentResumesOfOneRun(t *testing.T) {
	env := stateEnv(t)
	tag := fmt.Sprintf("res-%d", time.Now().UnixNano())
	marker := fmt.Sprintf("%d.%d", 2000+os.Getpid()%1000, time.Now().Nanosecond()%1000)
	onHosts(t, "h05,h06", "mkdir -p /data/"+tag+" && touch /data/"+tag+"/fail")
	t.Cleanup(func() { onHosts(t, "h05,h06", "rm -rf /data/"+tag) })
	rb := writeRunbook(t, fmt.Sprintf(`
name: twice
steps:
  - title: count once
    hosts: h05,h06
    before: if [ -e /data/%[1]s/hold ]; then sleep %[2]s; fi; true
    run: test ! -e /data/%[1]s/fail && echo x >> /data/%[1]s/count
`, tag, marker))
	r := hoctlEnv(t, fleet.Inventory, env, "--yes", "runbook", "run", rb)
	if r.code != 1 || !strings.Contains(r.stderr, "continue with: hoctl resume") {
		t.Fatalf("first run: exit %d\n%s", r.code, r.stderr)
	}
	onHosts(t, "h05,h06", "rm /data/"+tag+"/fail && touch /data/"+tag+"/hold")

	// The first resume is held in its plan (the before check waits), so
	// it has not journaled anything yet when the second starts.
	first, out := startRun(t, fleet.Inventory, env, "--yes", "resume", "last")
	waitProcs(t, "^sleep "+marker+"$", 2)
	second, out2 := startRun(t, fleet.Inventory, env, "--yes", "resume", "last")
	exited := make(chan error, 1)
	go func() { exited <- second.Wait() }()
	var secondErr error
	// Until the second exits, or gets as far as its plan (no exclusion),
	// or 20 s: what it did is checked below.
	_ = poll(20*time.Millisecond, 20*time.Second, func() error {
		select {
		case secondErr = <-exited:
			return nil
		default:
		}
		if countProcs(t, "^sleep "+marker+"$") >= 4 {
			return nil
		}
		return errNotYet
	})
	onHosts(t, "h05,h06", "rm /data/"+tag+"/hold")
	pids, _ := lab.ToolCmd(context.Background(), "pgrep", "-f", "^sleep "+marker+"$").Output()
	for _, p := range strings.Fields(string(pids)) {
		if pid, err := strconv.Atoi(p); err == nil {
			_ = syscall.Kill(pid, syscall.SIGTERM)
		}
	}
	if err := first.Wait(); err != nil {
		t.Fatalf("first resume: %v\n%s", err, out)
	}
	if secondErr == nil {
		secondErr = <-exited
	}
	var ee *exec.ExitError
	if !errors.As(secondErr, &ee) || ee.ExitCode() != 3 || !strings.Contains(out2.String(), fmt.Sprintf("is being resumed by pid %d", first.Process.Pid)) {
		t.Fatalf("second resume: %v\n%s", secondErr, out2)
	}
	got := onHosts(t, "h05,h06", "wc -l < /data/"+tag+"/count")
	if strings.Count(got, "| 1\n") != 2 {
		t.Fatalf("the step ran more than once per host:\n%s", got)
	}
}
