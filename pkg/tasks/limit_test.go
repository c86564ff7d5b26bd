package tasks

import (
	"errors"
	"strings"
	"testing"

	"github.com/hoctl/hoctl/pkg/inventory"
)

func stepHostNames(rb *Runbook) []string {
	var out []string
	for _, s := range rb.Steps {
		out = append(out, strings.Join(s.hostNames(), ","))
	}
	return out
}

// TestStepHostsUseVars: hosts: may name its hosts through the runbook's
// variables; --var changes them; the rendered expression goes through the
// same target algebra.
func TestStepHostsUseVars(t *testing.T) {
	inv, _ := inventory.Parse("inv.yaml", []byte(inv5))
	src := "name: x\nvars: {target: 'web,!h2'}\nsteps:\n  - {title: a, hosts: '{{.Vars.target}}', run: 'echo {{.Host}}'}\n  - {title: b, run: 'true'}\n"
	rb, err := ParseRunbook("rb.yaml", []byte(src), inv, LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got := stepHostNames(rb); got[0] != "h1,h3,h4" || got[1] != "local" {
		t.Fatalf("hosts = %v", got)
	}
	rb, err = ParseRunbook("rb.yaml", []byte(src), inv, LoadOptions{Vars: map[string]string{"target": "db"}})
	if err != nil {
		t.Fatal(err)
	}
	if got := stepHostNames(rb); got[0] != "db" {
		t.Fatalf("with --var target=db: hosts = %v", got)
	}
}

func TestStepHostsTemplateErrors(t *testing.T) {
	inv, _ := inventory.Parse("inv.yaml", []byte(inv5))
	cases := map[string]string{
		"name: x\nsteps:\n  - {title: a, hosts: '{{.Vars.nope}}', run: b}\n":                   "steps.0.hosts: undefined variable nope",
		"name: x\nvars: {t: wbe}\nsteps:\n  - {title: a, hosts: '{{.Vars.t}}', run: b}\n":      `steps.0.hosts: "{{.Vars.t}}" renders to "wbe": target "wbe": no host, group or role has this name; did you mean "web"?`,
		"name: x\nvars: {t: ''}\nsteps:\n  - {title: a, hosts: '{{.Vars.t}}', run: b}\n":       `renders to "": target "": empty target`,
		"name: x\nsteps:\n  - {title: a, hosts: '{{.Vars.t', run: b}\n":                        "steps.0.hosts: bad template",
		"name: x\nvars: {t: web}\nsteps:\n  - {title: a, hosts: '{{.Vars.t}},!web', run: b}\n": "selects no host",
	}
	for src, want := range cases {
		_, err := ParseRunbook("rb.yaml", []byte(src), inv, LoadOptions{})
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q:\n got %v\nwant %q", src, err, want)
		}
	}
}

// TestLimitNarrowsEverySteps: --limit intersects each step's hosts, local
// steps stay, the limit is recorded for resume, and a limit that empties
// a step (or names an unknown host) stops the load.
func TestLimitNarrowsEveryStep(t *testing.T) {
	inv, _ := inventory.Parse("inv.yaml", []byte(inv5))
	src := "name: x\nsteps:\n  - {title: a, hosts: web, run: 'true'}\n  - {title: b, hosts: 'h1,h2,db', run: 'true'}\n  - {title: c, run: 'true'}\n"
	rb, err := ParseRunbook("rb.yaml", []byte(src), inv, LoadOptions{Limit: "h1,h2,h3,!h3"})
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(stepHostNames(rb), " "); got != "h1,h2 h1,h2 local" {
		t.Errorf("limited hosts = %s", got)
	}
	if rb.Params["limit"] != "h1,h2,h3,!h3" {
		t.Errorf("params = %v", rb.Params)
	}

	_, err = ParseRunbook("rb.yaml", []byte(src), inv, LoadOptions{Limit: "h9"})
	var te *inventory.TargetError
	if !errors.As(err, &te) || !strings.Contains(err.Error(), `--limit: target "h9"`) || !strings.Contains(err.Error(), "did you mean") {
		t.Errorf("unknown limit: %v", err)
	}

	_, err = ParseRunbook("rb.yaml", []byte(src), inv, LoadOptions{Limit: "db"})
	if err == nil || !strings.Contains(err.Error(), `rb.yaml:3:23: steps.0.hosts: --limit "db" leaves this step no host (its hosts: "web" select h1, h2, h3, h4)`) {
		t.Errorf("limit emptying step 1: %v", err)
	}
	if err != nil && strings.Contains(err.Error(), "steps.1") {
		t.Errorf("step 2 keeps db, yet: %v", err)
	}
}
