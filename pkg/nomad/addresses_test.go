package nomad

import (
	"net"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/hoctl/hoctl/pkg/httpapi"
	"github.com/hoctl/hoctl/pkg/inventory"
)

// With the first Nomad server killed, the second is asked.
func TestClientTriesNextAddress(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte(`"10.0.0.2:4647"`))
	}))
	t.Cleanup(srv.Close)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := "http://" + ln.Addr().String()
	_ = ln.Close()
	client, err := NewClient(&inventory.API{Addresses: []string{dead, srv.URL}}, nil, func(string) string { return "" }, httpapi.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if leader, err := client.Status().Leader(); err != nil || leader != "10.0.0.2:4647" {
		t.Fatalf("leader %q, err %v", leader, err)
	}
}
