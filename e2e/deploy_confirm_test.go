package e2e

// The magic rollback (pkg/deploy/confirm.go) on the real cluster: real
// systemd as each host's PID 1 runs the transient rollback timer, real Nix
// generations are switched (internal/lab nix.go), and a generation that
// stops sshd really shuts out every new connection.

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/hoctl/hoctl/internal/lab"
)

// confirmCluster is the real cluster with hosts' generations saved. The
// cleanup, also after a failure, works without SSH (a test may leave sshd
// dead): it disarms any rollback, starts sshd, switches each host back to
// the generation it ran and deletes the newer ones, makes its Nomad node
// eligible again, and checks all of that.
func confirmCluster(t *testing.T, hosts ...string) *lab.Lab {
	t.Helper()
	l := realCluster(t)
	ctx := context.Background()
	restore, err := l.SaveNixSystems(ctx, hosts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		for _, h := range hosts {
			u := "hoctl-rollback-" + h
			if out, err := inMachine(l, h, "systemctl stop "+u+".timer "+u+".service 2>/dev/null; systemctl reset-failed "+u+".timer "+u+".service 2>/dev/null; rm -f /run/"+u+".fired; systemctl start ssh.service"); err != nil {
				t.Errorf("%s: disarming: %v: %s", h, err, out)
			}
		}
		if err := restore(ctx); err != nil {
			t.Errorf("restoring the generations: %v", err)
		}
		for _, h := range hosts {
			script := ". /etc/profile.d/hoctl-lab-agents.sh; nomad node eligibility -enable -self >/dev/null && " +
				"systemctl is-system-running --wait; systemctl is-active ssh.service; systemctl list-units --all --plain --no-legend 'hoctl-rollback-*'; " +
				"nomad node status -self -t '{{.SchedulingEligibility}}'"
			if out, err := inMachine(l, h, script); err != nil || out != "running\nactive\neligible" {
				t.Errorf("%s not left as found: %v\n%s", h, err, out)
			}
		}
	})
	return l
}

// runningGeneration is the store path host runs, read without SSH.
func runningGeneration(t *testing.T, l *lab.Lab, host string) string {
	t.Helper()
	out, err := inMachine(l, host, "readlink /run/current-system")
	if err != nil || !strings.HasPrefix(out, "/nix/store/") {
		t.Fatalf("%s: /run/current-system: %v %q", host, err, out)
	}
	return out
}

// rollbackUnits lists host's hoctl-rollback units and timers, loaded or
// not running: empty when nothing is armed.
func rollbackUnits(t *testing.T, l *lab.Lab, host string) string {
	t.Helper()
	out, err := inMachine(l, host, "systemctl list-timers --all --plain --no-legend 'hoctl-rollback-*'; systemctl list-units --all --plain --no-legend 'hoctl-rollback-*'")
	if err != nil {
		t.Fatalf("%s: %v %s", host, err, out)
	}
	return out
}

func nomadEligibility(t *testing.T, l *lab.Lab, host string) string {
	t.Helper()
	out, err := inMachine(l, host, ". /etc/profile.d/hoctl-lab-agents.sh; nomad node status -self -t '{{.SchedulingEligibility}}'")
	if err != nil {
		t.Fatalf("%s: nomad node status: %v %s", host, err, out)
	}
	return out
}

// A good generation with the magic rollback: confirmed over a new
// connection, the rollback timer gone, and the host still on the new
// generation once the timeout has passed.
func TestRealDeployConfirmed(t *testing.T) {
	l := confirmCluster(t, "c2")
	before := runningGeneration(t, l, "c2")
	start := time.Now()
	const timeout = 30 * time.Second
	r := hoctlEnv(t, l.Inventory, stateEnv(t), "--yes", "deploy", "--confirm-timeout", timeout.String(), "c2")
	if r.code != 0 || !strings.Contains(r.stderr, "magic rollback armed (30s from the deploy command's end)") || !strings.Contains(r.stderr, "confirmed over a new SSH connection, rollback cancelled") {
		t.Fatalf("deploy: exit %d\n%s", r.code, r.stderr)
	}
	deployed := runningGeneration(t, l, "c2")
	if deployed == before {
		t.Fatalf("c2 still runs %s", before)
	}
	if u := rollbackUnits(t, l, "c2"); u != "" {
		t.Fatalf("the rollback is still there after the confirmation:\n%s", u)
	}
	if e := nomadEligibility(t, l, "c2"); e != "eligible" {
		t.Fatalf("c2's node is %s after a confirmed deploy", e)
	}
	// Past the timeout (as the host counts it: armed after start), nothing
	// has switched it back.
	time.Sleep(time.Until(start.Add(timeout + 3*time.Second)))
	if now := runningGeneration(t, l, "c2"); now != deployed {
		t.Fatalf("after the timeout c2 runs %s, not the confirmed %s", now, deployed)
	}
	if out, err := inMachine(l, "c2", "readlink -f "+lab.NixProfile+"; ls /run/hoctl-rollback-c2.fired 2>&1"); !strings.HasPrefix(out, deployed+"\n") || !strings.Contains(out, "No such file") {
		t.Fatalf("the profile or the rollback's marker after the timeout: %v\n%s", err, out)
	}
}

