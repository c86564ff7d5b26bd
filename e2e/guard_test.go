package e2e

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/hoctl/hoctl/internal/lab"
	"github.com/hoctl/hoctl/pkg/failover"
)

// guardBound is the self-fencing bound docs/failover.md states for a
// primary back from a hang: the lease (on the host's own clock) plus the
// margin for stopping the unit. The test's ceiling is three times that;
// what it measures is logged, never asserted tighter.
const guardBound = failover.GuardLease + failover.GuardMargin

// consulPassing is the nodes Consul's servers see passing the NFS
// service's checks, asked on c1.
func consulPassing(t *testing.T, l *lab.Lab) string {
	t.Helper()
	out, _ := inMachine(l, "c1", fmt.Sprintf("curl -sf --max-time 5 'http://%s:%d/v1/health/service/%s?passing' | grep -o '\"Node\":\"[a-z0-9]*\"' | sort -u | tr '\\n' ' '",
		l.Host("c1").Addr, lab.ConsulPort, lab.NFSService))
	return strings.TrimSpace(out)
}

// restoreGuards undoes what a failed run of the guard test may leave
// that the NFS baseline (nfsBaseline, run after it) does not: zippy
// frozen, a guard stopped.
func restoreGuards(t *testing.T, l *lab.Lab) {
	t.Helper()
	_ = l.Resume("zippy")
	for _, h := range []string{"zippy", "c1"} {
		if out, err := inMachine(l, h, "systemctl start "+lab.NFSGuardUnit); err != nil {
			t.Errorf("restore: starting %s's guard: %v\n%s", h, err, out)
		}
	}
}

