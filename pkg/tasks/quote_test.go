package tasks

import (
	"context"
	"strings"
	"testing"

	"github.com/hoctl/hoctl/pkg/iostreams"
)

// planText is the plan of the runbook src as `runbook plan` prints it.
func (fx *fixture) planText(t *testing.T, src string) string {
	t.Helper()
	p, err := fx.eng.Plan(context.Background(), fx.runbook(t, src), 1)
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	ios, _, _, _ := iostreams.Test()
	PrintPlan(&b, ios.ColorScheme(), p, nil)
	return b.String()
}

func TestPlanShowsUnquotedWarnings(t *testing.T) {
	fx := newFixture(t)
	plan := fx.planText(t, "name: w\nvars: {app: x}\nsteps:\n  - {title: a, hosts: db, run: 'echo {{.Vars.app}}'}\n")
	if !strings.Contains(plan, "warning: step 1 run: {{.Vars.app}} is pasted into the command unquoted") {
		t.Fatalf("plan:\n%s", plan)
	}
}