// A deploy command that takes longer than the confirm timeout (a build, a
// copy, here a slow activation: 20 s against 10 s) is not rolled back
// while it runs: hoctl holds the host's timer back over its connection
// until the command ends, and the timeout counts from there.
func TestRealDeploySlowerThanTheTimeoutIsConfirmed(t *testing.T) {
	l := confirmCluster(t, "c2")
	before := runningGeneration(t, l, "c2")
	if err := l.SetNixDeploy("c2", lab.NixDeploy{Activate: "sleep 20"}); err != nil {
		t.Fatal(err)
	}
	r := hoctlEnv(t, l.Inventory, stateEnv(t), "--yes", "deploy", "--confirm-timeout", "10s", "c2")
	if r.code != 0 || !strings.Contains(r.stderr, "confirmed over a new SSH connection, rollback cancelled") {
		t.Fatalf("deploy: exit %d\n%s", r.code, r.stderr)
	}
	if now := runningGeneration(t, l, "c2"); now == before {
		t.Fatalf("c2 still runs %s", before)
	}
	if out, err := inMachine(l, "c2", "ls /run/hoctl-rollback-c2.fired 2>&1"); !strings.Contains(out, "No such file") {
		t.Fatalf("the rollback fired during the deploy: %v %s", err, out)
	}
}

// A generation whose activation stops sshd (and leaves it dead): hoctl's
// own connection survives, a new one is refused, so nothing confirms it;
// the host's timer switches it back to the old generation, whose
// activation starts sshd again. deploy says ROLLED BACK (exit 5), stops
// the rollout (c3 untouched), leaves c2's node drained; the host answers
// a new SSH connection on its old generation, with no operator action.
func TestRealDeployKillingSSHDRollsBackByItself(t *testing.T) {
	l := confirmCluster(t, "c2", "c3")
	before, before3 := runningGeneration(t, l, "c2"), runningGeneration(t, l, "c3")
	if err := l.SetNixDeploy("c2", lab.NixDeploy{Activate: "systemctl stop ssh.service"}); err != nil {
		t.Fatal(err)
	}
	r := hoctlEnv(t, l.Inventory, stateEnv(t), "--yes", "deploy", "--confirm-timeout", "15s", "--wait", "60s", "c2", "c3")
	t.Logf("deploy took %s with a 15s confirm timeout\n%s", r.duration.Round(time.Second), r.stderr)
	want := fmt.Sprintf("c2 ROLLED BACK to %s: the new generation was not confirmed (no new SSH connection before the confirm timeout", before)
	if r.code != 5 || !strings.Contains(r.stderr, want) || !strings.Contains(r.stderr, "connection refused)") || !strings.Contains(r.stderr, "the rollout stopped") {
		t.Fatalf("exit %d, want 5 and %q", r.code, want)
	}
	// Journaled as what it is, not as an interrupted run.
	if !strings.Contains(r.stderr, "✗ changed but not verified (after check failed) (run ") {
		t.Fatalf("the run's end is not 'changed but not verified'")
	}
	if strings.Contains(r.stderr, "c3 | building") || runningGeneration(t, l, "c3") != before3 {
		t.Fatal("c3 was deployed after c2 rolled back")
	}
	if e := nomadEligibility(t, l, "c3"); e != "eligible" {
		t.Fatalf("c3 (never started) is %s", e)
	}
	if e := nomadEligibility(t, l, "c2"); e != "ineligible" {
		t.Fatalf("c2's node must stay drained and ineligible after its rollback, is %s", e)
	}
	// No operator action: a new SSH connection, on the old generation,
	// profile and all, the rollback done and gone.
	// Over SSH: sshd on c2 is what is tested.
	out, err := overSSH(t, l, "c2", "readlink /run/current-system; readlink -f "+lab.NixProfile+"; systemctl is-system-running")
	if err != nil || out != before+"\n"+before+"\nrunning\n" {
		t.Fatalf("c2 over a new SSH connection: %v\n%s\nwant %s twice, running", err, out, before)
	}
	if u := rollbackUnits(t, l, "c2"); u != "" {
		t.Fatalf("rollback units left on c2:\n%s", u)
	}
}

