package tasks

import (
	"context"
	"strings"
	"testing"

	"github.com/hoctl/hoctl/pkg/iostreams"
)

func TestPlanShowsUnquotedWarnings(t *testing.T) {
	fx := newFixture(t)
	rb, err := ParseRunbook("rb.yaml", []byte("name: w\nvars: {app: x}\nsteps:\n  - {title: a, hosts: db, run: 'echo {{.Vars.app}}'}\n"), fx.inv, LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	p, err := fx.eng.Plan(context.Background(), rb, 1)
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	ios, _, _, _ := iostreams.Test()
	PrintPlan(&b, ios.ColorScheme(), p, nil)
	if !strings.Contains(b.String(), "warning: step 1 run: {{.Vars.app}} is pasted into the command unquoted") {
		t.Fatalf("plan:\n%s", b.String())
	}
}
