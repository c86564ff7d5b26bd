package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// fleetInventoryWith is the fleet's inventory with known_hosts pointed at kh
// and extra appended.
func fleetInventoryWith(t *testing.T, kh, extra string) string {
	t.Helper()
	b, err := os.ReadFile(fleet.Inventory)
	if err != nil {
		t.Fatal(err)
	}
	s := strings.Replace(string(b), "  known_hosts: "+fleet.KnownHosts+"\n", "  known_hosts: "+kh+"\n", 1)
	if s == string(b) && kh != fleet.KnownHosts {
		t.Fatal("the lab's inventory has no known_hosts line to replace")
	}
	p := filepath.Join(t.TempDir(), "inventory.yaml")
	if err := os.WriteFile(p, []byte(s+extra), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// --accept-new against real sshd hosts: unknown hosts are refused without
// it, taken and recorded with it (so a strict run then passes), and a
// changed key is refused with it.
func TestAcceptNewOnTheFleet(t *testing.T) {
	kh := filepath.Join(t.TempDir(), "known_hosts")
	if err := os.WriteFile(kh, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	inv := fleetInventoryWith(t, kh, "")
	if r := hoctl(t, inv, "ping", "h01,h02"); r.code != 4 || strings.Count(r.stdout+r.stderr, "HOST KEY UNKNOWN") != 2 {
		t.Fatalf("strict, unknown: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if r := hoctl(t, inv, "--accept-new", "ping", "h01,h02"); r.code != 0 {
		t.Fatalf("--accept-new: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if r := hoctl(t, inv, "ping", "h01,h02"); r.code != 0 {
		t.Fatalf("strict after --accept-new recorded the keys: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	// h01's line now names h02's key: h01's key "changed".
	b, _ := os.ReadFile(kh)
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) != 2 {
		t.Fatalf("known_hosts: %q", b)
	}
	k1, k2 := strings.Fields(lines[0]), strings.Fields(lines[1])
	swapped := k1[0] + " " + strings.Join(k2[1:], " ") + "\n" + lines[1] + "\n"
	if err := os.WriteFile(kh, []byte(swapped), 0o600); err != nil {
		t.Fatal(err)
	}
	r := hoctl(t, inv, "--accept-new", "ping", "h01,h02")
	if r.code != 4 || !strings.Contains(r.stdout+r.stderr, "HOST KEY CHANGED") {
		t.Fatalf("--accept-new, changed key: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if b, _ := os.ReadFile(kh); string(b) != swapped {
		t.Errorf("known_hosts rewritten after a changed key:\n%s", b)
	}
}

// Inventory vars and when: on the fleet: a step runs only where the
// host's rack (host over group over inventory) is a.
func TestVarsAndWhenOnTheFleet(t *testing.T) {
	inv := fleetInventoryWith(t, fleet.KnownHosts, "\nvars: {rack: none}\n")
	b, _ := os.ReadFile(inv)
	// h01 and h02 get their rack from their own vars, h03 from a group.
	s := strings.Replace(string(b), "  h01: {address:", "  h01: {vars: {rack: a}, address:", 1)
	s = strings.Replace(s, "  h02: {address:", "  h02: {vars: {rack: b}, address:", 1)
	s = strings.Replace(s, "\ngroups:\n", "\ngroups:\n  racka: {hosts: [h03], vars: {rack: a}}\n", 1)
	if err := os.WriteFile(inv, []byte(s), 0o600); err != nil {
		t.Fatal(err)
	}
	rb := writeRunbook(t, "name: racks\nsteps:\n  - title: rack a\n    hosts: h0*\n    when: '{{eq .Vars.rack \"a\"}}'\n    run: echo rack-{{.Vars.rack}}-on-$(hostname)\n")
	r := hoctl(t, inv, "--yes", "runbook", "run", rb)
	if r.code != 0 {
		t.Fatalf("exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if !strings.Contains(r.stderr, "h02 skipped: when:") || strings.Count(r.stderr, " skipped: when:") != 7 {
		t.Errorf("skipped hosts:\n%s", r.stderr)
	}
	r = hoctl(t, inv, "history", "last")
	if !strings.Contains(r.stdout, "echo rack-a-on-$(hostname)") || strings.Count(r.stdout, "run    h0") != 2 {
		t.Errorf("history last:\n%s", r.stdout)
	}
}
