package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/hoctl/hoctl/internal/lab"
)

// waitStatus runs hoctl status until its output has every want (and, when
// code >= 0, that exit code), or fails the test after bound.
func waitStatus(t *testing.T, inv string, env []string, bound time.Duration, code int, want ...string) result {
	t.Helper()
	var r result
	if !waitEvery(t, time.Second, bound, fmt.Sprintf("status to show %q (exit %d)", want, code), func() error {
		r = hoctlEnv(t, inv, env, "status")
		ok := code < 0 || r.code == code
		for _, w := range want {
			ok = ok && strings.Contains(r.stdout, w)
		}
		if !ok {
			return fmt.Errorf("exit %d\n%s%s", r.code, r.stdout, r.stderr)
		}
		return nil
	}) {
		t.FailNow()
	}
	return r
}

// healthyAgain waits for the real cluster to be as the next test expects
// it (clusterHealthy), and for hoctl status to say so: every host
// reachable with no failed unit, Consul with its leader, 4 members alive
// and failure tolerance 1, Nomad's nodes all ready and eligible.
func healthyAgain(t *testing.T, l *lab.Lab, env []string) {
	t.Helper()
	clusterHealthy(t, l)
	waitStatus(t, l.Inventory, env, 2*time.Minute, -1, "4 members, 4 alive, failure tolerance 1", "nodes 4 ready, 0 draining, 0 ineligible",
		"✓ host zippy", "✓ host c1", "✓ host c2", "✓ host c3")
}

// killConsulServer kills host's Consul server with kill -9, systemd's
// Restart= held off by a runtime drop-in (gone with a reboot too). The
// returned restart starts it again; the test's clean-up calls it too.
func killConsulServer(t *testing.T, l *lab.Lab, host string) (restart func() error) {
	t.Helper()
	hold := "/run/systemd/system/consul.service.d/50-hoctl-e2e-hold.conf"
	restart = func() error {
		if out, err := inMachine(l, host, "rm -f "+hold+"; systemctl daemon-reload; systemctl reset-failed consul; systemctl start consul && systemctl is-active consul"); err != nil {
			return fmt.Errorf("restarting %s's consul: %w %s", host, err, out)
		}
		return nil
	}
	t.Cleanup(func() {
		if err := restart(); err != nil {
			t.Error(err)
		}
	})
	mustInMachine(t, l, host, "mkdir -p "+hold[:strings.LastIndexByte(hold, '/')]+" && printf '[Service]\\nRestart=no\\n' > "+hold+
		" && systemctl daemon-reload && kill -9 $(systemctl show -p MainPID --value consul)")
	return restart
}

