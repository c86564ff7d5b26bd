package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"
)

// hostsIn returns the lab host names (h01...) that appear in out, sorted.
func hostsIn(out string) []string {
	var hs []string
	for i := 1; i <= fleetSize; i++ {
		n := fmt.Sprintf("h%02d", i)
		if strings.Contains(out, n) {
			hs = append(hs, n)
		}
	}
	sort.Strings(hs)
	return hs
}

// hostsOf runs `hoctl hosts EXPR` and returns the host column.
func hostsOf(t *testing.T, expr string) []string {
	t.Helper()
	r := hoctl(t, fleet.Inventory, "hosts", expr)
	if r.code != 0 {
		t.Fatalf("hosts %q: exit %d\n%s", expr, r.code, r.stderr)
	}
	var hs []string
	for _, l := range strings.Split(strings.TrimSpace(r.stdout), "\n") {
		if f := strings.Fields(l); len(f) > 0 && f[0] != "HOST" {
			hs = append(hs, f[0])
		}
	}
	return hs
}

// TestTargetAlgebra: ! and & in a TARGET, with Ansible's meaning, in hosts
// and in run (which reaches exactly those hosts).
func TestTargetAlgebra(t *testing.T) {
	if got := strings.Join(hostsOf(t, "odd,!h03,!h05"), " "); got != "h01 h07 h09 h11 h13 h15 h17 h19" {
		t.Errorf("odd,!h03,!h05 = %s", got)
	}
	if got := strings.Join(hostsOf(t, "h0*,&odd"), " "); got != "h01 h03 h05 h07 h09" {
		t.Errorf("h0*,&odd = %s", got)
	}
	if got := strings.Join(hostsOf(t, "!odd,&h1*,!h20"), " "); got != "h10 h12 h14 h16 h18" {
		t.Errorf("!odd,&h1*,!h20 = %s", got)
	}
	out := onHosts(t, "fleet,&odd,!h01", "echo ran-on-$(hostname)")
	if got := hostsIn(strings.ReplaceAll(out, "ran-on-", "")); len(got) != 9 || strings.Contains(out, "h01") || strings.Contains(out, "h02") {
		t.Errorf("run fleet,&odd,!h01 reached %v:\n%s", got, out)
	}
	for expr, want := range map[string]string{
		"odd,!h3":    `did you mean "h03"`,
		"odd,&fleat": `did you mean "fleet"`,
		"odd,!odd":   "selects no host",
		"odd,!":      `"!" needs a name after it`,
	} {
		r := hoctl(t, fleet.Inventory, "run", expr, "--", "touch /data/should-not-exist")
		if r.code != 2 || !strings.Contains(r.stderr, want) {
			t.Errorf("run %q: exit %d, want 2 with %q\n%s", expr, r.code, want, r.stderr)
		}
	}
	if out := onHosts(t, "all", "test -e /data/should-not-exist && echo EXISTS || true"); strings.Contains(out, "EXISTS") {
		t.Fatal("a refused target ran its command")
	}
}