// Self-fencing on the real cluster: zippy serves, hangs (its whole
// machine frozen, nfs-server and guard included), the operator fails
// over with --primary-down, c1 serves; zippy runs again and its own
// guard stops its nfs-server, with no further hoctl call, within the
// stated bound; then zippy stays fenced until the failover back.
func TestRealGuardStopsAHungPrimary(t *testing.T) {
	// From the NFS service's day-to-day state, back to it afterwards
	// (owner key, fences, mounts, Consul and Nomad healthy again after
	// zippy's long freeze), as every failover test.
	l, env := nfsStart(t)
	t.Cleanup(func() { restoreGuards(t, l) })

	// The guard runs on both NFS hosts, and status says so.
	for _, h := range []string{"zippy", "c1"} {
		if out := mustInMachine(t, l, h, "systemctl is-active "+lab.NFSGuardUnit+" || true"); strings.TrimSpace(out) != "active" {
			t.Fatalf("%s: %s is %q", h, lab.NFSGuardUnit, out)
		}
	}
	if r := hoctlEnv(t, l.Inventory, env, "status"); !strings.Contains(r.stdout, "guard active on zippy, c1") {
		t.Errorf("status does not show the guards (exit %d):\n%s%s", r.code, r.stdout, r.stderr)
	}

	mustInMachine(t, l, "zippy", "echo 'before the hang' > /persist/services/guard-probe")
	if r := hoctlEnv(t, l.Inventory, env, "--yes", "replicate", "zippy", "c1"); r.code != 0 {
		t.Fatalf("replicate: exit %d\n%s", r.code, r.stderr)
	}
	if got, err := nfsCat(l, "zippy", "guard-probe"); err != nil || got != "before the hang\n" {
		t.Fatalf("zippy does not serve before the hang: %v %q", err, got)
	}

	// The journal is read from here on: earlier tests' guard lines (a
	// failover's fence seen by the guard) must not pass for this one's.
	since := guardSince()
	if err := l.Hang("zippy"); err != nil {
		t.Fatal(err)
	}
	hung := time.Now()
	// --primary-down is refused while Consul still sees zippy passing:
	// wait for its servers to find zippy's agent gone.
	if !waitEvery(t, 500*time.Millisecond, 2*time.Minute, "Consul to see hung zippy fail", func() error {
		if p := consulPassing(t, l); strings.Contains(p, "zippy") {
			return fmt.Errorf("Consul still sees zippy passing: %s", p)
		}
		return nil
	}) {
		t.FailNow()
	}
	t.Logf("Consul saw hung zippy fail after %s", time.Since(hung).Round(100*time.Millisecond))

	r := hoctlEnv(t, l.Inventory, env, "--yes", "failover", "--to", "c1", "--primary-down")
	if r.code != 0 {
		t.Fatalf("failover --primary-down: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if !strings.Contains(r.stderr+r.stdout, "wait out zippy's guard lease") {
		t.Errorf("the failover did not wait out zippy's lease:\n%s", r.stderr)
	}
	if got, err := nfsCat(l, "c1", "guard-probe"); err != nil || got != "before the hang\n" {
		t.Fatalf("c1 does not serve after the failover: %v %q", err, got)
	}

	// zippy runs again. Nothing else is done to it: its guard alone must
	// stop its nfs-server.
	if err := l.Resume("zippy"); err != nil {
		t.Fatal(err)
	}
	resumed := time.Now()
	var inactive, unreadable time.Duration
	if poll(100*time.Millisecond, 3*guardBound, func() error {
		if inactive == 0 {
			if out, err := inMachine(l, "zippy", "systemctl is-active nfs-server || true"); err == nil && (strings.TrimSpace(out) == "inactive" || strings.TrimSpace(out) == "failed") {
				inactive = time.Since(resumed)
			}
		}
		if unreadable == 0 {
			if _, err := nfsCat(l, "zippy", "guard-probe"); err != nil {
				unreadable = time.Since(resumed)
			}
		}
		if inactive == 0 || unreadable == 0 {
			return errNotYet
		}
		return nil
	}) != nil {
		t.Fatalf("zippy's nfs-server still serves %s after zippy resumed (bound %s; inactive after %s, unreadable after %s)",
			time.Since(resumed).Round(time.Second), guardBound, inactive, unreadable)
	}
	t.Logf("zippy resumed: its nfs-server inactive after %s, its export unreadable over NFSv4 after %s (stated bound %s)",
		inactive.Round(10*time.Millisecond), unreadable.Round(10*time.Millisecond), guardBound)

	// What the guard did is in zippy's journal, with systemd's own
	// timestamps (this machine's clock, as the test's): first the stop
	// for the lease, which ran out while zippy was frozen; then, once
	// zippy's Consul agent answers again, the fence for c1's ownership.
	const fenced = `names "c1": fencing and stopping nfs-server.service`
	var journal string
	if poll(500*time.Millisecond, 3*guardBound-time.Since(resumed), func() error {
		journal = mustInMachine(t, l, "zippy", "journalctl -u "+lab.NFSGuardUnit+" -u nfs-server --no-pager -o short-iso-precise --since "+since)
		if !strings.Contains(journal, "done: owner key "+lab.NFSOwnerKey+" "+fenced) {
			return errNotYet
		}
		return nil
	}) != nil {
		t.Fatalf("zippy's guard did not fence nfs-server within %s of zippy resuming:\n%s", 3*guardBound, journal)
	}
	t.Logf("zippy's journal (guard, nfs-server):\n%s", journal)
	for _, ev := range []struct{ what, line string }{
		{"the guard stops nfs-server (lease)", "until Consul confirms this host again"},
		{"nfs-server stopped", "Stopped nfs-server.service"},
		{"the guard fences it (owner c1)", fenced},
	} {
		if at, ok := journalTime(journalLine(journal, ev.line)); ok {
			t.Logf("measured: %s %s after zippy resumed", ev.what, at.Sub(resumed).Round(10*time.Millisecond))
		} else {
			t.Errorf("zippy's journal lacks %q", ev.line)
		}
	}

	// Fenced: nothing starts it again, the unit's own check aside.
	if out, err := inMachine(l, "zippy", "systemctl start nfs-server"); err == nil || !strings.Contains(out, "Assertion failed") {
		t.Errorf("zippy's nfs-server must be fenced by its guard: %v %s", err, out)
	}
	if p := consulPassing(t, l); p != `"Node":"c1"` {
		t.Errorf("Consul's passing instances after zippy's guard acted: %q, want c1 alone", p)
	}
	if got, err := nfsCat(l, "c1", "guard-probe"); err != nil || got != "before the hang\n" {
		t.Errorf("c1 stopped serving: %v %q", err, got)
	}

	// Failing back lifts the guard's fence, as it lifts the failover's.
	if r := hoctlEnv(t, l.Inventory, env, "--yes", "replicate", "--name", "services"); r.code != 0 {
		t.Fatalf("replicate c1 → zippy: exit %d\n%s", r.code, r.stderr)
	}
	if r := hoctlEnv(t, l.Inventory, env, "--yes", "failover", "--to", "zippy"); r.code != 0 {
		t.Fatalf("failover --to zippy: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if got, err := nfsCat(l, "zippy", "guard-probe"); err != nil || got != "before the hang\n" {
		t.Fatalf("zippy after failing back: %v %q", err, got)
	}
}

// journalLine is the first line of a journal that contains s.
func journalLine(journal, s string) string {
	for _, l := range strings.Split(journal, "\n") {
		if strings.Contains(l, s) {
			return l
		}
	}
	return ""
}

// journalTime is the timestamp of a journalctl -o short-iso-precise line.
func journalTime(line string) (time.Time, bool) {
	f := strings.Fields(line)
	if len(f) == 0 {
		return time.Time{}, false
	}
	at, err := time.Parse("2006-01-02T15:04:05.999999-0700", f[0])
	return at, err == nil
}
