package tasks

import (
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/hoctl/hoctl/pkg/inventory"
	"github.com/hoctl/hoctl/pkg/iostreams"
)

// when: leaves out the hosts where it renders false: they are listed as
// skipped in the plan, journaled as a passed when check, and nothing of
// the step runs there (not even its before check).
func TestWhenSkipsHostsInPlanRunAndJournal(t *testing.T) {
	fx := newFixture(t)
	inv, err := inventory.Parse("inv.yaml", []byte(invVars))
	if err != nil {
		t.Fatal(err)
	}
	fx.inv, fx.eng.Env.Inventory = inv, inv
	rb := fx.runbook(t, "name: w\nsteps:\n  - {title: rack a, hosts: all, when: '{{eq .Vars.rack \"a\"}}', before: 'check-{{.Vars.rack}}', run: 'do-{{.Host}}'}\n  - {title: all, hosts: all, run: 'x'}\n")
	if got := rb.Steps[0].hostNames(); !slices.Equal(got, []string{"c1"}) {
		t.Fatalf("step 1 runs on %v", got)
	}
	p, err := fx.eng.Plan(context.Background(), rb, 1)
	if err != nil {
		t.Fatal(err)
	}
	if sk := p.Steps[0].Skipped; len(sk) != 2 || sk[0].Host != "c2" || sk[1].Host != "z" || sk[0].Reason != `when: {{eq .Vars.rack "a"}} is false` {
		t.Fatalf("plan skipped %+v", sk)
	}
	var b strings.Builder
	s, _, _, _ := iostreams.Test()
	PrintPlan(&b, s.ColorScheme(), p, nil)
	if !strings.Contains(b.String(), `   skipped on c2, z: when: {{eq .Vars.rack "a"}} is false`) {
		t.Errorf("printed plan:\n%s", b.String())
	}
	id, err := fx.eng.Run(context.Background(), rb, RunOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range fx.hosts.commands() {
		if strings.HasPrefix(c, "c2: check") || strings.HasPrefix(c, "z: check") || strings.Contains(c, "do-c2") || strings.Contains(c, "do-z") {
			t.Errorf("ran on a skipped host: %s", c)
		}
	}
	skipped := map[string]bool{}
	for _, r := range fx.journal(t, id) {
		if r.Type == "check" && r.Phase == "when" && r.Step == 1 && r.Output == "skipped" {
			skipped[r.Host] = true
		}
	}
	if !skipped["c2"] || !skipped["z"] || len(skipped) != 2 {
		t.Errorf("journaled skips: %v", skipped)
	}
	if !strings.Contains(fx.out.String(), `· c2 skipped: when: {{eq .Vars.rack "a"}} is false`) {
		t.Errorf("run output:\n%s", fx.out.String())
	}
}

func TestWhenProblemsAreLocated(t *testing.T) {
	inv, err := inventory.Parse("inv.yaml", []byte(invVars))
	if err != nil {
		t.Fatal(err)
	}
	for src, want := range map[string]string{
		"name: x\nsteps:\n  - {title: a, hosts: all, when: '{{.Vars.rak}}', run: b}\n":            "rb.yaml:3:34: steps.0.when: undefined variable rak; did you mean .Vars.rack? (for host c1)",
		"name: x\nsteps:\n  - {title: a, hosts: all, when: '{{.Vars.rack}}', run: b}\n":           `steps.0.when: renders "a" for host c1: expected true or false`,
		"name: x\nsteps:\n  - {title: a, hosts: all, when: '{{eq .Vars.rack}', run: b}\n":         "steps.0.when: bad template",
		"name: x\nsteps:\n  - {title: a, hosts: all, when: '{{eq .Vars.class \"x\"}}', run: b}\n": "undefined variable class (for host z)",
	} {
		_, err := ParseRunbook("rb.yaml", []byte(src), inv, LoadOptions{})
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q:\n got %v\nwant %q", src, err, want)
		}
	}
	// A var only some hosts have: index gives "" for the others.
	rb, err := ParseRunbook("rb.yaml", []byte("name: x\nsteps:\n  - {title: a, hosts: all, when: '{{eq (index .Vars \"class\") \"compute\"}}', run: b}\n"), inv, LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got := rb.Steps[0].hostNames(); !slices.Equal(got, []string{"c1", "c2"}) {
		t.Errorf("hosts %v", got)
	}
}
