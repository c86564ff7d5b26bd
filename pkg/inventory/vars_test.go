package inventory

import (
	"reflect"
	"strings"
	"testing"
)

const withVars = `
vars: {domain: home.arpa, rack: none, port: 8080}
hosts:
  c1: {address: 10.0.0.1, vars: {rack: a}}
  c2: {address: 10.0.0.2}
  z:  {address: 10.0.0.3}
groups:
  cattle: {hosts: [c1, c2], vars: {nomad_class: compute, rack: b}}
  plain: [z]
`

func TestVarsMergeInventoryThenGroupThenHost(t *testing.T) {
	inv, err := parse(t, withVars)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		host string
		want map[string]string
	}{
		{"c1", map[string]string{"domain": "home.arpa", "rack": "a", "port": "8080", "nomad_class": "compute"}},
		{"c2", map[string]string{"domain": "home.arpa", "rack": "b", "port": "8080", "nomad_class": "compute"}},
		{"z", map[string]string{"domain": "home.arpa", "rack": "none", "port": "8080"}},
	} {
		if got := inv.VarsFor(inv.Host(c.host)); !reflect.DeepEqual(got, c.want) {
			t.Errorf("VarsFor(%s) = %v, want %v", c.host, got, c.want)
		}
	}
	if got := inv.Groups["cattle"]; !reflect.DeepEqual(got, []string{"c1", "c2"}) {
		t.Errorf("cattle = %v", got)
	}
	if got := inv.Groups["plain"]; !reflect.DeepEqual(got, []string{"z"}) {
		t.Errorf("plain = %v", got)
	}
	if got := inv.VarNames(); !reflect.DeepEqual(got, []string{"domain", "nomad_class", "port", "rack"}) {
		t.Errorf("VarNames = %v", got)
	}
}

func TestVarsTwoGroupsDisagreeingAreRefusedUnlessTheHostDecides(t *testing.T) {
	src := `
hosts:
  c1: {address: 10.0.0.1}
groups:
  east: {hosts: [c1], vars: {rack: a, same: x}}
  west: {hosts: [c1], vars: {rack: b, same: x}}
`
	_, err := parse(t, src)
	if err == nil {
		t.Fatal("two groups setting rack differently for c1 were accepted")
	}
	for _, want := range []string{"test.yaml:6:", "host c1 is in groups east and west", `"a" and "b"`, "hosts.c1.vars.rack"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
	if strings.Contains(err.Error(), "var same") {
		t.Errorf("equal values were reported: %v", err)
	}
	inv, err := parse(t, strings.Replace(src, "{address: 10.0.0.1}", "{address: 10.0.0.1, vars: {rack: c}}", 1))
	if err != nil {
		t.Fatalf("the host setting the var itself should settle it: %v", err)
	}
	if got := inv.VarsFor(inv.Host("c1"))["rack"]; got != "c" {
		t.Errorf("rack = %q, want the host's c", got)
	}
}

func TestVarsBadShapesAreLocated(t *testing.T) {
	for _, c := range []struct{ src, want string }{
		{"hosts: {c1: {address: x}}\nvars: {bad-name: 1}\n", `test.yaml:2:18: vars.bad-name: variable name "bad-name"`},
		{"hosts: {c1: {address: x, vars: {a: {b: c}}}}\n", "hosts.c1.vars.a"},
		{"hosts: {c1: {address: x}}\ngroups:\n  g: {hosts: [c1], vars: {a: [1]}}\n", "test.yaml:3:30: groups.g.vars.a: expected a single value"},
		{"hosts: {c1: {address: x}}\ngroups:\n  g: {members: [c1]}\n", `groups.g.members: unknown field "members"`},
		{"hosts: {c1: {address: x}}\ngroups:\n  g: {vars: {a: 1}}\n", "groups.g: missing hosts:"},
		{"hosts: {c1: {address: x}}\ngroups:\n  g: {hosts: [c9]}\n", `groups.g.hosts.0: "c9" is not a host`},
		{"hosts: {c1: {address: x}}\ngroups:\n  g: c1\n", "groups.g: expected a list of host names"},
	} {
		_, err := parse(t, c.src)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: error %v, want it to contain %q", c.src, err, c.want)
		}
	}
}
