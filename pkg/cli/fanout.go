package cli

import (
	"context"
	"errors"

	"github.com/hoctl/hoctl/pkg/inventory"
	"github.com/hoctl/hoctl/pkg/sshexec"
)

// fanOut is what ping and run share: select the TARGETs' hosts (their
// union), connect, call one per host (at most parallel at once; mk sees
// the selection first) and tally failures by errOf (unreachable hosts
// apart). Results keep inventory order; each command's printer shows
// them as they come.
func fanOut[R any](ctx context.Context, f *Factory, targets []string, parallel int,
	mk func(hosts []*inventory.Host) func(ctx context.Context, conn Connector, h *inventory.Host) R,
	errOf func(R) error,
) ([]R, *HostsError, error) {
	inv, err := f.Inventory(ctx)
	if err != nil {
		return nil, nil, err
	}
	hosts, err := selectUnion(inv, targets)
	if err != nil {
		return nil, nil, err
	}
	conn, err := f.Connector(inv)
	if err != nil {
		return nil, nil, err
	}
	defer func() { _ = conn.Close() }()

	one := mk(hosts)
	results := make([]R, len(hosts))
	sshexec.ForEach(ctx, parallel, hosts, func(ctx context.Context, i int, h *inventory.Host) {
		results[i] = one(ctx, conn, h)
	})
	if ctx.Err() != nil {
		return nil, nil, ctx.Err()
	}
	return results, tally(results, errOf), nil
}

// tally counts the hosts whose result failed, the unreachable apart.
func tally[R any](results []R, errOf func(R) error) *HostsError {
	he := &HostsError{Total: len(results)}
	for _, r := range results {
		var ce *sshexec.ConnError
		switch err := errOf(r); {
		case err == nil:
		case errors.As(err, &ce):
			he.Unreachable++
		default:
			he.Failed++
		}
	}
	return he
}
