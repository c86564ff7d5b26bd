package e2e

// hoctl deploy on the real cluster: real Nix generations built, copied
// and switched to by the lab's deploy.command (internal/lab nix.go), real
// Nomad drains moving real allocations, real Consul autopilot, real
// systemd's is-system-running, a machine really killed.

import (
	"context"
	"fmt"
	"net"
	"os"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	consulapi "github.com/hashicorp/consul/api"
	nomadapi "github.com/hashicorp/nomad/api"
	"github.com/hoctl/hoctl/internal/lab"
	"github.com/hoctl/hoctl/pkg/httpapi"
	"github.com/hoctl/hoctl/pkg/inventory"
	"github.com/hoctl/hoctl/pkg/nomad"
)

var deployHosts = []string{"zippy", "c1", "c2", "c3"}

// deployCluster is the real cluster for a deploy test. Its clean-up
// (registered first, so it runs last) puts back what the test changed:
// each host's system generation (the ones made since deleted), every
// Nomad node undrained and eligible; then it waits for the cluster the
// next test expects.
func deployCluster(t *testing.T) (l *lab.Lab, env []string, gen func(host string) string) {
	t.Helper()
	l = realCluster(t)
	restore, err := l.SaveNixSystems(context.Background(), deployHosts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		if err := restore(ctx); err != nil {
			t.Errorf("restoring the system generations: %v", err)
		}
		waitFor(t, 90*time.Second, "every Nomad node undrained and eligible", func() error {
			nodes, _, err := realNomad(t, l).Nodes().List(nil)
			if err != nil {
				return err
			}
			for _, n := range nodes {
				if n.Drain {
					if _, err := realNomad(t, l).Nodes().UpdateDrain(n.ID, nil, false, nil); err != nil {
						return err
					}
				}
				if n.SchedulingEligibility != nomadapi.NodeSchedulingEligible {
					if _, err := realNomad(t, l).Nodes().ToggleEligibility(n.ID, true, nil); err != nil {
						return err
					}
				}
			}
			return nil
		})
		clusterHealthy(t, l)
	})
	return l, stateEnv(t), func(host string) string {
		t.Helper()
		return strings.TrimSpace(mustInMachine(t, l, host, "readlink /run/current-system"))
	}
}

// clusterHealthy waits for the cluster as the lab started it
// (lab.WaitSettled): what every test on the real cluster leaves behind.
func clusterHealthy(t *testing.T, l *lab.Lab) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := l.WaitSettled(ctx); err != nil {
		t.Error(err)
	}
}

