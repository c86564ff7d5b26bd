package e2e

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// The new-user review's two ways a failover left the share served by
// nobody, end to end on the real cluster:
//
//  1. after a failback, `failover --primary-down` chose c1's own
//     snapshot from the failback's final sync as the newest complete
//     copy, and promote refused it after the owner key had moved;
//  2. that --primary-down failover could not write zippy's direction
//     file (zippy was down); failing back later fenced c1 and was
//     refused by the final sync on that stale file, exit 3.
//
// Now c1 serves its own snapshot, and the failback rewrites zippy's stale
// file before the fence and goes through; one server throughout.
func TestFailoverAfterFailbackPrimaryDownAndBack(t *testing.T) {
	l, env := nfsStart(t)
	splitBrainWatch(t, l)
	for _, to := range []string{"c1", "zippy"} {
		if r := hoctlEnv(t, l.Inventory, env, "--yes", "failover", "--to", to); r.code != 0 {
			t.Fatalf("failover --to %s: exit %d\n%s", to, r.code, r.stderr)
		}
	}
	mustInMachine(t, l, "zippy", "echo 'after the failback' > /persist/services/after-failback")
	if err := l.Kill("zippy"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { restartMachine(t, l, "zippy") })
	consulSeesDown(t, l, "zippy")

	// 1. c1's newest complete copy is its own snapshot: promoted.
	r := hoctlEnv(t, l.Inventory, env, "--yes", "failover", "--to", "c1", "--primary-down")
	if r.code != 0 {
		t.Fatalf("failover --to c1 --primary-down after a failback: exit %d\n%s\nowner %s, serving %v", r.code, r.stderr, owner(t, l), serving(t, l))
	}
	ownSaid := strings.Contains(r.stderr, "c1's own snapshot")
	if o, s := owner(t, l), strings.Join(serving(t, l), ","); o != "c1" || s != "c1" {
		t.Fatalf("owner %s, serving %s", o, s)
	}
	if !strings.Contains(r.stderr, "not recorded on zippy") {
		t.Fatalf("zippy was down, yet its direction was recorded:\n%s", r.stderr)
	}

	// 2. zippy back, its direction file stale: the plan says so, the
	// failback rewrites it before the fence and goes through.
	restartMachine(t, l, "zippy")
	// zippy's agent comes back with the instance it had registered
	// when it was killed; Consul drops it at the agent's first sync.
	waitFor(t, time.Minute, "Consul's passing instances with zippy back: c1 alone", func() error {
		if p := consulPassing(t, l); p != `"Node":"c1"` {
			return fmt.Errorf("passing: %q", p)
		}
		return nil
	})
	if t.Failed() {
		t.FailNow()
	}
	mustInMachine(t, l, "c1", "echo 'written on c1' > /persist/services/on-c1")
	plan := hoctlEnv(t, l.Inventory, env, "--dry-run", "failover", "--to", "zippy")
	if plan.code != 0 || !strings.Contains(plan.stdout+plan.stderr, "stale direction file") {
		t.Fatalf("dry run of the failback: exit %d\n%s%s", plan.code, plan.stdout, plan.stderr)
	}
	r = hoctlEnv(t, l.Inventory, env, "--yes", "failover", "--to", "zippy")
	if r.code != 0 {
		t.Fatalf("failing back to zippy: exit %d\n%s\nowner %s, serving %v", r.code, r.stderr, owner(t, l), serving(t, l))
	}
	if o, s := owner(t, l), strings.Join(serving(t, l), ","); o != "zippy" || s != "zippy" {
		t.Fatalf("owner %s, serving %s", o, s)
	}
	if got, err := nfsCat(l, "zippy", "on-c1"); err != nil || got != "written on c1\n" {
		t.Fatalf("over NFSv4 from zippy after failing back: %v %q", err, got)
	}
	if !ownSaid {
		t.Errorf("the --primary-down assessment did not say the copy was c1's own")
	}
}

// A --primary-down failover that fails after the owner key moved (its
// promote refused: c1's /persist made immutable) leaves nothing served;
// the documented way on is resume (a new failover --to c1 says c1
// already owns the service and points at it), which serves c1.
func TestFailoverPrimaryDownStoppedAfterTheKeyThenResumed(t *testing.T) {
	l, env := nfsStart(t)
	splitBrainWatch(t, l)
	if out, err := inMachine(l, "c1", "command -v chattr"); err != nil {
		t.Skipf("c1 has no chattr: %v %s", err, out)
	}
	if err := l.Kill("zippy"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { restartMachine(t, l, "zippy") })
	consulSeesDown(t, l, "zippy")
	mustInMachine(t, l, "c1", "chattr +i /persist")
	t.Cleanup(func() { _, _ = inMachine(l, "c1", "chattr -i /persist") })
	r := hoctlEnv(t, l.Inventory, env, "--yes", "failover", "--to", "c1", "--primary-down")
	if r.code != 1 || !strings.Contains(r.stderr, "promot") {
		t.Fatalf("the promote into an immutable /persist must fail the run: exit %d\n%s", r.code, r.stderr)
	}
	if o, s := owner(t, l), serving(t, l); o != "c1" || len(s) != 0 {
		t.Fatalf("owner %s, serving %v", o, s)
	}
	again := hoctlEnv(t, l.Inventory, env, "--yes", "failover", "--to", "c1", "--primary-down")
	if again.code != 2 || !strings.Contains(again.stderr, "hoctl resume RUN-ID") {
		t.Fatalf("a new failover to the owner: exit %d\n%s", again.code, again.stderr)
	}
	mustInMachine(t, l, "c1", "chattr -i /persist")
	r = hoctlEnv(t, l.Inventory, env, "--yes", "resume", "last")
	if r.code != 0 {
		t.Fatalf("resume last: exit %d\n%s", r.code, r.stderr)
	}
	if o, s := owner(t, l), strings.Join(serving(t, l), ","); o != "c1" || s != "c1" {
		t.Fatalf("after resume: owner %s, serving %s", o, s)
	}
}
