// Package consultest is the contract of what hoctl asks of Consul: the
// assertions the real Consul (run by e2e on the lab's cluster) and every
// fake of hoctl's narrow Consul interfaces must both pass, as restic's
// backend tests hold every backend to one suite. A fake that passes them
// answers as Consul does on these points, so unit tests built on it
// cannot pass on an expectation Consul does not meet.
package consultest

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/hoctl/hoctl/pkg/consul"
)

// Cluster is what hoctl's runbooks ask Consul (failover.Consul, plus the
// instances status lists): consul.Cluster on a real agent, or a fake.
type Cluster interface {
	Leader(ctx context.Context) (string, error)
	Instances(ctx context.Context, service string) ([]consul.Instance, error)
	Passing(ctx context.Context, service string) ([]string, error)
	Get(ctx context.Context, key string) (string, uint64, bool, error)
	CAS(ctx context.Context, key, value string, index uint64) (bool, error)
}

// ClusterHarness is a Cluster and the means to arrange what the contract
// needs on it. Names are the test's own: a service and a key prefix no one
// else uses, so the contract can run on a live cluster.
type ClusterHarness struct {
	Cluster Cluster
	// Service is a service name the contract registers instances of.
	Service string
	// Register makes node an instance of Service whose checks pass or
	// not (a node-level check failing counts too: see NodeDown).
	Register func(t *testing.T, node string, passing bool)
	// NodeDown fails a node-level check of node (as serfHealth does for
	// a node whose agent is gone), its service checks untouched.
	NodeDown func(t *testing.T, node string)
	// Deregister removes node's instance of Service.
	Deregister func(t *testing.T, node string)
	// KeyPrefix is a KV prefix the contract may write under; the
	// harness cleans it.
	KeyPrefix string
}

// TestCluster holds a Cluster to the contract.
func TestCluster(t *testing.T, h ClusterHarness) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c := h.Cluster
	if l, err := c.Leader(ctx); err != nil || l == "" {
		t.Fatalf("leader %q %v", l, err)
	}

	// Health: only the instances whose every check passes, sorted.
	a, b, d := "hoctl-contract-a", "hoctl-contract-b", "hoctl-contract-c"
	h.Register(t, b, true)
	h.Register(t, a, true)
	h.Register(t, d, false)
	got, err := c.Passing(ctx, h.Service)
	if err != nil || !slices.Equal(got, []string{a, b}) {
		t.Fatalf("passing = %v %v, want [%s %s]", got, err, a, b)
	}
	all, err := c.Instances(ctx, h.Service)
	if err != nil || len(all) != 3 || all[0].Node != a || all[2].Node != d || all[2].Passing {
		t.Fatalf("instances = %+v %v", all, err)
	}
	h.NodeDown(t, a)
	if got, _ := c.Passing(ctx, h.Service); !slices.Equal(got, []string{b}) {
		t.Fatalf("a node whose node-level check fails does not pass: %v", got)
	}
	h.Deregister(t, d)
	if all, _ := c.Instances(ctx, h.Service); len(all) != 2 {
		t.Fatalf("after deregistering %s: %+v", d, all)
	}
	if got, err := c.Passing(ctx, h.Service+"-none"); err != nil || len(got) != 0 {
		t.Fatalf("a service nobody runs: %v %v", got, err)
	}

	// KV with check-and-set, as the owner key is written.
	key := h.KeyPrefix + "owner"
	if _, _, ok, err := c.Get(ctx, key); ok || err != nil {
		t.Fatalf("unset key: %v %v", ok, err)
	}
	if ok, err := c.CAS(ctx, key, "zippy", 0); !ok || err != nil {
		t.Fatalf("create: %v %v", ok, err)
	}
	if ok, _ := c.CAS(ctx, key, "c2", 0); ok {
		t.Fatal("CAS 0 must not overwrite an existing key")
	}
	v, idx, ok, err := c.Get(ctx, key)
	if v != "zippy" || !ok || err != nil || idx == 0 {
		t.Fatalf("get %q %d %v %v", v, idx, ok, err)
	}
	if ok, err := c.CAS(ctx, key, "c1", idx); !ok || err != nil {
		t.Fatalf("CAS at the read index must win: %v %v", ok, err)
	}
	if ok, _ := c.CAS(ctx, key, "c2", idx); ok {
		t.Fatal("CAS at a stale index must lose")
	}
	if v, idx2, _, _ := c.Get(ctx, key); v != "c1" || idx2 <= idx {
		t.Fatalf("after CAS: %q at %d (was %d)", v, idx2, idx)
	}
}

// Lock is a held cluster lock (tasks.ClusterLock, with its session).
type Lock interface {
	Lost() <-chan struct{}
	Release() error
}

// LockHarness takes locks and makes one lose its hold behind its back.
type LockHarness struct {
	// Acquire takes scope for holder without waiting, with the given
	// lock-delay; a lock held by someone else is a *consul.HeldError.
	Acquire func(ctx context.Context, scope, holder string, lockDelay time.Duration) (Lock, error)
	// Invalidate destroys the lock's session (PUT /v1/session/destroy).
	Invalidate func(t *testing.T, l Lock)
	// Sessions counts the sessions of scope's lock still open.
	Sessions func(t *testing.T, scope string) int
	// Scope is a lock scope no one else uses.
	Scope string
}

// TestLock holds cluster locks to the contract: exclusion naming the
// holder, no session left by a refused acquire, release without
// lock-delay; a lost session noticed, and its lock-delay honoured.
func TestLock(t *testing.T, h LockHarness) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	a, err := h.Acquire(ctx, h.Scope, "alice pid 1", time.Second)
	if err != nil {
		t.Fatal(err)
	}
	_, err = h.Acquire(ctx, h.Scope, "bob pid 2", time.Second)
	var he *consul.HeldError
	if !errors.As(err, &he) || he.Holder != "alice pid 1" {
		t.Fatalf("second acquire: %v", err)
	}
	if n := h.Sessions(t, h.Scope); n != 1 {
		t.Fatalf("the refused acquire must not leave a session: %d", n)
	}
	if err := a.Release(); err != nil {
		t.Fatal(err)
	}
	if n := h.Sessions(t, h.Scope); n != 0 {
		t.Fatalf("release must destroy the session: %d left", n)
	}
	// An explicit release has no lock-delay: the next operator gets it.
	b, err := h.Acquire(ctx, h.Scope, "bob pid 2", 5*time.Second)
	if err != nil {
		t.Fatalf("after release: %v", err)
	}
	h.Invalidate(t, b)
	select {
	case <-b.Lost():
	case <-time.After(15 * time.Second):
		t.Fatal("the lost lock was not noticed")
	}
	_ = b.Release()
	// Within lock-delay nobody may take it, though no session holds it.
	if _, err := h.Acquire(ctx, h.Scope, "carol pid 3", time.Second); !errors.As(err, &he) {
		t.Fatalf("acquire during lock-delay: %v", err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		c, err := h.Acquire(ctx, h.Scope, "carol pid 3", time.Second)
		if err == nil {
			_ = c.Release()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("still refused long after the lock-delay: %v", err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if n := h.Sessions(t, h.Scope); n != 0 {
		t.Fatalf("%d sessions left", n)
	}
}
