package consul

// Unit tests of hoctl's own handling. What Consul answers (sessions,
// lock-delay, health, CAS) is held to the contract in consultest, run
// against the real Consul by e2e.

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/hoctl/hoctl/pkg/httpapi"
	"github.com/hoctl/hoctl/pkg/inventory"
)

func TestHeldErrorNamesTheHolder(t *testing.T) {
	if got := (&HeldError{Scope: "failover", Holder: "alice pid 1"}).Error(); got != `cluster lock "failover" is held by alice pid 1` {
		t.Fatal(got)
	}
	if got := (&HeldError{Scope: "failover"}).Error(); !strings.Contains(got, "lock-delay") {
		t.Fatal(got)
	}
}

func TestBadAddressIsAnError(t *testing.T) {
	if _, err := NewClient(&inventory.API{Address: "http://[::1"}, nil, func(string) string { return "" }, httpapi.Options{}); err == nil || !strings.Contains(err.Error(), "consul.address") {
		t.Fatalf("err = %v", err)
	}
	if _, err := NewClient(nil, nil, func(string) string { return "" }, httpapi.Options{}); err == nil {
		t.Fatal("no consul section must be an error")
	}
}

// Nothing listens: acquiring is an error naming Consul, at once.
func TestNoServerIsAnError(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close()
	c, _ := NewClient(&inventory.API{Address: "http://" + addr}, nil, func(string) string { return "" }, httpapi.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := Acquire(ctx, c, "x", "y", LockOptions{}); err == nil || !strings.Contains(err.Error(), "onsul") {
		t.Fatalf("err = %v", err)
	}
}