// realNomad is a client of the real cluster's Nomad (c1's agent), as
// realConsul is of its Consul.
func realNomad(t *testing.T, l *lab.Lab) *nomadapi.Client {
	t.Helper()
	c, err := nomad.NewClient(&inventory.API{Address: fmt.Sprintf("http://%s:%d", l.Host("c1").Addr, lab.NomadPort)}, nil, os.Getenv, httpapi.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// nodeEvents are the times of a Nomad node's events with this message
// since t0 (Nomad's own record: "Node drain strategy set" each time a
// drain starts).
func nodeEvents(t *testing.T, l *lab.Lab, host, message string, t0 time.Time) []time.Time {
	t.Helper()
	nodes, _, err := realNomad(t, l).Nodes().List(nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range nodes {
		if n.Name != host {
			continue
		}
		node, _, err := realNomad(t, l).Nodes().Info(n.ID, nil)
		if err != nil {
			t.Fatal(err)
		}
		var at []time.Time
		for _, e := range node.Events {
			if e.Message == message && e.Timestamp.After(t0) {
				at = append(at, e.Timestamp)
			}
		}
		return at
	}
	t.Fatalf("no Nomad node %s", host)
	return nil
}

const drainSet = "Node drain strategy set"

// nomadNode is host's Nomad node as the API lists it.
func nomadNode(t *testing.T, l *lab.Lab, host string) *nomadapi.NodeListStub {
	t.Helper()
	nodes, _, err := realNomad(t, l).Nodes().List(nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range nodes {
		if n.Name == host {
			return n
		}
	}
	t.Fatalf("no Nomad node %s", host)
	return nil
}

// drainJob runs a real raw_exec job with one allocation on each of c1-c3
// (spread over them), purged after the test.
const drainJob = "hoctl-e2e-drain"

func runDrainJob(t *testing.T, l *lab.Lab) map[string]string {
	t.Helper()
	purgeJobsAfter(t, l, drainJob)
	hcl := `job "` + drainJob + `" {
  datacenters = ["lab"]
  type = "service"
  constraint {
    attribute = "${node.unique.name}"
    operator  = "regexp"
    value     = "^c[123]$"
  }
  spread { attribute = "${node.unique.name}" }
  migrate { min_healthy_time = "1s" }
  update { min_healthy_time = "1s" }
  group "sleep" {
    count = 3
    task "sleep" {
      driver = "raw_exec"
      config {
        command = "/bin/sleep"
        args    = ["3600"]
      }
      resources {
        cpu    = 20
        memory = 16
      }
    }
  }
}
`
	if out, err := nomadOn(t, l, "cat > /root/"+drainJob+".nomad <<'EOF'\n"+hcl+"EOF\nnomad job run -detach /root/"+drainJob+".nomad >/dev/null"); err != nil {
		t.Fatalf("nomad job run: %v %s", err, out)
	}
	var byNode map[string]string
	waitFor(t, 90*time.Second, "one running allocation of "+drainJob+" on each of c1-c3", func() error {
		allocs, _, err := realNomad(t, l).Jobs().Allocations(drainJob, false, nil)
		if err != nil {
			return err
		}
		byNode = map[string]string{}
		for _, a := range allocs {
			if a.ClientStatus == "running" {
				byNode[a.NodeName] = a.ID
			}
		}
		if len(byNode) != 3 || byNode["c1"] == "" || byNode["c2"] == "" || byNode["c3"] == "" {
			return fmt.Errorf("running allocations by node: %v", byNode)
		}
		return nil
	})
	if t.Failed() {
		t.FailNow()
	}
	return byNode
}

// A rolling deploy of c1-c3 and zippy: zippy (outside the quorum) first,
// then c1, c2, c3 one by one, each drained (its real allocation moved to
// another node), switched to a new generation, checked and made eligible
// again.
func TestDeployRolling(t *testing.T) {
	l, env, gen := deployCluster(t)
	allocs := runDrainJob(t, l)
	before := map[string]string{}
	for _, h := range deployHosts {
		before[h] = gen(h)
	}
	t0 := time.Now()
	r := hoctlEnv(t, l.Inventory, env, "--yes", "deploy", "c1", "c2", "c3", "zippy")
	if r.code != 0 {
		t.Fatalf("deploy: exit %d\n%s", r.code, r.stderr)
	}
	t.Logf("deploy of 4 hosts, a real allocation moving off each of c1-c3: %s", r.duration.Round(100*time.Millisecond))
	for h, g := range before {
		if now := gen(h); now == g || !strings.HasSuffix(now, "-nixos-system-"+h) {
			t.Errorf("%s runs %s, before the deploy %s", h, now, g)
		}
	}
	// Nomad's own record of the drains: zippy, then c1, c2, c3.
	var order []string
	drained := map[string]time.Time{}
	for _, h := range deployHosts {
		at := nodeEvents(t, l, h, drainSet, t0)
		if len(at) != 1 {
			t.Errorf("%s drained %d times, want once", h, len(at))
			continue
		}
		drained[h] = at[0]
		order = append(order, h)
	}
	sort.Slice(order, func(i, j int) bool { return drained[order[i]].Before(drained[order[j]]) })
	if got := strings.Join(order, ","); got != "zippy,c1,c2,c3" {
		t.Errorf("drained in the order %s, want zippy,c1,c2,c3", got)
	}
	// Each node's allocation was stopped by its drain and replaced on
	// another node.
	for _, h := range []string{"c1", "c2", "c3"} {
		a, _, err := realNomad(t, l).Allocations().Info(allocs[h], nil)
		if err != nil {
			t.Fatal(err)
		}
		if a.ClientStatus == "running" || a.NextAllocation == "" {
			t.Errorf("%s's allocation %s after the deploy: %s, replaced by %q", h, a.ID[:8], a.ClientStatus, a.NextAllocation)
			continue
		}
		next, _, err := realNomad(t, l).Allocations().Info(a.NextAllocation, nil)
		if err != nil {
			t.Fatal(err)
		}
		if next.NodeName == h {
			t.Errorf("%s's allocation was replaced on %s itself", h, h)
		}
		t.Logf("%s's allocation %s moved to %s", h, a.ID[:8], next.NodeName)
	}
	for _, h := range deployHosts {
		if n := nomadNode(t, l, h); n.Status != "ready" || n.SchedulingEligibility != nomadapi.NodeSchedulingEligible || n.Drain {
			t.Errorf("%s after the deploy: %s %s drain=%v", h, n.Status, n.SchedulingEligibility, n.Drain)
		}
	}
	if z, c := strings.Index(r.stderr, "zippy | building"), strings.Index(r.stderr, "c1 | building"); z < 0 || c < 0 || z > c {
		t.Errorf("zippy (outside the quorum) must go first:\n%s", r.stderr)
	}
}

// Quorum already degraded (c3's Consul server killed with kill -9, held
// down: failure tolerance 0): a quorum member's deploy is refused before
// anything is touched, exit 3.
func TestDeployRefusedWhenQuorumDegraded(t *testing.T) {
	l, env, gen := deployCluster(t)
	g := gen("c1")
	killConsulServer(t, l, "c3")
	waitFor(t, 60*time.Second, "Consul autopilot: failure tolerance 0", func() error {
		h, err := realConsul(t, l).Operator().AutopilotServerHealth(nil)
		if h == nil {
			return fmt.Errorf("no answer: %v", err)
		}
		if h.FailureTolerance != 0 {
			return fmt.Errorf("failure tolerance %d", h.FailureTolerance)
		}
		return nil
	})
	if t.Failed() {
		t.FailNow()
	}
	t0 := time.Now()
	r := hoctlEnv(t, l.Inventory, env, "--yes", "deploy", "c1")
	if r.code != 3 || !strings.Contains(r.stderr, "consul can lose no server now (failure tolerance 0)") {
		t.Fatalf("exit %d\n%s", r.code, r.stderr)
	}
	if gen("c1") != g || len(nodeEvents(t, l, "c1", drainSet, t0)) != 0 {
		t.Fatal("the refused deploy touched something")
	}
	if n := nomadNode(t, l, "c1"); n.SchedulingEligibility != nomadapi.NodeSchedulingEligible {
		t.Fatalf("c1 is %s after a refused deploy", n.SchedulingEligibility)
	}
}

// A failing host stops the rollout: c2's build fails; c1 (before it) is
// deployed, c3 (after it) is untouched, c2's node stays drained and
// ineligible, and the error says how to roll back.
func TestDeployFailureStopsTheRollout(t *testing.T) {
	l, env, gen := deployCluster(t)
	if err := l.SetNixDeploy("c2", lab.NixDeploy{Variant: lab.NixBuildFails}); err != nil {
		t.Fatal(err)
	}
	g1, g2, g3 := gen("c1"), gen("c2"), gen("c3")
	t0 := time.Now()
	r := hoctlEnv(t, l.Inventory, env, "--yes", "deploy", "c1", "c2", "c3")
	if r.code != 1 || !strings.Contains(r.stderr, "builder for '/nix/store/") || !strings.Contains(r.stderr, "To roll back: hoctl deploy --rollback c2") {
		t.Fatalf("exit %d\n%s", r.code, r.stderr)
	}
	if gen("c1") == g1 || gen("c2") != g2 || gen("c3") != g3 {
		t.Fatalf("c1 must run a new generation, c2 and c3 their old ones: %s %s %s", gen("c1"), gen("c2"), gen("c3"))
	}
	if n := nomadNode(t, l, "c2"); n.Status != "ready" || n.SchedulingEligibility != nomadapi.NodeSchedulingIneligible {
		t.Fatalf("c2 must stay drained and ineligible: %s %s", n.Status, n.SchedulingEligibility)
	}
	if n := nomadNode(t, l, "c3"); n.SchedulingEligibility != nomadapi.NodeSchedulingEligible || len(nodeEvents(t, l, "c3", drainSet, t0)) != 0 {
		t.Fatal("c3 was drained")
	}
}

// A deploy whose activation leaves a real failed unit: the switch exits 0,
// but systemctl is-system-running says degraded; the after check fails
// (exit 5) and names the unit, and the rollout stops before c2.
func TestDeployDegradedSystemStopsTheRollout(t *testing.T) {
	l, env, gen := deployCluster(t)
	if err := l.SetNixDeploy("c1", lab.NixDeploy{Variant: lab.NixDegraded}); err != nil {
		t.Fatal(err)
	}
	g1, g2 := gen("c1"), gen("c2")
	r := hoctlEnv(t, l.Inventory, env, "--yes", "deploy", "c1", "c2")
	// It says what is left (a new-user review found it silent on the
	// drained node and on the way back).
	if r.code != 5 || !strings.Contains(r.stderr, `c1: systemctl is-system-running says "degraded"; failed units: lab-app.service`) ||
		!strings.Contains(r.stderr, "c1 stays on the new generation, its Nomad node drained and ineligible. To roll back: hoctl deploy --rollback c1") {
		t.Fatalf("exit %d\n%s", r.code, r.stderr)
	}
	if gen("c1") == g1 || gen("c2") != g2 {
		t.Fatalf("c1 must run its new generation, c2 its old one: %s %s", gen("c1"), gen("c2"))
	}
	if out := mustInMachine(t, l, "c1", "systemctl is-system-running || true"); strings.TrimSpace(out) != "degraded" {
		t.Fatalf("c1 is %s", out)
	}
}

// Exit 0 without a new generation (what deploy-rs does after a rollback,
// here a configuration that did not change) is reported as such: exit 5.
func TestDeployExitZeroWithoutChangeIsReported(t *testing.T) {
	l, env, gen := deployCluster(t)
	if err := l.SetNixDeploy("c1", lab.NixDeploy{Variant: lab.NixNoChange}); err != nil {
		t.Fatal(err)
	}
	g := gen("c1")
	r := hoctlEnv(t, l.Inventory, env, "--yes", "deploy", "c1")
	if r.code != 5 || !strings.Contains(r.stderr, "exited 0 but the system generation did not change") {
		t.Fatalf("exit %d\n%s", r.code, r.stderr)
	}
	if gen("c1") != g {
		t.Fatal("c1's generation changed")
	}
}

// A host that never comes back (c2 killed by its deploy, as a reboot into
// the new generation that fails) fails its after check within --wait,
// exit 5, reported as unverified, not as an interruption.
func TestDeployHostNeverComesBack(t *testing.T) {
	l, env, _ := deployCluster(t)
	if err := l.SetNixDeploy("c2", lab.NixDeploy{Variant: lab.NixPowerOff}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		if err := l.Restart(ctx, "c2"); err != nil {
			t.Error(err)
		}
		// The share, as a client's boot would mount it (the lab's boot
		// mounts it once served): the cluster as the lab started it.
		if err := l.MountNFSClients(ctx); err != nil {
			t.Error(err)
		}
	})
	r := hoctlEnv(t, l.Inventory, env, "--yes", "deploy", "--wait", "5s", "c2")
	t.Logf("the deploy of a host that never comes back took %s (--wait 5s)", r.duration)
	if r.code != 5 || !strings.Contains(r.stderr, "did not come back within 5s") {
		t.Fatalf("exit %d\n%s", r.code, r.stderr)
	}
	if strings.Contains(r.stderr, "interrupted") {
		t.Errorf("the run is reported as interrupted; it was not:\n%s", r.stderr)
	}
	if c, err := net.DialTimeout("tcp", net.JoinHostPort(l.Host("c2").Addr, strconv.Itoa(lab.Port)), 5*time.Second); err == nil {
		_ = c.Close()
		t.Fatal("c2's sshd accepts connections: it was not killed")
	}
}

// --rollback switches back to the previous real generation (nix-env
// --rollback and its switch-to-configuration), with the same drain and
// checks.
func TestDeployRollback(t *testing.T) {
	l, env, gen := deployCluster(t)
	before := gen("c1")
	if r := hoctlEnv(t, l.Inventory, env, "--yes", "deploy", "c1"); r.code != 0 {
		t.Fatalf("deploy: exit %d\n%s", r.code, r.stderr)
	}
	deployed := gen("c1")
	t0 := time.Now()
	r := hoctlEnv(t, l.Inventory, env, "--yes", "deploy", "--rollback", "c1")
	if r.code != 0 || !strings.Contains(r.stderr, "switched to the previous generation") {
		t.Fatalf("rollback: exit %d\n%s", r.code, r.stderr)
	}
	if got := gen("c1"); got != before || got == deployed {
		t.Fatalf("after the rollback c1 runs %s; before the deploy %s, after it %s", got, before, deployed)
	}
	if got := strings.TrimSpace(mustInMachine(t, l, "c1", "readlink -f "+lab.NixProfile)); got != before {
		t.Fatalf("c1's system profile is %s after the rollback, want %s", got, before)
	}
	if len(nodeEvents(t, l, "c1", drainSet, t0)) != 1 {
		t.Fatal("the rollback did not drain c1 first")
	}
	if n := nomadNode(t, l, "c1"); n.SchedulingEligibility != nomadapi.NodeSchedulingEligible {
		t.Fatal("c1 is not eligible again after the rollback")
	}
}

// --dry-run runs every before check for real and prints the order and the
// exact commands; nothing is drained or deployed.
func TestDeployDryRun(t *testing.T) {
	l, env, gen := deployCluster(t)
	g := gen("c1")
	t0 := time.Now()
	r := hoctlEnv(t, l.Inventory, env, "--dry-run", "deploy", "c2", "zippy", "c1")
	if r.code != 0 || !strings.Contains(r.stdout, "the order is zippy then c1, c2") || !strings.Contains(r.stdout, "nix/deploy.sh c1") ||
		!strings.Contains(r.stdout, "✓ c1: passes now") {
		t.Fatalf("dry run: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if gen("c1") != g {
		t.Fatal("the dry run deployed c1")
	}
	for _, h := range []string{"zippy", "c1", "c2"} {
		if len(nodeEvents(t, l, h, drainSet, t0)) != 0 {
			t.Fatalf("the dry run drained %s", h)
		}
	}
}

// A Consul check that the activation leaves critical for a moment (a
// service it restarted, until Consul runs the check again on its own
// interval) is waited for within --wait, as a host coming back is. The
// after check once read the checks a single time, right after the
// switch: a check last run before it, or a server whose autopilot had
// not yet seen it healthy again, failed a good deploy (exit 5;
// TestDeployRollback's "Nomad Server HTTP Check is critical").
func TestDeployWaitsForAChecksNextRun(t *testing.T) {
	l, env, gen := deployCluster(t)
	const check = "hoctl-e2e-activation"
	c1 := realConsul(t, l)
	if err := c1.Agent().CheckRegister(&consulapi.AgentCheckRegistration{ID: check, Name: check,
		AgentServiceCheck: consulapi.AgentServiceCheck{TTL: "10m", Status: consulapi.HealthPassing}}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c1.Agent().CheckDeregister(check) })
	// The new generation's activation fails the check, and passes it
	// again 3 s later from a transient timer on c1.
	url := fmt.Sprintf("http://%s:%d/v1/agent/check", l.Host("c1").Addr, lab.ConsulPort)
	activate := fmt.Sprintf("curl -sSf -X PUT %[1]s/fail/%[2]s\nsystemd-run --quiet --on-active=3s curl -sSf -X PUT %[1]s/pass/%[2]s\n", url, check)
	if err := l.SetNixDeploy("c1", lab.NixDeploy{Activate: activate}); err != nil {
		t.Fatal(err)
	}
	before := gen("c1")
	r := hoctlEnv(t, l.Inventory, env, "--yes", "deploy", "c1")
	if r.code != 0 {
		t.Fatalf("deploy: exit %d\n%s", r.code, r.stderr)
	}
	if !strings.Contains(r.stderr, `Consul check "`+check+`" is critical`) {
		t.Fatalf("the check was never seen critical: the activation did not fail it\n%s", r.stderr)
	}
	if gen("c1") == before {
		t.Fatal("c1 runs the generation it ran before")
	}
}
