package e2e

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// stateEnv gives a test its own journal and lock directory.
func stateEnv(t *testing.T) []string {
	t.Helper()
	return []string{"XDG_STATE_HOME=" + t.TempDir()}
}

func writeRunbook(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "rb.yaml")
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// onHosts runs a shell command on lab hosts and returns hoctl's stdout.
func onHosts(t *testing.T, target, script string) string {
	t.Helper()
	r := hoctl(t, fleet.Inventory, "run", target, "--", script)
	if r.code != 0 {
		t.Fatalf("run %s -- %s: exit %d\n%s%s", target, script, r.code, r.stdout, r.stderr)
	}
	return r.stdout
}

func TestDryRunAndPlanChangeNothing(t *testing.T) {
	dir := fmt.Sprintf("/data/dry-%d", time.Now().UnixNano())
	rb := writeRunbook(t, fmt.Sprintf(`
name: dry
lock: dry
steps:
  - title: create
    hosts: odd
    before: test -d /data
    run: mkdir -p %[1]s && touch %[1]s/made
    after: test -e %[1]s/made
`, dir))
	env := stateEnv(t)
	for _, args := range [][]string{{"--dry-run", "runbook", "run", rb}, {"runbook", "plan", rb}, {"--dry-run", "--yes", "runbook", "run", rb}} {
		r := hoctlEnv(t, fleet.Inventory, env, args...)
		if r.code != 0 || !strings.Contains(r.stdout, "mkdir -p "+dir) || !strings.Contains(r.stdout, "passes now") {
			t.Fatalf("%v: exit %d\n%s\n%s", args, r.code, r.stdout, r.stderr)
		}
	}
	out := onHosts(t, "all", "test -e "+dir+" && echo EXISTS || echo absent")
	if strings.Contains(out, "EXISTS") {
		t.Fatalf("a dry run changed a host:\n%s", out)
	}
	if r := hoctlEnv(t, fleet.Inventory, env, "--json", "history"); strings.TrimSpace(r.stdout) != "" {
		t.Fatalf("a dry run was journaled as a run: %s", r.stdout)
	}
	// Without a terminal and without --yes: not confirmed, exit 6, no change.
	r := hoctlEnv(t, fleet.Inventory, env, "runbook", "run", rb)
	if r.code != 6 || !strings.Contains(r.stderr, "without --yes") {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	if out := onHosts(t, "all", "test -e "+dir+" && echo EXISTS || echo absent"); strings.Contains(out, "EXISTS") {
		t.Fatal("refused run changed a host")
	}
	r = hoctlEnv(t, fleet.Inventory, env, "--yes", "runbook", "run", rb)
	if r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	if n := strings.Count(onHosts(t, "odd", "test -e "+dir+"/made && echo MADE"), "MADE"); n != fleetSize/2 {
		t.Fatalf("%d hosts changed, want %d", n, fleetSize/2)
	}
	onHosts(t, "all", "rm -rf "+dir)
}

func TestExitCodesForRefusedAndUnverifiedSteps(t *testing.T) {
	env := stateEnv(t)
	rb := writeRunbook(t, "name: r\nsteps:\n  - {title: guarded, hosts: h01, before: 'test -e /nonexistent', run: 'touch /data/should-not-exist'}\n")
	// The before check fails when planned: exit 3, the check named, no
	// question, no run journaled (even without --yes or a terminal).
	for _, args := range [][]string{{"--yes", "runbook", "run", rb}, {"runbook", "run", rb}} {
		r := hoctlEnv(t, fleet.Inventory, env, args...)
		if r.code != 3 || !strings.Contains(r.stderr, `before check of step 1 "guarded" fails on h01`) || strings.Contains(r.stderr, "--yes") {
			t.Fatalf("%q: exit %d\n%s", args, r.code, r.stderr)
		}
	}
	if h := hoctlEnv(t, fleet.Inventory, env, "--json", "history"); strings.TrimSpace(h.stdout) != "" {
		t.Fatalf("a refused plan was journaled: %s", h.stdout)
	}
	if out := onHosts(t, "h01", "test -e /data/should-not-exist && echo EXISTS || echo absent"); strings.Contains(out, "EXISTS") {
		t.Fatal("action ran after its before check failed")
	}
	rb = writeRunbook(t, "name: u\nsteps:\n  - {title: unverified, hosts: h02, run: 'echo changed > /data/u', after: 'grep -q never /data/u'}\n")
	r := hoctlEnv(t, fleet.Inventory, env, "--yes", "runbook", "run", rb)
	if r.code != 5 || !strings.Contains(r.stderr, "changed but not verified") {
		t.Fatalf("exit %d\n%s", r.code, r.stderr)
	}
	hist := hoctlEnv(t, fleet.Inventory, env, "history")
	if !strings.Contains(hist.stdout, "unverified") {
		t.Fatalf("history:\n%s", hist.stdout)
	}
}

func TestKill9MidRunThenResume(t *testing.T) {
	env := stateEnv(t)
	tag := fmt.Sprintf("k9-%d", time.Now().UnixNano())
	onHosts(t, "h03,h04", "mkdir -p /data/"+tag+" && touch /data/"+tag+"/slow")
	rb := writeRunbook(t, fmt.Sprintf(`
name: kill9
lock: kill9
steps:
  - title: count step one
    hosts: h03,h04
    run: echo x >> /data/%[1]s/one
  - title: slow while the flag exists
    hosts: h03,h04
    before: test -d /data/%[1]s
    run: if [ -e /data/%[1]s/slow ]; then sleep 600; fi; touch /data/%[1]s/two
    after: test -e /data/%[1]s/two
  - title: step three
    hosts: h03,h04
    run: touch /data/%[1]s/three
`, tag))
	cmd, _ := startRun(t, fleet.Inventory, env, "--yes", "runbook", "run", rb)
	waitProcs(t, "^sleep 600$", 2)
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	// The connection died with hoctl: the remote sleeps must go too.
	if !waitEvery(t, 50*time.Millisecond, 10*time.Second, "the remote commands to end with hoctl", func() error {
		if countProcs(t, "^sleep 600$") > 0 {
			return errors.New("remote commands survived kill -9 of hoctl")
		}
		return nil
	}) {
		t.FailNow()
	}

	var runs []struct {
		Run        string `json:"run"`
		Status     string `json:"status"`
		FailedStep int    `json:"failed_step"`
	}
	h := hoctlEnv(t, fleet.Inventory, env, "--json", "history")
	for _, l := range strings.Split(strings.TrimSpace(h.stdout), "\n") {
		var r struct {
			Run        string `json:"run"`
			Status     string `json:"status"`
			FailedStep int    `json:"failed_step"`
		}
		if err := json.Unmarshal([]byte(l), &r); err != nil {
			t.Fatalf("history --json: %q", l)
		}
		runs = append(runs, r)
	}
	if len(runs) != 1 || runs[0].Status != "interrupted" || runs[0].FailedStep != 2 {
		t.Fatalf("history after kill -9: %+v", runs)
	}
	id := runs[0].Run

	onHosts(t, "h03,h04", "rm /data/"+tag+"/slow")
	r := hoctlEnv(t, fleet.Inventory, env, "--yes", "resume", id)
	if r.code != 0 {
		t.Fatalf("resume: exit %d\n%s", r.code, r.stderr)
	}
	if !strings.Contains(r.stderr, "resuming run "+id+" at step 2 of 3") {
		t.Fatalf("resume output:\n%s", r.stderr)
	}
	got := onHosts(t, "h03,h04", "wc -l < /data/"+tag+"/one; ls /data/"+tag)
	for _, host := range []string{"h03", "h04"} {
		if !strings.Contains(got, host+" | 1\n") || !strings.Contains(got, host+" | three") || !strings.Contains(got, host+" | two") {
			t.Fatalf("after resume (step one must have run once, two and three done):\n%s", got)
		}
	}
	full := hoctlEnv(t, fleet.Inventory, env, "history", id)
	if !strings.Contains(full.stdout, "resumed at step 2") || !strings.Contains(full.stdout, "run ended: ok") || strings.Count(full.stdout, "count step one") != 1 {
		t.Fatalf("journal must show both parts:\n%s", full.stdout)
	}
	if r := hoctlEnv(t, fleet.Inventory, env, "--yes", "resume", id); r.code != 3 || !strings.Contains(r.stderr, "finished successfully") {
		t.Fatalf("resuming a finished run: exit %d %s", r.code, r.stderr)
	}
	onHosts(t, "h03,h04", "rm -rf /data/"+tag)
}

func TestConcurrentRunsWithSameLock(t *testing.T) {
	env := stateEnv(t)
	rb := writeRunbook(t, "name: slow\nlock: shared-scope\nsteps:\n  - {title: hold, hosts: h05, run: 'sleep 3'}\n")
	cmd, out := startRun(t, fleet.Inventory, env, "--yes", "runbook", "run", rb)
	waitProcs(t, "^sleep 3$", 1)
	r := hoctlEnv(t, fleet.Inventory, env, "--yes", "runbook", "run", rb)
	if r.code != 3 || !strings.Contains(r.stderr, fmt.Sprintf(`lock "shared-scope" is held by pid %d`, cmd.Process.Pid)) {
		t.Fatalf("second run: exit %d\n%s", r.code, r.stderr)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("first run: %v\n%s", err, out.String())
	}
}
