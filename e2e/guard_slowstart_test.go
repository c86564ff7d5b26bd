package e2e

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/hoctl/hoctl/internal/lab"
	"github.com/hoctl/hoctl/pkg/failover"
)

// unitPhase is systemd's ActiveState/SubState of host's unit, read
// through the machine itself.
func unitPhase(l *lab.Lab, host, unit string) string {
	out, _ := inMachine(l, host, "systemctl show -p ActiveState -p SubState --value "+unit+" | paste -sd/")
	return strings.TrimSpace(out)
}

// Issue 19 finding 1 on the real cluster: the guard's own start of
// nfs-server takes long (a slow ExecStartPost; ganesha serves from its
// ExecStart on), and neither the lease's end nor a move of the owner key
// may wait for that start to return. zippy's Consul agent is stopped
// (SIGSTOP) until the guard lease-stops nfs-server; let go, the guard
// confirms the unchanged key and starts the unit, which serves through
// its post step. (a) The agent is stopped again during that start: the
// guard stops the unit at its lease's end, long before the post step
// ends. (b) Started again the same way, the owner key is written to name
// c1 during the start, and c1 starts its own nfs-server 5 s later (the
// failover's margin): zippy's guard fences within that, and an NFSv4
// reader of both hosts every 20 ms never finds two servers.
func TestRealGuardActsDuringItsOwnSlowStart(t *testing.T) {
	l, _ := nfsStart(t)
	t.Cleanup(func() { restoreGuards(t, l) })

	// The post step outlasts the test's ceilings many times over, and
	// systemd's own start timeout is off: only the guard ends it.
	const post = 100 * time.Second
	const dropIn = "/run/systemd/system/nfs-server.service.d/60-slow-start-post.conf"
	agent := strings.TrimSpace(mustInMachine(t, l, "zippy", "systemctl show -p MainPID --value consul"))
	if agent == "" || agent == "0" {
		t.Fatalf("zippy's Consul agent has no main PID: %q", agent)
	}
	t.Cleanup(func() {
		if out, err := inMachine(l, "zippy", "kill -CONT "+agent+"; rm -f "+dropIn+" && systemctl daemon-reload"); err != nil {
			t.Errorf("zippy: letting the agent go, removing %s: %v\n%s", dropIn, err, out)
		}
	})
	mustInMachine(t, l, "zippy", fmt.Sprintf("mkdir -p %s && printf '%%s\\n' '[Service]' 'TimeoutStartSec=infinity' 'ExecStartPost=/bin/sleep %d' > %s && systemctl daemon-reload",
		dropIn[:strings.LastIndex(dropIn, "/")], int(post.Seconds()), dropIn))

	// Both hosts have the probe, each its own content: c1 serves only
	// when the test starts it.
	const probe = "slowstart-probe"
	mustInMachine(t, l, "zippy", "echo zippy > /persist/services/"+probe)
	mustInMachine(t, l, "c1", "btrfs subvolume create /persist/services >/dev/null && echo c1 > /persist/services/"+probe)

	since := guardSince()
	journal := func() string {
		j, _ := guardJournal(l, since)
		return j
	}
	hold := func(on bool) {
		sig := map[bool]string{true: "STOP", false: "CONT"}[on]
		mustInMachine(t, l, "zippy", "kill -"+sig+" "+agent)
	}
	// release lets the agent go once nfs-server is stopped. The NFSv4
	// clients zippy's ganesha recorded are this test's own readers, which
	// never reclaim: left recorded, the guard's start would sit in
	// ganesha's whole grace period (90 s) before serving, as a start with
	// no client of an earlier term does not. Forgotten as the lab's reset
	// forgets them (nfsBaseline), while the agent is held and the unit
	// stopped, so that the guard cannot start it in between.
	release := func() {
		mustInMachine(t, l, "zippy", forgetNFSClients)
		hold(false)
	}
	// leaseStop: the agent held until the guard stops nfs-server.
	leaseStop := func(what string) {
		t.Helper()
		hold(true)
		if d := waitInactive(l, "zippy", "nfs-server", time.Now(), 3*guardBound); d == 0 {
			t.Fatalf("%s: zippy's nfs-server still %s %s after its Consul agent stopped answering:\n%s", what, unitPhase(l, "zippy", "nfs-server"), 3*guardBound, journal())
		}
		release()
	}
	// guardStarts: let go, the guard starts the unit again; it serves
	// in its post step.
	guardStarts := func(what string) time.Time {
		t.Helper()
		var at time.Time
		waitFor(t, 2*time.Minute, what+": zippy's guard to start nfs-server, serving in its post step", func() error {
			if p := unitPhase(l, "zippy", "nfs-server"); p != "activating/start-post" {
				return fmt.Errorf("nfs-server %s", p)
			}
			if got, err := nfsCat(l, "zippy", probe); err != nil || got != "zippy\n" {
				return fmt.Errorf("zippy does not serve: %v %q", err, got)
			}
			at = time.Now()
			return nil
		})
		if t.Failed() {
			t.Fatalf("journal:\n%s", journal())
		}
		return at
	}

	watch := watchNFS(l, probe)
	defer watch.stop()

	// (a) The lease runs out during the guard's start.
	leaseStop("before (a)")
	startedA := guardStarts("(a)")
	held := time.Now()
	hold(true)
	d := waitInactive(l, "zippy", "nfs-server", held, 3*guardBound)
	if d == 0 {
		hold(false)
		t.Fatalf("(a) zippy's nfs-server, started by its guard, still %s %s after its Consul agent stopped answering (the lease is %s from the last confirmation; the start's post step runs %s):\n%s",
			unitPhase(l, "zippy", "nfs-server"), 3*guardBound, failover.GuardLease, post, journal())
	}
	release()
	t.Logf("measured: (a) nfs-server, seen serving in the guard's start %s before, inactive %s after the agent stopped answering (its post step would have run %s)",
		held.Sub(startedA).Round(100*time.Millisecond), d.Round(10*time.Millisecond), post)
	if j := journal(); !strings.Contains(j, "done: Consul has not confirmed") {
		t.Errorf("(a) the guard's journal lacks its lease stop:\n%s", j)
	}

	// (b) The key moves during the guard's start.
	guardStarts("(b)")
	if _, err := consulAt(l, "c1").KV().Put(&api.KVPair{Key: lab.NFSOwnerKey, Value: []byte("c1")}, nil); err != nil {
		t.Fatal(err)
	}
	moved := time.Now()
	time.Sleep(5 * time.Second)
	if out, err := inMachine(l, "c1", "systemctl start nfs-server 2>&1"); err != nil {
		t.Fatalf("c1: starting nfs-server with the key naming c1: %v\n%s", err, out)
	}
	c1Started := time.Now()
	d = waitInactive(l, "zippy", "nfs-server", moved, 3*guardBound)
	waitFor(t, 30*time.Second, "c1 to serve", func() error {
		if s := watch.last(); !s.c1ok || s.at.Before(c1Started) {
			return fmt.Errorf("not yet")
		}
		return nil
	})
	time.Sleep(time.Second)
	watch.stop()
	j := journal()
	if d == 0 {
		t.Fatalf("(b) zippy's nfs-server, in its guard's start, still %s %s after the key named c1:\n%s", unitPhase(l, "zippy", "nfs-server"), 3*guardBound, j)
	}
	if n, total, first := watch.both(); n > 0 {
		t.Errorf("(b) zippy and c1 both served in %d of %d NFSv4 samples, first %s after the key named c1", n, total, first.Sub(moved).Round(10*time.Millisecond))
	} else {
		t.Logf("measured: %d NFSv4 samples of both hosts, none with two servers", total)
	}
	const fenced = `done: owner key ` + lab.NFSOwnerKey + ` names "c1": fencing and stopping nfs-server.service`
	if !strings.Contains(j, fenced) {
		t.Errorf("(b) the guard's journal lacks its fence:\n%s", j)
	}
	t.Logf("measured: (b) zippy's nfs-server inactive %s after the key named c1 (c1 started 5 s after it)", d.Round(10*time.Millisecond))
	// Finding 5: the fence ended the lease, so zippy's own start check
	// refuses at once (it said "holds for 14 s more").
	if out, _ := inMachine(l, "zippy", "/usr/local/bin/hoctl guard --key "+lab.NFSOwnerKey+" --unit nfs-server.service --check-lease --check-wait 0s 2>&1; echo rc=$?"); !strings.Contains(out, "does not hold") || !strings.HasSuffix(strings.TrimSpace(out), "rc=1") {
		t.Errorf("(b) after the fence, zippy's lease check must refuse:\n%s", out)
	}
	if gone := watch.zippyGone(); !gone.IsZero() {
		t.Logf("measured: (b) zippy's export stopped answering %s after the key named c1", gone.Sub(moved).Round(10*time.Millisecond))
	}
	t.Logf("zippy's journal (guard, nfs-server):\n%s", j)
}
