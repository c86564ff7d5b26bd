package consul

// Unit tests of hoctl's own handling. What Consul answers (sessions,
// lock-delay, health, CAS) is held to the contract in consultest, run
// against the real Consul by e2e.

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
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

// A Consul server that still takes a killed leader for leader fails a
// request at once (500, "rpc error getting client: failed to get conn",
// as the real cluster answered); the Cluster calls wait the election out,
// within ElectionWait, and give up on any other error at once.
func TestClusterWaitsOutALeaderElection(t *testing.T) {
	var calls atomic.Int32
	failFirst := int32(3)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if n := calls.Add(1); n <= failFirst {
			http.Error(w, "rpc error getting client: failed to get conn: dial tcp 127.0.16.12:0->127.0.16.13:8300: connect: connection refused", http.StatusInternalServerError)
			return
		}
		switch {
		case strings.HasPrefix(r.URL.Path, "/v1/kv/"):
			_, _ = w.Write([]byte(`[{"Key":"k","Value":"YzE=","ModifyIndex":7}]`))
		default:
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()
	client, err := NewClient(&inventory.API{Address: srv.URL}, nil, func(string) string { return "" }, httpapi.Options{})
	if err != nil {
		t.Fatal(err)
	}
	c := &Cluster{Client: client}
	v, idx, ok, err := c.Get(context.Background(), "k")
	if err != nil || v != "c1" || idx != 7 || !ok {
		t.Fatalf("Get through an election: %q %d %v %v", v, idx, ok, err)
	}
	if n := calls.Load(); n != 4 {
		t.Errorf("%d requests, want 4", n)
	}

	// Past ElectionWait, the election's error is returned.
	defer func(w time.Duration) { ElectionWait = w }(ElectionWait)
	ElectionWait = 300 * time.Millisecond
	calls.Store(0)
	failFirst = 1000
	if _, _, _, err := c.Get(context.Background(), "k"); err == nil || !strings.Contains(err.Error(), "failed to get conn") {
		t.Fatalf("after ElectionWait: %v", err)
	}
	// Any other error is not retried.
	calls.Store(0)
	srv.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		http.Error(w, "leadership lost while committing log", http.StatusInternalServerError)
	})
	if _, err := c.CAS(context.Background(), "k", "c1", 7); err == nil || calls.Load() != 1 {
		t.Fatalf("a write that may have been applied was sent %d times: %v", calls.Load(), err)
	}
}

// A Consul slow to commit the release (a loaded cluster: a Raft write
// taking over a second) must still get the key released: a release given
// up on leaves the session to its TTL, and its invalidation then starts
// lock-delay, refusing the next operator's run for up to TTL×2 + delay.
func TestReleaseWaitsForASlowCommit(t *testing.T) {
	var released, destroyed atomic.Bool
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.URL.Path == "/v1/status/leader":
			_, _ = w.Write([]byte(`"127.0.0.1:8300"`))
		case r.URL.Path == "/v1/session/create":
			_, _ = w.Write([]byte(`{"ID":"s1"}`))
		case strings.HasPrefix(r.URL.Path, "/v1/session/renew/"):
			_, _ = w.Write([]byte(`[{"ID":"s1","TTL":"15s"}]`))
		case strings.HasPrefix(r.URL.Path, "/v1/session/destroy/"):
			destroyed.Store(true)
			_, _ = w.Write([]byte(`true`))
		case strings.HasPrefix(r.URL.Path, "/v1/kv/") && r.Method == http.MethodPut && r.URL.Query().Has("release"):
			select {
			case <-time.After(1500 * time.Millisecond):
			case <-r.Context().Done():
				return
			}
			released.Store(true)
			_, _ = w.Write([]byte(`true`))
		case strings.HasPrefix(r.URL.Path, "/v1/kv/") && r.Method == http.MethodPut:
			_, _ = w.Write([]byte(`true`))
		case strings.HasPrefix(r.URL.Path, "/v1/kv/"):
			select { // the lost-lock watch: a blocking query
			case <-time.After(30 * time.Second):
			case <-r.Context().Done():
			}
		}
	}))
	defer srv.Close()
	c, err := NewClient(&inventory.API{Address: srv.URL}, nil, func(string) string { return "" }, httpapi.Options{})
	if err != nil {
		t.Fatal(err)
	}
	l, err := Acquire(context.Background(), c, "nfs-x", "me", LockOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Release(); err != nil || !released.Load() || !destroyed.Load() {
		t.Fatalf("release: %v (released %v, destroyed %v)", err, released.Load(), destroyed.Load())
	}
}
