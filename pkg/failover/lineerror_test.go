package failover

import (
	"context"
	"errors"
	"testing"

	"github.com/hoctl/hoctl/pkg/inventory"
	"github.com/hoctl/hoctl/pkg/sshexec"
	"github.com/hoctl/hoctl/pkg/tasks"
)

// downRunner is a host whose connection drops under the command.
type downRunner struct{ name string }

func (r downRunner) Name() string { return r.name }
func (r downRunner) Run(context.Context, sshexec.Cmd) (*sshexec.Result, error) {
	return &sshexec.Result{}, &sshexec.ConnError{Host: r.name, Addr: "127.0.100.11:22", Err: errors.New("connection reset by peer")}
}

// The fence's error is one line, and still says the old primary was
// unreachable: exit 4, not a failed step's 1.
func TestFenceOfAnUnreachablePrimaryKeepsTheConnError(t *testing.T) {
	inv := parseInv(t, resolveInv)
	rb, err := Resolve(context.Background(), inv, func(context.Context) (Consul, error) { return ownerConsul{"zippy"}, nil }, Options{To: "c1"})
	if err != nil {
		t.Fatal(err)
	}
	var fence *tasks.Step
	for _, s := range rb.Steps {
		if s.Title[:5] == "fence" {
			fence = s
		}
	}
	env := &tasks.Env{Inventory: inv, Connect: func(_ context.Context, h *inventory.Host) (sshexec.Runner, error) {
		return downRunner{h.Name}, nil
	}}
	_, err = fence.Action.Run(context.Background(), env, nil, 0)
	var ce *sshexec.ConnError
	if err == nil || !errors.As(err, &ce) || ce.Host != "zippy" {
		t.Fatalf("fence: %v (%T): want a *ConnError of zippy inside", err, err)
	}
	if want := "zippy: stopping nfs-server.service: zippy (127.0.100.11:22): "; len(err.Error()) < len(want) || err.Error()[:len(want)] != want {
		t.Errorf("fence: %q", err)
	}
}
