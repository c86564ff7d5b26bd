package tasks

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"testing"

	"github.com/hoctl/hoctl/pkg/inventory"
)

// A Go step that fails journals the exit status of the command it ran
// (deploy's local deploy command), and none when it ran no command (an
// API check): never the "exit 0" of a process that did not exit 0.
func TestFailedFuncJournalsItsCommandsExit(t *testing.T) {
	for _, c := range []struct {
		name string
		fn   func(ctx context.Context) error
		want *int
	}{
		{"a local command exited 3", func(ctx context.Context) error {
			err := exec.CommandContext(ctx, "sh", "-c", "exit 3").Run()
			return fmt.Errorf("deploy command for local failed (%w)", err)
		}, ptr(3)},
		{"no command ran", func(context.Context) error { return errors.New("Consul has no leader") }, nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			fx := newFixture(t)
			rb := &Runbook{Name: "f", Steps: []*Step{{Title: "local", Action: &Func{Desc: "x", Fn: func(ctx context.Context, _ *Env, _ *inventory.Host) (string, error) {
				return "", c.fn(ctx)
			}}}}}
			id, err := fx.eng.Run(context.Background(), rb, RunOptions{})
			if err == nil {
				t.Fatal("the run succeeded")
			}
			var act *Record
			for _, r := range fx.journal(t, id) {
				if r.Type == "action" {
					act = &r
				}
			}
			switch {
			case act == nil:
				t.Fatal("no action journaled")
			case c.want == nil && act.ExitCode != nil:
				t.Fatalf("journaled exit %d for a step that ran no command", *act.ExitCode)
			case c.want != nil && (act.ExitCode == nil || *act.ExitCode != *c.want):
				t.Fatalf("journaled exit %v, want %d", fmtCode(act.ExitCode), *c.want)
			}
		})
	}
}

func ptr(i int) *int { return &i }

func fmtCode(p *int) string {
	if p == nil {
		return "none"
	}
	return fmt.Sprint(*p)
}
