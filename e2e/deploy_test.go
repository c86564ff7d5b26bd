package e2e

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hoctl/hoctl/internal/lab"
	"github.com/hoctl/hoctl/pkg/sshexec"
)

// deployLab writes a deploy command for the NFS lab and an inventory that
// uses it. Per host, a mode file says what the "deploy" does: ok (a new
// /run/current-system), fail, noop (exit 0, nothing changed: what
// deploy-rs does after a rollback) or die (the host goes down and does
// not come back, as after a failed reboot).
func deployLab(t *testing.T) (inv string, mode func(host, m string), generation func(host string) string) {
	t.Helper()
	dir := t.TempDir()
	script := filepath.Join(dir, "deploy.sh")
	body := `#!/bin/sh
host=$1
m=$(cat ` + dir + `/mode-$host 2>/dev/null || echo ok)
echo "building nixos-system-$host"
case $m in
ok)   exec ` + hoctlBin + ` run "$host" -- "$(cat ` + dir + `/generation-$host)" ;;
fail) echo "error: builder for '/nix/store/x-nixos-system-$host.drv' failed with exit code 1" >&2; exit 1 ;;
noop) echo "activation failed, rolled back to the previous generation"; exit 0 ;;
die)  kill -KILL "$(cat ` + nfsLab.Dir + `/hosts/$host/sshd.pid)"; exit 0 ;;
esac
`
	if err := os.WriteFile(script, []byte(body), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, h := range []string{"zippy", "c1", "c2", "c3"} {
		if err := os.WriteFile(filepath.Join(dir, "generation-"+h), []byte(lab.NewGeneration(h, "11111111111111111111111111111111")), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	inv = labInventory(t, nfsLab, "deploy:\n  quorum: quorum\n", "deploy:\n  quorum: quorum\n  command: \"sh "+script+" {{.Host}}\"\n")
	mode = func(host, m string) {
		if err := os.WriteFile(filepath.Join(dir, "mode-"+host), []byte(m), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	runners := labRunners(t, nfsLab, "zippy", "c1", "c2", "c3")
	generation = func(host string) string {
		for _, r := range runners {
			if r.Name() == host {
				res, err := r.Run(context.Background(), sshexec.Cmd{Script: "readlink /run/current-system"})
				if err != nil {
					t.Fatalf("%s: %v", host, err)
				}
				return strings.TrimSpace(string(res.Stdout))
			}
		}
		t.Fatalf("no host %s", host)
		return ""
	}
	t.Cleanup(func() {
		for _, n := range []string{"c1", "c2", "c3"} {
			nfsNomad.SetNode(n, "ready", true, false)
			nfsConsul.SetServer(n, true)
		}
	})
	return inv, mode, generation
}

// A rolling deploy of c1–c3 and zippy: zippy (outside the quorum) first,
// then c1, c2, c3 one by one, each drained, deployed to a new
// generation, checked and made eligible again.
func TestDeployRolling(t *testing.T) {
	inv, _, gen := deployLab(t)
	env := stateEnv(t)
	before := map[string]string{}
	for _, h := range []string{"zippy", "c1", "c2", "c3"} {
		before[h] = gen(h)
	}
	drained := len(nfsNomad.Drained())
	r := hoctlEnv(t, inv, env, "--yes", "deploy", "c1", "c2", "c3", "zippy")
	if r.code != 0 {
		t.Fatalf("deploy: exit %d\n%s", r.code, r.stderr)
	}
	for h, g := range before {
		if gen(h) == g {
			t.Errorf("%s still runs %s", h, g)
		}
	}
	if got := strings.Join(nfsNomad.Drained()[drained:], ","); got != "c1,c2,c3" {
		t.Errorf("drained %s, want c1,c2,c3 in order", got)
	}
	for _, h := range []string{"c1", "c2", "c3"} {
		if st, elig, drain := nfsNomad.Node(h); st != "ready" || elig != "eligible" || drain {
			t.Errorf("%s after the deploy: %s %s drain=%v", h, st, elig, drain)
		}
	}
	if z, c := strings.Index(r.stderr, "zippy | building"), strings.Index(r.stderr, "c1 | building"); z < 0 || c < 0 || z > c {
		t.Errorf("zippy (outside the quorum) must go first:\n%s", r.stderr)
	}
	if !strings.Contains(r.stderr, "not a Nomad client: no drain") {
		t.Errorf("zippy is no Nomad client:\n%s", r.stderr)
	}
}

// Quorum already degraded: refused before anything is touched.
func TestDeployRefusedWhenQuorumDegraded(t *testing.T) {
	inv, _, gen := deployLab(t)
	env := stateEnv(t)
	g := gen("c1")
	drained := len(nfsNomad.Drained())
	nfsConsul.SetServer("c3", false)
	r := hoctlEnv(t, inv, env, "--yes", "deploy", "c1")
	if r.code != 3 || !strings.Contains(r.stderr, "consul can lose no server now") {
		t.Fatalf("exit %d\n%s", r.code, r.stderr)
	}
	if gen("c1") != g || len(nfsNomad.Drained()) != drained {
		t.Fatal("the refused deploy touched something")
	}
}

// A failing host stops the rollout: the hosts after it are untouched, its
// node stays drained and ineligible, and the error says how to roll back.
func TestDeployFailureStopsTheRollout(t *testing.T) {
	inv, mode, gen := deployLab(t)
	env := stateEnv(t)
	mode("c2", "fail")
	g3 := gen("c3")
	r := hoctlEnv(t, inv, env, "--yes", "deploy", "c1", "c2", "c3")
	if r.code != 1 || !strings.Contains(r.stderr, "builder for") || !strings.Contains(r.stderr, "To roll back") {
		t.Fatalf("exit %d\n%s", r.code, r.stderr)
	}
	if gen("c3") != g3 {
		t.Fatal("c3 was deployed after c2 failed")
	}
	if st, elig, _ := nfsNomad.Node("c2"); st != "ready" || elig != "ineligible" {
		t.Fatalf("c2 must stay drained and ineligible: %s %s", st, elig)
	}
	if _, elig, _ := nfsNomad.Node("c3"); elig != "eligible" {
		t.Fatal("c3 was drained")
	}
}

// Exit 0 without a new generation (deploy-rs after a rollback) is
// reported as such: exit 5.
func TestDeployExitZeroWithoutChangeIsReported(t *testing.T) {
	inv, mode, _ := deployLab(t)
	env := stateEnv(t)
	mode("c1", "noop")
	r := hoctlEnv(t, inv, env, "--yes", "deploy", "c1")
	if r.code != 5 || !strings.Contains(r.stderr, "exited 0 but the system generation did not change") {
		t.Fatalf("exit %d\n%s", r.code, r.stderr)
	}
}

// A host that never comes back fails its after check within --wait.
func TestDeployHostNeverComesBack(t *testing.T) {
	inv, mode, _ := deployLab(t)
	env := stateEnv(t)
	mode("c2", "die")
	t.Cleanup(func() {
		if err := nfsLab.Restart(context.Background(), "c2"); err != nil {
			t.Error(err)
		}
	})
	r := hoctlEnv(t, inv, env, "--yes", "deploy", "--wait", "5s", "c2")
	t.Logf("the deploy of a host that never comes back took %s (--wait 5s)", r.duration)
	if r.code != 5 || !strings.Contains(r.stderr, "did not come back within 5s") {
		t.Fatalf("exit %d\n%s", r.code, r.stderr)
	}
}

// --rollback switches back to the previous generation, with the same
// drain and checks.
func TestDeployRollback(t *testing.T) {
	inv, _, gen := deployLab(t)
	env := stateEnv(t)
	before := gen("c1")
	if r := hoctlEnv(t, inv, env, "--yes", "deploy", "c1"); r.code != 0 {
		t.Fatalf("deploy: exit %d\n%s", r.code, r.stderr)
	}
	deployed := gen("c1")
	drained := len(nfsNomad.Drained())
	r := hoctlEnv(t, inv, env, "--yes", "deploy", "--rollback", "c1")
	if r.code != 0 || !strings.Contains(r.stderr, "switched to the previous generation") {
		t.Fatalf("rollback: exit %d\n%s", r.code, r.stderr)
	}
	if got := gen("c1"); got != before || got == deployed {
		t.Fatalf("after the rollback c1 runs %s; before the deploy %s, after it %s", got, before, deployed)
	}
	if len(nfsNomad.Drained()) != drained+1 {
		t.Fatal("the rollback did not drain c1 first")
	}
	if _, elig, _ := nfsNomad.Node("c1"); elig != "eligible" {
		t.Fatal("c1 is not eligible again after the rollback")
	}
}

// --dry-run runs every before check for real and prints the order and the
// exact commands; nothing is drained or deployed.
func TestDeployDryRun(t *testing.T) {
	inv, _, gen := deployLab(t)
	env := stateEnv(t)
	g := gen("c1")
	drained := len(nfsNomad.Drained())
	r := hoctlEnv(t, inv, env, "--dry-run", "deploy", "c2", "zippy", "c1")
	if r.code != 0 || !strings.Contains(r.stdout, "the order is zippy then c1, c2") || !strings.Contains(r.stdout, "deploy.sh c1") ||
		!strings.Contains(r.stdout, "✓ c1: passes now") {
		t.Fatalf("dry run: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if gen("c1") != g || len(nfsNomad.Drained()) != drained {
		t.Fatal("the dry run changed something")
	}
}
