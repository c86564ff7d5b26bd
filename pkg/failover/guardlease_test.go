package failover

import (
	"context"
	"strings"
	"testing"

	"github.com/hoctl/hoctl/pkg/inventory"
)

type ownerConsul struct{ owner string }

func (c ownerConsul) Leader(context.Context) (string, error)            { return "c1", nil }
func (c ownerConsul) Passing(context.Context, string) ([]string, error) { return nil, nil }
func (c ownerConsul) Get(context.Context, string) (string, uint64, bool, error) {
	return c.owner, 1, true, nil
}
func (c ownerConsul) CAS(context.Context, string, string, uint64) (bool, error) { return true, nil }

// --primary-down waits out the old primary's guard lease after moving the
// owner key and before anything starts on the new primary; a planned
// failover, which stops the old primary over SSH, does not.
func TestPrimaryDownWaitsOutTheGuardLease(t *testing.T) {
	inv, err := inventory.Parse("i.yaml", []byte(`hosts: {zippy: {}, c1: {}}
consul: {address: "http://127.0.0.1:8500"}
replication:
  services:
    source: {host: zippy, subvolume: /persist/services}
    target: {host: c1, dir: /persist/services-standby}
nfs:
  data-services: {export: /data/services, subvolume: /persist/services, replication: services, primary: zippy, standbys: [c1]}
`))
	if err != nil {
		t.Fatal(err)
	}
	consulFn := func(context.Context) (Consul, error) { return ownerConsul{"zippy"}, nil }
	for _, down := range []bool{true, false} {
		rb, _, err := Runbook(context.Background(), inv, consulFn, Options{Service: "data-services", To: "c1", PrimaryDown: down})
		if err != nil {
			t.Fatal(err)
		}
		fence, wait, start := -1, -1, -1
		for i, s := range rb.Steps {
			switch {
			case strings.HasPrefix(s.Title, "fence zippy"):
				fence = i
			case strings.HasPrefix(s.Title, "wait out zippy's guard lease"):
				wait = i
				if d, _ := s.Action.Describe(nil); !strings.Contains(d, (GuardLease+GuardMargin).String()) || !strings.Contains(d, "hoctl-guard-data-services.service") {
					t.Errorf("wait step says %q", d)
				}
			case strings.HasPrefix(s.Title, "start nfs-server.service on c1"):
				start = i
			}
		}
		switch {
		case down && (fence < 0 || wait != fence+1 || start < wait):
			t.Errorf("--primary-down: fence at %d, wait at %d, start at %d", fence, wait, start)
		case !down && wait >= 0:
			t.Errorf("a planned failover waits out a lease it does not need (step %d)", wait)
		}
	}
}
