package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// hoctl check on the real binary: the lab's inventory and a runbook that
// uses it pass with a summary; a broken runbook lists every problem and
// exits 2; nothing connects (the lab's sshd would log it; a host list of
// unreachable addresses proves it more simply: they are never dialled).
func TestCheckValidatesOfflineWithTheRealBinary(t *testing.T) {
	dir := t.TempDir()
	write := func(name, src string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(src), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	// 192.0.2.0/24 is TEST-NET: never routed, and hoctl must not try.
	inv := write("inv.yaml", "defaults: {connect_timeout: 1s}\nhosts:\n  a: {address: 192.0.2.1}\n  b: {address: 192.0.2.2, roles: [web]}\ngroups:\n  pair: [a, b]\ndeploy: {command: 'echo {{.Host}}'}\n")
	good := write("good.yaml", "name: good\nvars: {target: pair}\nsecrets: {tok: E2E_UNSET_SECRET}\nsteps:\n  - {title: a, hosts: '{{.Vars.target}}', before: 'true', run: 'echo {{.Vars.tok}} {{.Host}}'}\n")
	bad := write("bad.yaml", "name: bad\nsteps:\n  - {title: a, hosts: wbe, run: 'echo {{.Vars.nope}}', timeout: 30}\n  - {title: b, run: c, retries: many, colour: red}\n")

	r := hoctl(t, inv, "check", good)
	if r.code != 0 || !strings.Contains(r.stdout, "ok: "+inv+" (2 hosts), 1 runbook (1 step); nothing connected") {
		t.Fatalf("good: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	r = hoctl(t, inv, "check", good, bad)
	if r.code != 2 {
		t.Fatalf("bad: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	for _, want := range []string{
		bad + `:3:23: steps.0.hosts: target "wbe"`,
		bad + `:3:33: steps.0.run: undefined variable nope`,
		bad + `:3:65: steps.0.timeout: expected a duration like 30s`,
		bad + `:4:33: steps.1.retries: expected a whole number, got "many"`,
		bad + `:4:39: steps.1: unknown field "colour"`,
	} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("output lacks %q:\n%s", want, r.stdout)
		}
	}
	if !strings.Contains(r.stderr, "5 problems") {
		t.Errorf("stderr: %s", r.stderr)
	}
	r = hoctl(t, inv, "--json", "check", bad)
	if r.code != 2 || strings.Count(r.stdout, `"event":"problem"`) != 5 || !strings.Contains(r.stdout, `"event":"check_summary","ok":false`) {
		t.Fatalf("json: exit %d\n%s", r.code, r.stdout)
	}
}

// Hostile inventories through the real binary: exit 2 naming the file,
// never a Go panic.
func TestHostileInventoryExits2WithTheRealBinary(t *testing.T) {
	dir := t.TempDir()
	for name, src := range map[string]string{
		"tag.yaml":  "hosts:\n  a: {address: x}\ngroups: {g: !x 0}\n",
		"deep.yaml": "hosts: " + strings.Repeat("[", 100_000) + strings.Repeat("]", 100_000) + "\n",
		"bomb.yaml": "hosts:\n  a: {address: x}\ngroups:\n  a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n" + bombLines(8),
	} {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(src), 0o600); err != nil {
			t.Fatal(err)
		}
		r := hoctl(t, p, "hosts")
		if r.code != 2 || !strings.HasPrefix(r.stderr, "error: "+p) || strings.Contains(r.stderr, "panic") {
			t.Errorf("%s: exit %d: %.300s", name, r.code, r.stderr)
		}
	}
}

func bombLines(depth int) string {
	var b strings.Builder
	for i := 1; i <= depth; i++ {
		prev := "*a" + string(rune('0'+i-1))
		b.WriteString("  a" + string(rune('0'+i)) + ": &a" + string(rune('0'+i)) + " [" + strings.Repeat(prev+", ", 9) + prev + "]\n")
	}
	return b.String()
}

// hosts --ssh against the lab's inventory: the values hoctl really uses
// to reach a lab host (the same test run pings them), with their origins.
func TestHostsSSHOnTheLabInventory(t *testing.T) {
	r := hoctl(t, fleet.Inventory, "hosts", "all")
	if r.code != 0 {
		t.Fatal(r.stderr)
	}
	first := strings.Fields(strings.Split(r.stdout, "\n")[1])[0]
	r = hoctl(t, fleet.Inventory, "hosts", first, "--ssh")
	if r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	for _, want := range []string{first + "\n", "  address ", "inventory host", "  known_hosts ", "  host_key_policy ", "  agent  "} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("lacks %q:\n%s", want, r.stdout)
		}
	}
	r = hoctl(t, fleet.Inventory, "--json", "hosts", first, "--ssh")
	if r.code != 0 || !strings.Contains(r.stdout, `"host":"`+first+`"`) || !strings.Contains(r.stdout, `"origin":"inventory host"`) {
		t.Fatalf("json: exit %d\n%s", r.code, r.stdout)
	}
	// It agrees with what connects: ping uses the same resolution.
	if r := hoctl(t, fleet.Inventory, "ping", first); r.code != 0 {
		t.Fatalf("ping %s: exit %d %s", first, r.code, r.stderr)
	}
}
