package replicate

import (
	"context"
	"fmt"

	"github.com/hoctl/hoctl/pkg/exitcode"
	"github.com/hoctl/hoctl/pkg/inventory"
	"github.com/hoctl/hoctl/pkg/tasks"
)

// DirectionKey is the Consul key where a failover records which end of a
// replication is its source now.
func DirectionKey(replication string) string {
	return "hoctl/replication/" + replication + "/source"
}

// KV reads a Consul key (consul.Cluster): its value, index and presence.
type KV interface {
	Get(ctx context.Context, key string) (string, uint64, bool, error)
}

// Resolve picks the inventory's replication by name or by its ends. SRC and
// DST the other way round from the inventory's replication run it
// reversed: sending back after a failover.
func Resolve(inv *inventory.Inventory, name, src, dst string) (Ends, error) {
	var none Ends
	if name != "" {
		r := inv.Replication[name]
		if r == nil {
			return none, exitcode.Usagef("no replication %q in the inventory", name)
		}
		switch {
		case src == "" || r.Source.Host == src && r.Target.Host == dst:
			return EndsOf(r), nil
		case r.Source.Host == dst && r.Target.Host == src:
			return EndsOf(r).Reverse(), nil
		}
		return none, exitcode.Usagef("replication %q runs %s → %s (or back, after a failover), not %s → %s", name, r.Source.Host, r.Target.Host, src, dst)
	}
	for _, h := range []string{src, dst} {
		if inv.Host(h) == nil {
			if _, err := inv.Select(h); err != nil {
				return none, err
			}
			return none, exitcode.Usagef("%q is not a single host", h)
		}
	}
	var found []Ends
	for _, r := range inv.Replication {
		switch {
		case r.Source.Host == src && r.Target.Host == dst:
			found = append(found, EndsOf(r))
		case r.Source.Host == dst && r.Target.Host == src:
			found = append(found, EndsOf(r).Reverse())
		}
	}
	switch len(found) {
	case 0:
		return none, exitcode.Usagef("no replication between %s and %s in the inventory", src, dst)
	case 1:
		return found[0], nil
	}
	return none, exitcode.Usagef("several replications run between %s and %s: choose one with --name", src, dst)
}

// CheckTransport refuses a --transport that is neither relay nor direct
// ("" keeps the inventory's).
func CheckTransport(t string) error {
	if t != "" && t != inventory.TransportRelay && t != inventory.TransportDirect {
		return exitcode.Usagef("--transport: expected relay or direct, got %q", t)
	}
	return nil
}

// Directed applies the direction a failover recorded in Consul
// (DirectionKey): after zippy → c1, `--name services` sends c1 → zippy,
// and explicit ends (`zippy c1` on the command line) are refused rather
// than sending the old primary's stale data over the new primary's
// copies. kv nil (no Consul in the inventory) keeps e.
func Directed(ctx context.Context, kv func(context.Context) (KV, error), e Ends, explicit bool) (Ends, error) {
	if kv == nil {
		return e, nil
	}
	c, err := kv(ctx)
	if err != nil {
		return e, err
	}
	src, _, ok, err := c.Get(ctx, DirectionKey(e.Name))
	if err != nil {
		return e, fmt.Errorf("reading the replication's direction from Consul: %w", err)
	}
	if !ok || src == e.SourceHost {
		return e, nil
	}
	if src != e.TargetHost {
		return e, fmt.Errorf("consul kv %s names %s, which takes no part in replication %s", DirectionKey(e.Name), src, e.Name)
	}
	if explicit {
		return e, tasks.Refusef("replication %s runs %s → %s since a failover (consul kv %s): run hoctl replicate %s %s",
			e.Name, e.TargetHost, e.SourceHost, DirectionKey(e.Name), e.TargetHost, e.SourceHost)
	}
	return e.Reverse(), nil
}

// Retry is what a failed replication says instead of resume: each run
// inspects both sides and removes what an interrupted one left, so the
// way on after a failure is another run.
const Retry = "run hoctl replicate again: it inspects both sides anew and removes what this run left"