// TestRunbookLimitAndTemplatedHosts: --limit narrows every step, a step's
// hosts come from the runbook's variables, the plan shows the result, a
// bad limit or one that empties a step runs nothing, and resume keeps the
// run's limit.
func TestRunbookLimitAndTemplatedHosts(t *testing.T) {
	env := stateEnv(t)
	dir := fmt.Sprintf("/data/limit-%d", time.Now().UnixNano())
	defer onHosts(t, "all", "rm -rf "+dir)
	rb := writeRunbook(t, fmt.Sprintf(`
name: limited
vars: {target: odd}
steps:
  - title: mark the targets
    hosts: "{{.Vars.target}}"
    run: mkdir -p %[1]s && touch %[1]s/one
  - title: second mark, waits for go
    hosts: all
    run: test -e %[1]s/go && touch %[1]s/two
`, dir))

	r := hoctlEnv(t, fleet.Inventory, env, "runbook", "plan", rb, "--limit", "h01,h02,h03,h04,!h04")
	if r.code != 0 || !strings.Contains(r.stdout, "on h01, h03\n") || !strings.Contains(r.stdout, "on h01, h02, h03\n") {
		t.Fatalf("plan: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	r = hoctlEnv(t, fleet.Inventory, env, "runbook", "plan", rb, "--var", "target=h1*,&odd", "--limit", "h1*")
	if r.code != 0 || !strings.Contains(r.stdout, "on h11, h13, h15, h17, h19\n") {
		t.Fatalf("plan with --var: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}

	for _, c := range []struct{ limit, want string }{
		{"h1x", `--limit: target "h1x": no host, group or role has this name; did you mean`},
		{"h02", `steps.0.hosts: --limit "h02" leaves this step no host (its hosts: "odd" select h01, h03`},
	} {
		r = hoctlEnv(t, fleet.Inventory, env, "--yes", "runbook", "run", rb, "--limit", c.limit)
		if r.code != 2 || !strings.Contains(r.stderr, c.want) {
			t.Fatalf("--limit %s: exit %d, want 2 and %q\n%s", c.limit, r.code, c.want, r.stderr)
		}
	}
	if out := onHosts(t, "all", "test -e "+dir+" && echo EXISTS || true"); strings.Contains(out, "EXISTS") {
		t.Fatal("a refused --limit changed a host")
	}

	r = hoctlEnv(t, fleet.Inventory, env, "--yes", "runbook", "run", rb, "--limit", "h05,h06,h07")
	if r.code != 1 {
		t.Fatalf("step 2 should fail without the go file: exit %d\n%s", r.code, r.stderr)
	}
	if got := hostsIn(onHosts(t, "all", "test -e "+dir+"/one && hostname || true")); strings.Join(got, " ") != "h05 h07" {
		t.Fatalf("step 1 ran on %v, want h05 h07", got)
	}
	onHosts(t, "all", "mkdir -p "+dir+" && touch "+dir+"/go")
	id := lastRunID(t, env)
	r = hoctlEnv(t, fleet.Inventory, env, "--yes", "resume", id)
	if r.code != 0 {
		t.Fatalf("resume: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if got := hostsIn(onHosts(t, "all", "test -e "+dir+"/two && hostname || true")); strings.Join(got, " ") != "h05 h06 h07" {
		t.Fatalf("resume ran step 2 on %v, want the run's limit h05 h06 h07", got)
	}
}

// lastRunID is the newest run of the test's state dir.
func lastRunID(t *testing.T, env []string) string {
	t.Helper()
	r := hoctlEnv(t, fleet.Inventory, env, "history")
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	for _, l := range lines {
		if f := strings.Fields(l); len(f) > 0 && f[0] != "RUN" && f[0] != "ID" {
			return f[0]
		}
	}
	t.Fatalf("no run in history:\n%s", r.stdout)
	return ""
}

// TestResumeWithNewLimit: --limit on resume replaces the run's own.
func TestResumeWithNewLimit(t *testing.T) {
	env := stateEnv(t)
	dir := fmt.Sprintf("/data/relimit-%d", time.Now().UnixNano())
	defer onHosts(t, "all", "rm -rf "+dir)
	rb := writeRunbook(t, fmt.Sprintf("name: relimit\nsteps:\n  - {title: gated, hosts: all, run: 'test -e %[1]s/go && mkdir -p %[1]s && touch %[1]s/done'}\n", dir))
	r := hoctlEnv(t, fleet.Inventory, env, "--yes", "runbook", "run", rb, "--limit", "h08,h09")
	if r.code != 1 {
		t.Fatalf("exit %d\n%s", r.code, r.stderr)
	}
	id := lastRunID(t, env)
	r = hoctlEnv(t, fleet.Inventory, env, "--yes", "resume", id, "--limit", "h8")
	if r.code != 2 || !strings.Contains(r.stderr, `did you mean "h08"`) {
		t.Fatalf("resume --limit h8: exit %d\n%s", r.code, r.stderr)
	}
	onHosts(t, "all", "mkdir -p "+dir+" && touch "+dir+"/go")
	r = hoctlEnv(t, fleet.Inventory, env, "--yes", "resume", id, "--limit", "h09")
	if r.code != 0 {
		t.Fatalf("resume --limit h09: exit %d\n%s", r.code, r.stderr)
	}
	if got := hostsIn(onHosts(t, "all", "test -e "+dir+"/done && hostname || true")); strings.Join(got, " ") != "h09" {
		t.Fatalf("resume --limit h09 ran on %v", got)
	}
}

// TestBecomeFlags: --become wraps every remote command in sudo -n (a sudo
// shim on the host's PATH proves the wrapping), --no-become overrides an
// inventory that says sudo, and both at once is a usage error.
func TestBecomeFlags(t *testing.T) {
	h := fleet.Hosts[0]
	shim := filepath.Join(h.Dir, "bin", "sudo")
	if err := os.WriteFile(shim, []byte("#!/bin/sh\n[ \"$1\" = -n ] && [ \"$2\" = -- ] || exit 99\nshift 2\nSUDO_SHIM=yes exec \"$@\"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = os.Remove(shim) }()
	probe := "echo become=${SUDO_SHIM:-no}"
	run := func(inv string, flags ...string) string {
		t.Helper()
		r := hoctl(t, inv, append(append([]string{"run", h.Name}, flags...), "--", probe)...)
		if r.code != 0 {
			t.Fatalf("run %v: exit %d\n%s%s", flags, r.code, r.stdout, r.stderr)
		}
		return r.stdout
	}
	if out := run(fleet.Inventory); !strings.Contains(out, "become=no") {
		t.Errorf("inventory become none: %s", out)
	}
	if out := run(fleet.Inventory, "--become"); !strings.Contains(out, "become=yes") {
		t.Errorf("--become: %s", out)
	}
	data, err := os.ReadFile(fleet.Inventory)
	if err != nil {
		t.Fatal(err)
	}
	sudoInv := filepath.Join(t.TempDir(), "inventory.yaml")
	if err := os.WriteFile(sudoInv, []byte(strings.Replace(string(data), "  become: none\n", "  become: sudo\n", 1)), 0o600); err != nil {
		t.Fatal(err)
	}
	if out := run(sudoInv); !strings.Contains(out, "become=yes") {
		t.Errorf("inventory become sudo: %s", out)
	}
	if out := run(sudoInv, "--no-become"); !strings.Contains(out, "become=no") {
		t.Errorf("--no-become over become: sudo: %s", out)
	}
	r := hoctl(t, fleet.Inventory, "--become", "--no-become", "run", h.Name, "--", "touch /data/should-not-exist")
	if r.code != 2 || !strings.Contains(r.stderr, "--become and --no-become") {
		t.Errorf("both flags: exit %d\n%s", r.code, r.stderr)
	}
}

// TestDeployLimit: --limit narrows deploy's targets (the plan shows only
// the hosts left), names unknown hosts with a did-you-mean, and refuses a
// limit that leaves no target; nothing is deployed by any of these.
func TestDeployLimit(t *testing.T) {
	l, env, gen := deployCluster(t)
	inv := l.Inventory
	before := map[string]string{}
	for _, h := range deployHosts {
		before[h] = gen(h)
	}
	t0 := time.Now()
	r := hoctlEnv(t, inv, env, "--dry-run", "deploy", "--limit", "all,!zippy,!c1")
	if r.code != 0 || !strings.Contains(r.stdout, "deploy.sh c2") || !strings.Contains(r.stdout, "deploy.sh c3") ||
		strings.Contains(r.stdout, "deploy.sh zippy") || strings.Contains(r.stdout, "deploy.sh c1") {
		t.Fatalf("deploy --limit 'all,!zippy,!c1': exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	r = hoctlEnv(t, inv, env, "--dry-run", "deploy", "c1", "c2", "--limit", "quorum,&cattle,!c1")
	if r.code != 0 || !strings.Contains(r.stdout, "deploy.sh c2") || strings.Contains(r.stdout, "deploy.sh c1") {
		t.Fatalf("deploy c1 c2 --limit: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"deploy", "--limit", "c9"}, `--limit: target "c9": no host, group or role has this name; did you mean`},
		{[]string{"deploy", "c1", "--limit", "zippy"}, `--limit "zippy" leaves no target: it selects none of c1`},
	} {
		r = hoctlEnv(t, inv, env, append([]string{"--yes"}, c.args...)...)
		if r.code != 2 || !strings.Contains(r.stderr, c.want) {
			t.Fatalf("%v: exit %d, want 2 and %q\n%s", c.args, r.code, c.want, r.stderr)
		}
	}
	for h, g := range before {
		if gen(h) != g {
			t.Errorf("%s changed generation", h)
		}
		if len(nodeEvents(t, l, h, drainSet, t0)) != 0 {
			t.Errorf("a dry run or refused deploy drained %s", h)
		}
	}
}
