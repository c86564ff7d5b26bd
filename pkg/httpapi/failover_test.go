package httpapi

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"
)

// A first address that drops packets (its dial never completes) costs
// one bounded dial, once: the address that answered is kept for the
// next requests. A dial refused through an SSH tunnel (the via form)
// moves on too, and is reported as refused.
func TestFailoverDialTimeoutAndRemembers(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte("ok"))
	}))
	defer srv.Close()
	live, _ := url.Parse(srv.URL)
	const dropping, tunnelled = "192.0.2.1:8500", "192.0.2.2:8500" // never dialled for real
	var mu sync.Mutex
	dials := map[string]int{}
	base := &http.Transport{Proxy: nil, DialContext: Dial(func(ctx context.Context, network, addr string) (net.Conn, error) {
		mu.Lock()
		dials[addr]++
		mu.Unlock()
		switch addr {
		case dropping:
			<-ctx.Done()
			return nil, &net.OpError{Op: "dial", Net: network, Err: ctx.Err()}
		case tunnelled:
			return nil, errors.New("ssh: rejected: connect failed (Connection refused)")
		}
		return (&net.Dialer{}).DialContext(ctx, network, addr)
	}, 500*time.Millisecond)}
	defer base.CloseIdleConnections()
	rt, err := Failover(Endpoints("Consul", "consul", []string{"http://" + dropping, "http://" + tunnelled, srv.URL}, "c9"), base, 30*time.Second, nil)
	if err != nil {
		t.Fatal(err)
	}
	client := &http.Client{Transport: rt}
	ctx, answered := RecordAnswer(context.Background())
	for i := 0; i < 3; i++ {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+dropping+"/v1/status/leader", nil)
		resp, err := client.Do(req)
		if err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		_ = resp.Body.Close()
	}
	if got := answered(); got != srv.URL {
		t.Errorf("answered by %q, want %q", got, srv.URL)
	}
	mu.Lock()
	if dials[dropping] != 1 || dials[tunnelled] != 1 || dials[live.Host] != 1 {
		t.Errorf("dials %v: want one each (the live one kept, its connection reused)", dials)
	}
	mu.Unlock()

	// With the live server gone too, each address is named with its reason.
	srv.Close()
	base.CloseIdleConnections()
	req, _ := http.NewRequest(http.MethodGet, "http://"+dropping+"/v1/status/leader", nil)
	resp, err := client.Do(req)
	if err == nil {
		_ = resp.Body.Close()
	}
	var all *AllError
	if !errors.As(err, &all) {
		t.Fatalf("err = %v, want an *AllError", err)
	}
	msg := Clean(err, "").Error()
	for _, want := range []string{
		"no Consul API address answered (via c9)",
		"http://" + dropping + " is unreachable",
		"http://" + tunnelled + " refused the connection",
		srv.URL + " refused the connection",
		"(consul.addresses)",
	} {
		if !strings.Contains(msg, want) {
			t.Errorf("%q does not say %q", msg, want)
		}
	}
}
