package status

import (
	"errors"
	"testing"
)

// A second new-user review froze c2: status printed Nomad's 429 body raw
// ("autopilot: unhealthy or unknown (Unexpected response code: 429
// ({"FailureTolerance":0,...}))"). The 429 is Nomad's answer for an
// unhealthy cluster, and its body the report: it is read as one.
func TestNomad429IsTheHealthReport(t *testing.T) {
	err := errors.New(`Unexpected response code: 429 ({"Healthy":false,"FailureTolerance":0,"Servers":[{"Name":"c1.global","Healthy":true},{"Name":"c2.global","Healthy":false},{"Name":"c3.global","Healthy":true}]})`)
	h, ok := nomadHealthIn(err)
	if !ok || h.FailureTolerance != 0 || h.Healthy {
		t.Fatalf("%+v %v", h, ok)
	}
	if bad := unhealthyServers(h); len(bad) != 1 || bad[0] != "c2.global" {
		t.Fatalf("unhealthy %v", bad)
	}
	if _, ok := nomadHealthIn(errors.New("Unexpected response code: 500 (rpc error)")); ok {
		t.Fatal("a 500 read as a report")
	}
}
