package cli

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/hoctl/hoctl/pkg/inventory"
	"github.com/hoctl/hoctl/pkg/sshexec"
	"github.com/hoctl/hoctl/pkg/sshexec/sshexectest"
)

// blockingConnector runs commands that last until they are cancelled, and
// cancels the run once every host's has started (Ctrl-C).
type blockingConnector struct {
	started atomic.Int32
	hosts   int32
	cancel  context.CancelFunc
}

func (b *blockingConnector) Runner(_ context.Context, h *inventory.Host) (sshexec.Runner, error) {
	return &sshexectest.Func{Host: h.Name, Fn: func(ctx context.Context, _ sshexec.Cmd) (*sshexec.Result, error) {
		if b.started.Add(1) == b.hosts {
			b.cancel()
		}
		<-ctx.Done()
		return &sshexec.Result{Host: h.Name, ExitCode: -1}, fmt.Errorf("%s: %w", h.Name, ctx.Err())
	}}, nil
}

func (b *blockingConnector) Close() error { return nil }

// Ctrl-C during run: each host is said to be interrupted, with exit 130,
// never Go's "context canceled" and -1.
func TestRunInterruptedHostsSaySo(t *testing.T) {
	for _, args := range [][]string{{"--json", "run", "cattle", "--", "sleep 100"}, {"run", "--group", "cattle", "--", "sleep 100"}} {
		h := newHarness(t)
		ctx, cancel := context.WithCancel(context.Background())
		bc := &blockingConnector{hosts: 2, cancel: cancel}
		h.f.Connect = func(*inventory.Inventory) (Connector, error) { return bc, nil }
		if code := Run(ctx, h.f, args); code != ExitInterrupted {
			t.Fatalf("%q: exit %d\n%s", args, code, h.err)
		}
		all := h.out.String() + h.err.String()
		if strings.Contains(all, "context canceled") || strings.Contains(all, "-1") {
			t.Errorf("%q: Go's words or exit -1:\n%s", args, all)
		}
		want := `"exit_code":130,"stdout"`
		if args[0] != "--json" {
			want = "(interrupted, "
		}
		if n := strings.Count(all, want); n != 2 {
			t.Errorf("%q: %d hosts say %q, want 2:\n%s", args, n, want, all)
		}
	}
}
