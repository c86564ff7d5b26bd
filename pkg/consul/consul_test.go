package consul

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/hoctl/hoctl/internal/lab/consulsim"
	"github.com/hoctl/hoctl/pkg/httpapi"
	"github.com/hoctl/hoctl/pkg/inventory"
)

func sim(t *testing.T) *consulsim.Server {
	t.Helper()
	s, err := consulsim.Start("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func TestLockExcludesAndReleases(t *testing.T) {
	s := sim(t)
	c, err := NewClient(&inventory.API{Address: "http://" + s.Addr}, nil, func(string) string { return "" }, httpapi.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	a, err := Acquire(ctx, c, "failover", "alice pid 1", LockOptions{LockDelay: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if v, sid, _ := s.Get(LockPrefix + "failover"); v != "alice pid 1" || sid != a.Session() {
		t.Fatalf("kv = %q %q", v, sid)
	}
	_, err = Acquire(ctx, c, "failover", "bob pid 2", LockOptions{})
	var he *HeldError
	if !errors.As(err, &he) || he.Holder != "alice pid 1" {
		t.Fatalf("second acquire: %v", err)
	}
	if n := len(s.Sessions()); n != 1 {
		t.Fatalf("the refused acquire must not leave a session: %d", n)
	}
	if err := a.Release(); err != nil {
		t.Fatal(err)
	}
	// An explicit release has no lock-delay: the next operator gets it.
	b, err := Acquire(ctx, c, "failover", "bob pid 2", LockOptions{})
	if err != nil {
		t.Fatalf("after release: %v", err)
	}
	_ = b.Release()
}

func TestInvalidatedSessionLosesLockAndLockDelayHolds(t *testing.T) {
	s := sim(t)
	c, _ := NewClient(&inventory.API{Address: "http://" + s.Addr}, nil, func(string) string { return "" }, httpapi.Options{})
	ctx := context.Background()
	a, err := Acquire(ctx, c, "deploy", "alice", LockOptions{LockDelay: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = a.Release() }()
	if !s.InvalidateSession(a.Session()) {
		t.Fatal("no session to invalidate")
	}
	select {
	case <-a.Lost():
	case <-time.After(10 * time.Second):
		t.Fatal("lost lock not noticed")
	}
	// Within lock-delay nobody may take it, though no session holds it.
	_, err = Acquire(ctx, c, "deploy", "bob", LockOptions{})
	var he *HeldError
	if !errors.As(err, &he) {
		t.Fatalf("acquire during lock-delay: %v", err)
	}
	time.Sleep(2100 * time.Millisecond)
	b, err := Acquire(ctx, c, "deploy", "bob", LockOptions{})
	if err != nil {
		t.Fatalf("after lock-delay: %v", err)
	}
	_ = b.Release()
}

func TestNoLeaderOrNoServerIsAnError(t *testing.T) {
	s := sim(t)
	addr := s.Addr
	_ = s.Close()
	c, _ := NewClient(&inventory.API{Address: "http://" + addr}, nil, func(string) string { return "" }, httpapi.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := Acquire(ctx, c, "x", "y", LockOptions{}); err == nil || !strings.Contains(err.Error(), "consul") {
		t.Fatalf("err = %v", err)
	}
}