// hoctl status on the real cluster: all green in the day-to-day state;
// then a real failed unit on c2, a Consul server killed with kill -9 (its
// restart held off: failure tolerance 0), an ineligible Nomad node and a
// stale standby all show, problems first, each with the command that
// looks deeper; a hung (frozen) host shows as timed out. Everything is
// restored after, also when the test fails.
func TestStatus(t *testing.T) {
	l := realCluster(t)
	env := stateEnv(t)
	if r := hoctlEnv(t, l.Inventory, env, "--yes", "replicate", "zippy", "c1"); r.code != 0 {
		t.Fatalf("replicate: exit %d\n%s", r.code, r.stderr)
	}
	r := hoctlEnv(t, l.Inventory, env, "status")
	if r.code != 0 {
		t.Fatalf("status of a healthy cluster: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	for _, want := range []string{"✓ host zippy", "✓ host c2", "✓ consul consul", "4 members, 4 alive, failure tolerance 1", "✓ nomad nomad", "nodes 4 ready",
		"✓ nfs data-services ", "primary zippy (owner key), serving on zippy", "✓ nfs data-services standby c1", "lag ", "✓ disk zippy:/persist"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("status lacks %q:\n%s", want, r.stdout)
		}
	}

	// A unit that really fails on c2.
	const unit = "hoctl-e2e-backup.service"
	t.Cleanup(func() {
		_, _ = inMachine(l, "c2", "systemctl reset-failed "+unit+"; rm -f /etc/systemd/system/"+unit+"; systemctl daemon-reload")
	})
	mustInMachine(t, l, "c2", "printf '[Service]\\nType=oneshot\\nExecStart=/bin/sh -c \"echo backup target gone; exit 1\"\\n' > /etc/systemd/system/"+unit+
		" && systemctl daemon-reload && { systemctl start "+unit+" 2>/dev/null; systemctl is-failed "+unit+"; }")

	restartConsul := killConsulServer(t, l, "c3")
	// c3's Nomad node marked ineligible.
	t.Cleanup(func() {
		_, _ = nomadOn(t, l, "nomad node eligibility -enable $(nomad node status -t '{{range .}}{{if eq .Name \"c3\"}}{{.ID}}{{end}}{{end}}')")
	})
	if out, err := nomadOn(t, l, "nomad node eligibility -disable $(nomad node status -t '{{range .}}{{if eq .Name \"c3\"}}{{.ID}}{{end}}{{end}}')"); err != nil {
		t.Fatalf("nomad node eligibility: %v %s", err, out)
	}

	stale := labInventory(t, l, "max_lag: 15m", "max_lag: 1s")
	time.Sleep(1500 * time.Millisecond)
	// Autopilot needs a moment to see c3's server gone.
	r = waitStatus(t, stale, env, time.Minute, 1, "CANNOT LOSE A SERVER", "not alive: c3")
	t.Logf("status with problems:\n%s", r.stdout)
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	if !strings.HasPrefix(lines[0], "✗ consul") || !strings.Contains(lines[0], "failure tolerance 0, CANNOT LOSE A SERVER") {
		t.Errorf("the worst problem first:\n%s", r.stdout)
	}
	for _, want := range []string{"! host c2", "failed units: " + unit, "→ hoctl run c2 -- systemctl --failed",
		"! host c3", "failed units: consul.service",
		"! nfs data-services standby c1", "STALE, over max_lag 1s", "→ hoctl replicate --name services", "1 ineligible"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("status lacks %q:\n%s", want, r.stdout)
		}
	}

	// Restored: tolerance 1 again (the restart is real, Raft catches up).
	if err := restartConsul(); err != nil {
		t.Fatal(err)
	}
	mustInMachine(t, l, "c2", "systemctl reset-failed "+unit)
	if out, err := nomadOn(t, l, "nomad node eligibility -enable $(nomad node status -t '{{range .}}{{if eq .Name \"c3\"}}{{.ID}}{{end}}{{end}}')"); err != nil {
		t.Fatalf("nomad node eligibility: %v %s", err, out)
	}
	healthyAgain(t, l, env)

	// A hung host, and --json.
	if err := l.Hang("c2"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.Resume("c2"); healthyAgain(t, l, env) })
	r = hoctlEnv(t, l.Inventory, env, "--json", "status")
	// No timed assertion on a noisy machine: the bound (the SSH
	// handshake's connect_timeout, 5 s, inside the probe's connect_timeout
	// + keepalive) is measured and logged; this only catches a hang.
	t.Logf("status with c2 hung took %s (connect_timeout 5s)", r.duration)
	if r.duration > 30*time.Second {
		t.Errorf("status took %s with a hung host: it waited on it", r.duration)
	}
	var c2 map[string]any
	for _, l := range strings.Split(strings.TrimSpace(r.stdout), "\n") {
		var ev map[string]any
		if err := json.Unmarshal([]byte(l), &ev); err != nil {
			t.Fatalf("not JSON: %q", l)
		}
		if ev["area"] == "host" && ev["name"] == "c2" {
			c2 = ev
		}
	}
	if c2 == nil || c2["level"] != "fail" || !strings.Contains(c2["detail"].(string), "timed out") {
		t.Fatalf("hung c2: %v\n%s", c2, r.stdout)
	}
	if err := l.Resume("c2"); err != nil {
		t.Fatal(err)
	}
}

// --watch refreshes until interrupted.
func TestStatusWatch(t *testing.T) {
	env := stateEnv(t)
	cmd, out := startRun(t, storage.Inventory, env, "status", "--watch", "--interval", "200ms")
	if !waitEvery(t, 50*time.Millisecond, 30*time.Second, "a second refresh", func() error {
		if strings.Count(out.String(), " checks, ") < 2 {
			return fmt.Errorf("none:\n%s", out.String())
		}
		return nil
	}) {
		t.FailNow()
	}
	_ = cmd.Process.Signal(os.Interrupt)
	err := cmd.Wait()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 130 {
		t.Fatalf("interrupted --watch: %v", err)
	}
}