// A generation that activates but fails the after checks (its service
// fails: is-system-running says degraded): hoctl reaches it, so it starts
// the rollback at once instead of waiting for the timer (here 10 minutes,
// far past the 2 minutes the test gives hoctl), and reports ROLLED BACK.
func TestRealDeployUnhealthyRollsBackAtOnce(t *testing.T) {
	l := confirmCluster(t, "c2")
	before := runningGeneration(t, l, "c2")
	if err := l.SetNixDeploy("c2", lab.NixDeploy{Variant: lab.NixDegraded}); err != nil {
		t.Fatal(err)
	}
	r := hoctlEnv(t, l.Inventory, stateEnv(t), "--yes", "deploy", "--confirm-timeout", "10m", "c2")
	t.Logf("deploy took %s\n%s", r.duration.Round(time.Second), r.stderr)
	want := fmt.Sprintf("c2 ROLLED BACK to %s: the new generation was not confirmed (c2: systemctl is-system-running says \"degraded\"; failed units: lab-app.service)", before)
	if r.code != 5 || !strings.Contains(r.stderr, want) {
		t.Fatalf("exit %d, want 5 and %q", r.code, want)
	}
	out, err := inMachine(l, "c2", "readlink /run/current-system; readlink -f "+lab.NixProfile+"; systemctl is-system-running --wait")
	if err != nil || out != before+"\n"+before+"\nrunning" {
		t.Fatalf("c2 after the rollback: %v\n%s", err, out)
	}
	if u := rollbackUnits(t, l, "c2"); u != "" {
		t.Fatalf("the 10-minute timer must be gone with the rollback started at once:\n%s", u)
	}
}

// A deploy that activates nothing new disarms the rollback instead of
// leaving it to switch the host to what it runs: a build that fails (exit
// 1) and a command that exits 0 having changed nothing (exit 5, said
// plainly, not as a rollback).
func TestRealDeployNothingActivatedDisarms(t *testing.T) {
	l := confirmCluster(t, "c2")
	before := runningGeneration(t, l, "c2")
	for _, c := range []struct {
		variant lab.NixVariant
		code    int
		want    string
	}{
		{lab.NixBuildFails, 1, "deploy command for c2 failed"},
		{lab.NixNoChange, 5, "the deploy command exited 0 but the system generation did not change"},
	} {
		if err := l.SetNixDeploy("c2", lab.NixDeploy{Variant: c.variant}); err != nil {
			t.Fatal(err)
		}
		r := hoctlEnv(t, l.Inventory, stateEnv(t), "--yes", "deploy", "--confirm-timeout", "30s", "c2")
		if r.code != c.code || !strings.Contains(r.stderr, c.want) || !strings.Contains(r.stderr, "c2 runs and boots the generation it ran before, so its magic rollback is disarmed") ||
			strings.Contains(r.stderr, "ROLLED BACK") {
			t.Fatalf("%s: exit %d, want %d, %q and the rollback disarmed\n%s", c.variant, r.code, c.code, c.want, r.stderr)
		}
		if u := rollbackUnits(t, l, "c2"); u != "" || runningGeneration(t, l, "c2") != before {
			t.Fatalf("%s: c2 left with rollback units %q, or not on %s", c.variant, u, before)
		}
		if out, err := inMachine(l, "c2", ". /etc/profile.d/hoctl-lab-agents.sh; nomad node eligibility -enable -self"); err != nil {
			t.Fatalf("%v %s", err, out)
		}
	}
}

// A rollback already armed on the host (an earlier deploy's, not yet
// confirmed or fired) refuses the deploy before anything changes (exit 3),
// naming the timer and how to cancel it. So does one that failed: the host
// may still run the generation nobody confirmed, and systemd keeps the
// failed unit's name, which no new rollback could be armed under.
func TestRealDeployRefusesAnEarlierRollback(t *testing.T) {
	l := confirmCluster(t, "c2")
	before := runningGeneration(t, l, "c2")
	if out, err := inMachine(l, "c2", "systemd-run --quiet --unit=hoctl-rollback-c2 --on-active=10min /bin/true"); err != nil {
		t.Fatalf("arming by hand: %v %s", err, out)
	}
	r := hoctlEnv(t, l.Inventory, stateEnv(t), "--yes", "deploy", "--confirm-timeout", "30s", "c2")
	if r.code != 3 || !strings.Contains(r.stderr, "still armed (hoctl-rollback-c2.timer)") || !strings.Contains(r.stderr, "systemctl stop hoctl-rollback-c2.timer") {
		t.Fatalf("armed: exit %d\n%s", r.code, r.stderr)
	}
	if runningGeneration(t, l, "c2") != before || nomadEligibility(t, l, "c2") != "eligible" {
		t.Fatal("the refused deploy changed c2")
	}

	if out, err := inMachine(l, "c2", "systemctl stop hoctl-rollback-c2.timer && systemd-run --quiet --wait --unit=hoctl-rollback-c2 /bin/false; systemctl is-failed hoctl-rollback-c2.service"); err != nil || out != "failed" {
		t.Fatalf("a failed rollback by hand: %v %s", err, out)
	}
	r = hoctlEnv(t, l.Inventory, stateEnv(t), "--yes", "deploy", "--confirm-timeout", "30s", "c2")
	if r.code != 3 || !strings.Contains(r.stderr, "magic rollback failed") || !strings.Contains(r.stderr, "systemctl reset-failed hoctl-rollback-c2.service") {
		t.Fatalf("failed: exit %d\n%s", r.code, r.stderr)
	}
	if runningGeneration(t, l, "c2") != before || nomadEligibility(t, l, "c2") != "eligible" {
		t.Fatal("the refused deploy changed c2")
	}
}
