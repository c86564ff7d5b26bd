package e2e

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

func startRun(t *testing.T, inv string, env []string, args ...string) (*exec.Cmd, *bytes.Buffer) {
	t.Helper()
	cmd := exec.Command(hoctlBin, args...)
	cmd.Env = append(append(os.Environ(), "HOCTL_INVENTORY="+inv, "NO_COLOR=1"), env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true} // no terminal to ask on
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	return cmd, &out
}

func waitProcs(t *testing.T, pattern string, n int) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for countProcs(t, pattern) < n {
		if time.Now().After(deadline) {
			t.Fatalf("%q never reached %d processes", pattern, n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Two operators on two workstations (two state directories, so the local
// flock cannot help): the Consul lock lets exactly one proceed.
func TestClusterLockExcludesAnotherWorkstation(t *testing.T) {
	rb := writeRunbook(t, "name: cl\nlock: cl-scope\ncluster_lock: true\nsteps:\n  - {title: hold, hosts: h06, run: 'sleep 3.25'}\n")
	a, out := startRun(t, fleet.Inventory, stateEnv(t), "--yes", "runbook", "run", rb)
	waitProcs(t, "^sleep 3.25$", 1)
	r := hoctlEnv(t, fleet.Inventory, stateEnv(t), "--yes", "runbook", "run", rb)
	if r.code != 3 || !strings.Contains(r.stderr, `cluster lock "cl-scope" is held by`) || !strings.Contains(r.stderr, fmt.Sprintf("pid %d", a.Process.Pid)) {
		t.Fatalf("second operator: exit %d\n%s", r.code, r.stderr)
	}
	if err := a.Wait(); err != nil {
		t.Fatalf("first operator: %v\n%s", err, out)
	}
	if n := len(fleetConsul.Sessions()); n != 0 {
		t.Fatalf("%d sessions left after both runs", n)
	}
}

func TestLostClusterLockStopsBeforeNextStep(t *testing.T) {
	marker := fmt.Sprintf("/data/after-lost-%d", time.Now().UnixNano())
	rb := writeRunbook(t, fmt.Sprintf("name: lost\nlock: lost-scope\ncluster_lock: true\nsteps:\n  - {title: long, hosts: h07, run: 'sleep 2.75'}\n  - {title: next, hosts: h07, run: 'touch %s'}\n", marker))
	a, out := startRun(t, fleet.Inventory, stateEnv(t), "--yes", "runbook", "run", rb)
	waitProcs(t, "^sleep 2.75$", 1)
	sessions := fleetConsul.Sessions()
	if len(sessions) != 1 {
		t.Fatalf("sessions: %v", sessions)
	}
	fleetConsul.InvalidateSession(sessions[0])
	err := a.Wait()
	ee, ok := err.(*exec.ExitError)
	if !ok || ee.ExitCode() != 1 || !strings.Contains(out.String(), "cluster lock lost") {
		t.Fatalf("exit %v\n%s", err, out)
	}
	if got := onHosts(t, "h07", "test -e "+marker+" && echo RAN || echo stopped"); !strings.Contains(got, "stopped") {
		t.Fatal("step 2 ran after the lock was lost")
	}
}

func TestClusterLockThroughSSHTunnel(t *testing.T) {
	data, err := os.ReadFile(fleet.Inventory)
	if err != nil {
		t.Fatal(err)
	}
	inv := filepath.Join(t.TempDir(), "inventory.yaml")
	if err := os.WriteFile(inv, []byte(strings.Replace(string(data), "consul:\n", "consul:\n  via: h08\n", 1)), 0o600); err != nil {
		t.Fatal(err)
	}
	rb := writeRunbook(t, "name: via\nlock: via-scope\ncluster_lock: true\nsteps:\n  - {title: one, hosts: h08, run: 'sleep 1.75'}\n")
	a, out := startRun(t, inv, stateEnv(t), "--yes", "runbook", "run", rb)
	waitProcs(t, "^sleep 1.75$", 1)
	if v, sid, ok := fleetConsul.Get("hoctl/locks/via-scope"); !ok || sid == "" || !strings.Contains(v, fmt.Sprintf("pid %d", a.Process.Pid)) {
		t.Fatalf("lock not held during the run: %q session %q", v, sid)
	}
	// The connections to Consul must come from h08's sshd (the tunnel),
	// not from hoctl.
	ss, err := exec.Command("ss", "-Htnp", "dst", fleetConsul.Addr).Output()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(ss), `"sshd"`) || strings.Contains(string(ss), `"hoctl"`) {
		t.Fatalf("connections to Consul:\n%s", ss)
	}
	if err := a.Wait(); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
}
