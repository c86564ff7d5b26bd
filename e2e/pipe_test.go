package e2e

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/hoctl/hoctl/internal/lab"
	"github.com/hoctl/hoctl/pkg/inventory"
	"github.com/hoctl/hoctl/pkg/sshexec"
)

// labRunners connects to a lab's hosts through the library, as hoctl's
// commands do.
func labRunners(t *testing.T, l *lab.Lab, names ...string) []sshexec.Runner {
	t.Helper()
	inv, err := inventory.Load(context.Background(), l.Inventory)
	if err != nil {
		t.Fatal(err)
	}
	home, _ := os.UserHomeDir()
	sc, err := sshexec.LoadSSHConfig(filepath.Join(home, ".ssh", "config"))
	if err != nil {
		t.Fatal(err)
	}
	res := &sshexec.Resolver{Inventory: inv, SSHConfig: sc, Home: home}
	pool := sshexec.NewPool(sshexec.PoolOptions{})
	t.Cleanup(func() { _ = pool.Close() })
	var out []sshexec.Runner
	for _, n := range names {
		tg, err := res.Resolve(inv.Host(n))
		if err != nil {
			t.Fatal(err)
		}
		r, err := pool.Runner(context.Background(), tg)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, r)
	}
	return out
}

func TestPipeBetweenRealSSHDs(t *testing.T) {
	rs := labRunners(t, fleet, "h07", "h08")
	src, dst := rs[0], rs[1]
	ctx := context.Background()
	res, err := src.Run(ctx, sshexec.Cmd{Script: "head -c 31457287 /dev/urandom > /persist/blob && sha256sum < /persist/blob"})
	if err != nil {
		t.Fatal(err)
	}
	want := strings.Fields(string(res.Stdout))[0]
	var n atomic.Int64
	pr, err := sshexec.Pipe(ctx, src, sshexec.Cmd{Argv: []string{"cat", "/persist/blob"}}, dst, sshexec.Cmd{Script: "tee /persist/copy | sha256sum"}, &n)
	if err != nil {
		t.Fatal(err)
	}
	if pr.Bytes != 31457287 || n.Load() != 31457287 {
		t.Fatalf("bytes = %d", pr.Bytes)
	}
	if got := strings.Fields(string(pr.Receiver.Stdout))[0]; got != want {
		t.Fatalf("checksum %s, want %s", got, want)
	}

	// A sender that fails after a partial write: its error comes first,
	// not the receiver's complaint about a short stream.
	_, err = sshexec.Pipe(ctx, src, sshexec.Cmd{Script: "head -c 1000 /persist/blob; echo 'ERROR: parent not found' >&2; exit 1"},
		dst, sshexec.Cmd{Script: "c=$(wc -c); [ \"$c\" -gt 5000 ] || { echo 'ERROR: short stream' >&2; exit 2; }"}, nil)
	var pe *sshexec.PipeError
	if !errors.As(err, &pe) || pe.Side != "sender" || !strings.Contains(err.Error(), "parent not found") {
		t.Fatalf("err = %v", err)
	}
	_, _ = src.Run(ctx, sshexec.Cmd{Script: "rm -f /persist/blob"})
	_, _ = dst.Run(ctx, sshexec.Cmd{Script: "rm -f /persist/copy"})
}
