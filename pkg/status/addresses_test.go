package status

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	consulapi "github.com/hashicorp/consul/api"
	"github.com/hoctl/hoctl/pkg/consul"
	"github.com/hoctl/hoctl/pkg/httpapi"
	"github.com/hoctl/hoctl/pkg/inventory"
)

func deadURL(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = ln.Close() }()
	return "http://" + ln.Addr().String()
}

func consulCheck(t *testing.T, addrs ...string) Check {
	t.Helper()
	y := "hosts: {c1: {}}\nconsul:\n  addresses:\n"
	for _, a := range addrs {
		y += "    - " + a + "\n"
	}
	inv, err := inventory.Parse("i.yaml", []byte(y))
	if err != nil {
		t.Fatal(err)
	}
	p := &Probes{Inv: inv, Timeout: 5 * time.Second, Hosts: nil,
		Consul: func(context.Context) (*consulapi.Client, error) {
			return consul.NewClient(inv.Consul, nil, func(string) string { return "" }, httpapi.Options{})
		},
	}
	checks := p.consul(context.Background())
	if len(checks) != 1 {
		t.Fatalf("checks: %+v", checks)
	}
	return checks[0]
}

// c1 killed, c2 answering: status reaches Consul and says through which
// address; with every address down it names each with its reason.
func TestStatusNamesTheAddressThatAnswered(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/v1/status/leader":
			_, _ = w.Write([]byte(`"10.0.0.2:8300"`))
		case "/v1/agent/members":
			_, _ = w.Write([]byte(`[{"Name":"c2","Status":1},{"Name":"c3","Status":1},{"Name":"c1","Status":4}]`))
		case "/v1/operator/autopilot/health":
			_, _ = w.Write([]byte(`{"Healthy":true,"FailureTolerance":0}`))
		default:
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()
	dead := deadURL(t)
	c := consulCheck(t, dead, srv.URL)
	if !strings.Contains(c.Detail, "leader 10.0.0.2:8300 (asked at "+srv.URL+")") || !strings.Contains(c.Detail, "not alive: c1") {
		t.Errorf("consul check with c1 down: %+v", c)
	}

	other := deadURL(t)
	c = consulCheck(t, dead, other)
	if c.Level != Fail || !strings.Contains(c.Detail, dead+" refused the connection") || !strings.Contains(c.Detail, other+" refused the connection") {
		t.Errorf("consul check with every address down: %+v", c)
	}
}
