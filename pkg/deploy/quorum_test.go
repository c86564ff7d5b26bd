package deploy

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	nomadapi "github.com/hashicorp/nomad/api"
)

// Nomad answers an unhealthy cluster's autopilot health with 429 and the
// report as its body. Deploy's preflight refuses a quorum member then, and
// says why as the report says it (the tolerance, the unhealthy server),
// not as the raw body, as status does: both read it through
// nomad.AutopilotHealth.
func TestQuorumHealthReadsNomad429(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		switch req.URL.Path {
		case "/v1/status/leader":
			_, _ = w.Write([]byte(`"127.0.0.1:4647"`))
		case "/v1/operator/autopilot/health":
			w.WriteHeader(http.StatusTooManyRequests)
			_, _ = w.Write([]byte(`{"Healthy":false,"FailureTolerance":1,"Servers":[{"Name":"c1.global","Healthy":true},{"Name":"c2.global","Healthy":false},{"Name":"c3.global","Healthy":true}]}`))
		default:
			http.NotFound(w, req)
		}
	}))
	defer srv.Close()
	r := &Run{Clients: Clients{Nomad: func(context.Context) (*nomadapi.Client, error) {
		return nomadapi.NewClient(&nomadapi.Config{Address: srv.URL})
	}}}
	_, err := r.quorumHealth(context.Background(), true)
	if err == nil {
		t.Fatal("an unhealthy Nomad let a quorum member go down")
	}
	msg := err.Error()
	for _, want := range []string{"nomad autopilot: unhealthy", "c2.global", "a quorum member must not go down"} {
		if !strings.Contains(msg, want) {
			t.Errorf("%q does not say %q", msg, want)
		}
	}
	if strings.Contains(msg, "{") {
		t.Errorf("%q shows Nomad's body raw", msg)
	}
	// Not strict: the leader alone is asked.
	if state, err := r.quorumHealth(context.Background(), false); err != nil || state != "nomad leader 127.0.0.1:4647" {
		t.Fatalf("not strict: %q %v", state, err)
	}
}
