package tasks

import (
	"strings"
	"testing"

	"github.com/hoctl/hoctl/pkg/inventory"
)

const invVars = `
vars: {domain: home.arpa, rack: none}
hosts:
  c1: {address: 10.0.0.1, vars: {rack: a}}
  c2: {address: 10.0.0.2}
  z:  {address: 10.0.0.3}
groups:
  cattle: {hosts: [c1, c2], vars: {rack: b, class: compute}}
`

func TestInventoryVarsReachStepTemplatesPerHost(t *testing.T) {
	inv, err := inventory.Parse("inv.yaml", []byte(invVars))
	if err != nil {
		t.Fatal(err)
	}
	src := "name: x\nsteps:\n  - {title: a, hosts: all, run: 'echo {{.Vars.rack}} {{.Vars.domain}}'}\n  - {title: b, run: 'echo {{.Vars.domain}}'}\n"
	rb, err := ParseRunbook("rb.yaml", []byte(src), inv, LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for h, want := range map[string]string{"c1": "echo a home.arpa", "c2": "echo b home.arpa", "z": "echo none home.arpa"} {
		if got, err := rb.Steps[0].Action.Describe(inv.Host(h)); err != nil || got != want {
			t.Errorf("%s: %q, %v; want %q", h, got, err, want)
		}
	}
	if got, _ := rb.Steps[1].Action.Describe(localHost); got != "echo home.arpa" {
		t.Errorf("local step: %q", got)
	}

	// The runbook's vars and --var win over the inventory's, on every host.
	src = "name: x\nvars: {domain: example.org}\nsteps:\n  - {title: a, hosts: all, run: 'echo {{.Vars.rack}} {{.Vars.domain}}'}\n"
	rb, err = ParseRunbook("rb.yaml", []byte(src), inv, LoadOptions{Vars: map[string]string{"rack": "r9"}})
	if err != nil {
		t.Fatalf("--var naming an inventory var: %v", err)
	}
	if got, _ := rb.Steps[0].Action.Describe(inv.Host("c1")); got != "echo r9 example.org" {
		t.Errorf("c1 with runbook vars and --var rack=r9: %q", got)
	}
	if rb.Params["var.rack"] != "r9" {
		t.Errorf("--var rack not journaled: %v", rb.Params)
	}
}

func TestMissingVarIsLocatedWithDidYouMean(t *testing.T) {
	inv, err := inventory.Parse("inv.yaml", []byte(invVars))
	if err != nil {
		t.Fatal(err)
	}
	// class is set only for cattle: z has none.
	src := "name: x\nsteps:\n  - {title: a, hosts: all, run: 'echo {{.Vars.class}}'}\n  - {title: b, hosts: c1, run: 'echo {{.Vars.rak}}'}\n"
	_, err = ParseRunbook("rb.yaml", []byte(src), inv, LoadOptions{})
	if err == nil {
		t.Fatal("missing vars accepted")
	}
	for _, want := range []string{
		"rb.yaml:3:33: steps.0.run: undefined variable class (for host z)",
		"rb.yaml:4:32: steps.1.run: undefined variable rak; did you mean .Vars.rack? (for host c1)",
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
}

func TestVarForUnknownNameSuggestsInventoryVars(t *testing.T) {
	inv, err := inventory.Parse("inv.yaml", []byte(invVars))
	if err != nil {
		t.Fatal(err)
	}
	_, err = ParseRunbook("rb.yaml", []byte("name: x\nsteps:\n  - {title: a, run: b}\n"), inv, LoadOptions{Vars: map[string]string{"rac": "x"}})
	if err == nil || !strings.Contains(err.Error(), "did you mean rack?") {
		t.Errorf("got %v", err)
	}
}
