package consul

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/hoctl/hoctl/pkg/httpapi"
	"github.com/hoctl/hoctl/pkg/inventory"
)

// closedAddr is an http:// URL nothing listens on: a killed server.
func closedAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close()
	return "http://" + addr
}

func leaderServer(t *testing.T, calls *atomic.Int32, status int) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		if status != http.StatusOK {
			http.Error(w, "rpc error: no leader", status)
			return
		}
		_, _ = w.Write([]byte(`"10.0.0.2:8300"`))
	}))
	t.Cleanup(srv.Close)
	return srv
}

// With c1 killed, the cluster still answers on c2: hoctl tries the next
// address on a refused connection and keeps to the one that answered.
func TestClientTriesNextAddress(t *testing.T) {
	var calls atomic.Int32
	srv := leaderServer(t, &calls, http.StatusOK)
	dead := closedAddr(t)
	client, err := NewClient(&inventory.API{Addresses: []string{dead, srv.URL}}, nil, func(string) string { return "" }, httpapi.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, answered := httpapi.RecordAnswer(context.Background())
	for i := 0; i < 2; i++ {
		leader, err := (&Cluster{Client: client}).Leader(ctx)
		if err != nil || leader != "10.0.0.2:8300" {
			t.Fatalf("leader %q, err %v", leader, err)
		}
	}
	if got := answered(); got != srv.URL {
		t.Errorf("answered by %q, want %q", got, srv.URL)
	}
	if n := calls.Load(); n != 2 {
		t.Errorf("%d requests reached the live server, want 2", n)
	}
}

// When no address answers, the error names each with its reason.
func TestClientAllAddressesDown(t *testing.T) {
	a, b := closedAddr(t), closedAddr(t)
	client, err := NewClient(&inventory.API{Addresses: []string{a, b}}, nil, func(string) string { return "" }, httpapi.Options{})
	if err != nil {
		t.Fatal(err)
	}
	_, err = (&Cluster{Client: client}).Leader(context.Background())
	if err == nil {
		t.Fatal("no error with every address closed")
	}
	msg := err.Error()
	for _, want := range []string{a + " refused the connection", b + " refused the connection", "consul.addresses"} {
		if !strings.Contains(msg, want) {
			t.Errorf("error %q does not say %q", msg, want)
		}
	}
	var ae *httpapi.Error
	if !errors.As(err, &ae) {
		t.Errorf("%T is not an *httpapi.Error underneath", err)
	}
}

// A server that answers, even with an error, has answered: its 500 is
// the cluster's answer, not a reason to ask another server.
func TestClientNoFailoverOnHTTPError(t *testing.T) {
	var bad, good atomic.Int32
	first := leaderServer(t, &bad, http.StatusInternalServerError)
	second := leaderServer(t, &good, http.StatusOK)
	client, err := NewClient(&inventory.API{Addresses: []string{first.URL, second.URL}}, nil, func(string) string { return "" }, httpapi.Options{})
	if err != nil {
		t.Fatal(err)
	}
	var leader string
	_, err = client.Raw().Query("/v1/status/leader", &leader, nil)
	if err == nil || !strings.Contains(err.Error(), "500") {
		t.Fatalf("err = %v, want the first server's 500", err)
	}
	if good.Load() != 0 || bad.Load() != 1 {
		t.Errorf("requests: first %d, second %d; want 1, 0", bad.Load(), good.Load())
	}
}

// A write carries its body to the next address: the dial that failed sent
// nothing.
func TestClientFailoverResendsBody(t *testing.T) {
	var got atomic.Value
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		got.Store(string(b))
		_, _ = w.Write([]byte("true"))
	}))
	t.Cleanup(srv.Close)
	client, err := NewClient(&inventory.API{Addresses: []string{closedAddr(t), srv.URL}}, nil, func(string) string { return "" }, httpapi.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ok, err := (&Cluster{Client: client}).CAS(context.Background(), "k", "c2", 7)
	if err != nil || !ok {
		t.Fatalf("CAS: %v %v", ok, err)
	}
	if s, _ := got.Load().(string); s != "c2" {
		t.Errorf("the live server got body %q, want %q", s, "c2")
	}
}
