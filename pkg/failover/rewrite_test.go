package failover

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/hoctl/hoctl/pkg/inventory"
	"github.com/hoctl/hoctl/pkg/sshexec"
	"github.com/hoctl/hoctl/pkg/tasks"
)

const ownerKey = "hoctl/nfs/data-services/owner"

// rewriting is a cluster whose owner key someone else writes: on each
// read, bumps more writes (the key put back to the old primary and
// moved again) land first.
type rewriting struct {
	*cluster
	bumps int
}

func (c *rewriting) Get(ctx context.Context, key string) (string, uint64, bool, error) {
	c.mu.Lock()
	if c.bumps > 0 && c.kv[key] != "zippy" {
		c.bumps--
		c.index[key] += 2
	}
	c.mu.Unlock()
	return c.cluster.Get(ctx, key)
}

func leaseRun(t *testing.T, c Consul, wait time.Duration) (*tasks.Runbook, *Run, *tasks.Env) {
	t.Helper()
	rb, r := downRunbook(t, c, wait)
	env := &tasks.Env{Inventory: r.Inv, Connect: func(_ context.Context, h *inventory.Host) (sshexec.Runner, error) { return okRunner{h.Name}, nil }}
	return rb, r, env
}

// --primary-down waits out the old primary's guard lease from the
// owner key's move. A key put back to the old primary and moved again
// during that wait (by hand, by another tool) may let a cut-off old
// primary's guard confirm after the move: the new primary's start then
// waits a lease again from the write it sees, never starting while the
// old one's renewed lease may hold. Before, the start checked only that
// the key named the new primary (a simulation of the guard found the
// overlap, seed 36554).
func TestPrimaryDownStartWaitsOutALeaseAfterTheKeyIsRewritten(t *testing.T) {
	const wait = 300 * time.Millisecond
	c := &rewriting{cluster: &cluster{kv: map[string]string{ownerKey: "zippy"}, index: map[string]uint64{ownerKey: 7}, active: map[string]bool{}}}
	rb, _, env := leaseRun(t, c, wait)
	if _, err := fn(stepTitled(t, rb, "fence zippy").Action)(context.Background(), env, nil); err != nil {
		t.Fatal(err)
	}
	c.mu.Lock()
	c.bumps = 1 // written again before the start's check reads it
	c.mu.Unlock()
	began := time.Now()
	out, err := fn(stepTitled(t, rb, "start ").Before)(context.Background(), env, nil)
	if err != nil {
		t.Fatalf("start's before check: %v", err)
	}
	if waited := time.Since(began); waited < wait || !strings.Contains(out, "waited") {
		t.Fatalf("start's before check passed after %v (%q): want a lease (%v) waited from the rewrite", waited, out, wait)
	}

	// A key that keeps being written is refused, not waited on forever.
	c.mu.Lock()
	c.bumps = 10
	c.mu.Unlock()
	if _, err := fn(stepTitled(t, rb, "start ").Before)(context.Background(), env, nil); err == nil || !strings.Contains(err.Error(), "keeps being written") {
		t.Fatalf("start's before check with the key written on every read: %v", err)
	}
}

// The start's before check with the key as the fence left it does not
// wait; in a resumed run, which did not see the fence's write, it waits
// one lease from the write there is.
func TestPrimaryDownStartWaitsOnlyWhenItCannotTell(t *testing.T) {
	const wait = 300 * time.Millisecond
	c := &cluster{kv: map[string]string{ownerKey: "zippy"}, index: map[string]uint64{ownerKey: 7}, active: map[string]bool{}}
	rb, _, env := leaseRun(t, c, wait)
	if _, err := fn(stepTitled(t, rb, "fence zippy").Action)(context.Background(), env, nil); err != nil {
		t.Fatal(err)
	}
	if out, err := fn(stepTitled(t, rb, "start ").Before)(context.Background(), env, nil); err != nil || strings.Contains(out, "waited") {
		t.Fatalf("start's before check on the fence's own write: %q, %v; want no wait", out, err)
	}
	// As a resumed run: built before the key moved, then the key moved
	// by a process that is gone.
	c.kv[ownerKey], c.index[ownerKey] = "zippy", 10
	resumed, _, env := leaseRun(t, c, wait)
	c.kv[ownerKey], c.index[ownerKey] = "c1", 11
	began := time.Now()
	out, err := fn(stepTitled(t, resumed, "start ").Before)(context.Background(), env, nil)
	if err != nil || time.Since(began) < wait || !strings.Contains(out, "waited") {
		t.Fatalf("a resumed run's start check: %q, %v after %v; want a lease waited", out, err, time.Since(began))
	}
}
