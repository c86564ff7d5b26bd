package deploy

import (
	"fmt"
	"strings"
	"testing"

	"github.com/hoctl/hoctl/pkg/inventory"
	"github.com/hoctl/hoctl/pkg/tasks"
)

// A rollout checks the whole cluster first, deploys the hosts outside
// the quorum (--parallel at a time), then each quorum member in a step
// of its own, one host at a time, each after the checks that say the
// cluster can lose it. A change of order fails here, not in the lab.
func TestDeployStepOrder(t *testing.T) {
	_, rb, _ := orderRunbook(t, `consul: {address: "http://127.0.0.1:8500"}
deploy: {command: "deploy -s .#{{.Host}}", quorum: quorum}
`, Options{Parallel: 2})
	var got []string
	for _, s := range rb.Steps {
		var hosts []string
		for _, h := range s.Hosts {
			d, err := s.Action.Describe(h)
			if err != nil || !strings.Contains(d, "drain the Nomad node") || !strings.HasSuffix(d, "deploy -s .#"+h.Name) {
				t.Errorf("step %q on %s: %q, %v", s.Title, h.Name, d, err)
			}
			if b, _ := s.Before.Describe(h); strings.Contains(b, "failure tolerance") != strings.HasPrefix(h.Name, "c") {
				t.Errorf("%s's before check: %q", h.Name, b)
			}
			hosts = append(hosts, h.Name)
		}
		got = append(got, fmt.Sprintf("%s[%s/%d]", strings.Fields(s.Title)[0], strings.Join(hosts, ","), s.Serial))
	}
	want := "preflight:[/0] deploy[zippy,w1/2] deploy[c1/1] deploy[c2/1]"
	if strings.Join(got, " ") != want {
		t.Fatalf("rollout\n  %s\nwant\n  %s", strings.Join(got, " "), want)
	}
	if rb.Name != "deploy zippy, w1, c1, c2" || !rb.ClusterLock {
		t.Errorf("runbook %q, cluster lock %v", rb.Name, rb.ClusterLock)
	}
}

// orderRunbook is the rollout of c2, zippy, c1 and w1 on a cluster of
// three quorum members (c3 not a target), zippy and w1; tail is the
// inventory's deploy (and consul) section.
func orderRunbook(t *testing.T, tail string, o Options) (*inventory.Inventory, *tasks.Runbook, *Run) {
	t.Helper()
	inv, err := inventory.Parse("i.yaml", []byte(`hosts:
  zippy: {roles: [storage]}
  c1: {roles: [quorum]}
  c2: {roles: [quorum]}
  c3: {roles: [quorum]}
  w1: {}
`+tail))
	if err != nil {
		t.Fatal(err)
	}
	targets, err := Targets(inv, []string{"c2", "zippy", "c1", "w1"}, "")
	if err != nil {
		t.Fatal(err)
	}
	rb, r, err := Runbook(inv, targets, Clients{}, o)
	if err != nil {
		t.Fatal(err)
	}
	return inv, rb, r
}
