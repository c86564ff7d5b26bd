package nomad

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/hashicorp/nomad/api"
)

const report429 = `{"Healthy":false,"FailureTolerance":0,"Servers":[{"Name":"c1.global","Healthy":true},{"Name":"c2.global","Healthy":false},{"Name":"c3.global","Healthy":true}]}`

// A second new-user review froze c2: status printed Nomad's 429 body raw
// ("autopilot: unhealthy or unknown (Unexpected response code: 429
// ({"FailureTolerance":0,...}))"). The 429 is Nomad's answer for an
// unhealthy cluster, and its body the report: it is read as one.
func TestNomad429IsTheHealthReport(t *testing.T) {
	err := errors.New(`Unexpected response code: 429 (` + report429 + `)`)
	h, ok := healthIn(err)
	if !ok || h.FailureTolerance != 0 || h.Healthy {
		t.Fatalf("%+v %v", h, ok)
	}
	if bad := UnhealthyServers(h); len(bad) != 1 || bad[0] != "c2.global" {
		t.Fatalf("unhealthy %v", bad)
	}
	if _, ok := healthIn(errors.New("Unexpected response code: 500 (rpc error)")); ok {
		t.Fatal("a 500 read as a report")
	}
}

// The same through the API client: a 429 from the health endpoint is the
// report, a 500 stays an error.
func TestAutopilotHealthReads429(t *testing.T) {
	code := http.StatusTooManyRequests
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/v1/operator/autopilot/health" {
			http.NotFound(w, r)
			return
		}
		w.WriteHeader(code)
		_, _ = w.Write([]byte(report429))
	}))
	defer srv.Close()
	c, err := api.NewClient(&api.Config{Address: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	h, err := AutopilotHealth(context.Background(), c)
	if err != nil || h.Healthy || h.FailureTolerance != 0 || len(h.Servers) != 3 {
		t.Fatalf("429: %+v %v", h, err)
	}
	code = http.StatusInternalServerError
	if h, err := AutopilotHealth(context.Background(), c); err == nil {
		t.Fatalf("500 read as a report: %+v", h)
	}
}
