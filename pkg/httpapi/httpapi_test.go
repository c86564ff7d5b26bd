package httpapi

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

// hung accepts connections and never answers, like a frozen Consul.
func hung(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var conns []net.Conn
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		_ = ln.Close()
		mu.Lock()
		for _, c := range conns {
			_ = c.Close()
		}
		mu.Unlock()
	})
	return ln.Addr().String()
}

func client(ep Endpoint, timeout time.Duration) *http.Client {
	return &http.Client{Transport: Transport(ep, &http.Transport{}, timeout, nil)}
}

func get(ctx context.Context, c *http.Client, url string) error {
	req, _ := http.NewRequestWithContext(ctx, "GET", url, nil)
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	defer func() { _ = resp.Body.Close() }()
	_, err = io.ReadAll(resp.Body)
	return err
}

func TestHungServerTimesOutWithOneLine(t *testing.T) {
	addr := hung(t)
	ep := Endpoint{Name: "Consul", Section: "consul", Address: "http://" + addr, Via: "c1"}
	err := get(context.Background(), client(ep, 300*time.Millisecond), "http://"+addr+"/v1/status/leader")
	var ae *Error
	if !errors.As(err, &ae) || ae.Timeout != 300*time.Millisecond {
		t.Fatalf("err = %v", err)
	}
	want := fmt.Sprintf("Consul API at http://%s (via c1) did not answer within 300ms; check that Consul is running and healthy on c1 (consul.address)", addr)
	if got := Clean(err, "consul").Error(); got != want {
		t.Fatalf("message\n got %s\nwant %s", got, want)
	}
}

// A blocking query may wait as long as it asked to, plus the bound.
func TestBlockingQueryGetsItsWait(t *testing.T) {
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(400 * time.Millisecond)
		_, _ = io.WriteString(w, "ok")
	})}
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	c := client(Endpoint{Name: "Consul", Section: "consul", Address: "http://" + ln.Addr().String()}, 100*time.Millisecond)
	if err := get(context.Background(), c, "http://"+ln.Addr().String()+"/v1/kv/x?index=5&wait=2000ms"); err != nil {
		t.Fatalf("blocking query: %v", err)
	}
	var ae *Error
	if err := get(context.Background(), c, "http://"+ln.Addr().String()+"/v1/kv/x"); !errors.As(err, &ae) || ae.Timeout == 0 {
		t.Fatalf("plain query slower than the bound: %v", err)
	}
}

func TestCallerContextEndsRequestAtOnce(t *testing.T) {
	addr := hung(t)
	c := client(Endpoint{Name: "Nomad", Section: "nomad", Address: "http://" + addr}, time.Hour)
	ctx, cancel := context.WithCancel(context.Background())
	go func() { time.Sleep(200 * time.Millisecond); cancel() }()
	done := make(chan error, 1)
	go func() { done <- get(ctx, c, "http://"+addr+"/v1/status/leader") }()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("err = %v", err)
		}
		if !strings.HasSuffix(Clean(err, "").Error(), ": interrupted") {
			t.Fatalf("message: %v", Clean(err, ""))
		}
	case <-time.After(30 * time.Second):
		t.Fatal("request did not end with its context")
	}
}

func TestRefusedNamesWhatToCheck(t *testing.T) {
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := ln.Addr().String()
	_ = ln.Close()
	ep := Endpoint{Name: "Nomad", Section: "nomad", Address: "http://" + addr + "/"}
	err := get(context.Background(), client(ep, time.Second), "http://"+addr+"/v1/status/leader")
	want := fmt.Sprintf("Nomad API at http://%s/ refused the connection; check that Nomad is running and listening on %s (nomad.address)", addr, addr)
	if got := Clean(err, "nomad").Error(); got != want {
		t.Fatalf("message\n got %s\nwant %s", got, want)
	}
}

func TestViaErrorIsOneLine(t *testing.T) {
	inner := errors.New("c4 (127.0.14.5:22): connection refused")
	err := fmt.Errorf("wrapped: %w", &ViaError{Endpoint: Endpoint{Name: "Consul", Section: "consul", Address: "http://127.0.0.1:8500", Via: "c4"}, Err: inner})
	want := "Consul API at http://127.0.0.1:8500 (via c4): cannot reach c4: c4 (127.0.14.5:22): connection refused; check that c4 is up and answers SSH (consul.via)"
	if got := Clean(err, "consul").Error(); got != want {
		t.Fatalf("message\n got %s\nwant %s", got, want)
	}
	if !errors.Is(err, inner) {
		t.Fatal("the host's error is not kept")
	}
}
