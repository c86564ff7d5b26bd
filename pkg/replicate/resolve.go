package replicate

import (
	"context"
	"fmt"
	"strings"
	"sync"

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

// ConsulDirection reads the direction a failover recorded in Consul
// (DirectionKey), or none when Consul cannot answer. A Consul outage must
// not stop the replication a timer runs every few minutes: what keeps a
// run from sending into the side that serves without Consul is the
// direction file a failover writes on both hosts (DirectionFile), which
// the run reads under its host locks and which refuses a run against it
// (DirectionError), whatever Consul said. So an unreachable Consul counts
// as no record, and Unreachable says why for the plan and the journal.
// The first failure is kept: later reads do not wait on Consul again.
type ConsulDirection struct {
	kv func(context.Context) (KV, error)

	mu  sync.Mutex
	c   KV
	err error
}

// NewConsulDirection reads through kv (nil: the inventory has no Consul;
// then every read finds no record and nothing is unreachable).
func NewConsulDirection(kv func(context.Context) (KV, error)) *ConsulDirection {
	return &ConsulDirection{kv: kv}
}

// KV is d as Directed and Plan take it (nil without Consul).
func (d *ConsulDirection) KV() func(context.Context) (KV, error) {
	if d == nil || d.kv == nil {
		return nil
	}
	return func(context.Context) (KV, error) { return d, nil }
}

// Get reads key from Consul; Consul failing to answer is no record.
func (d *ConsulDirection) Get(ctx context.Context, key string) (string, uint64, bool, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.err != nil {
		return "", 0, false, nil
	}
	if d.c == nil {
		c, err := d.kv(ctx)
		if err != nil {
			d.err = err
			return "", 0, false, nil
		}
		d.c = c
	}
	v, idx, ok, err := d.c.Get(ctx, key)
	if err != nil {
		if ctx.Err() != nil {
			// Interrupted, not unreachable: the run stops.
			return "", 0, false, ctx.Err()
		}
		d.err = err
		return "", 0, false, nil
	}
	return v, idx, ok, nil
}

// Unreachable is why Consul was not consulted, nil when it was (or the
// inventory has none).
func (d *ConsulDirection) Unreachable() error {
	if d == nil {
		return nil
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.err
}

// NotConsulted is what a plan and the journal say of a run that went on
// without Consul ("" when Consul answered or none is configured).
func (d *ConsulDirection) NotConsulted() string {
	err := d.Unreachable()
	if err == nil {
		return ""
	}
	return "Consul was not consulted (unreachable: " + firstLine(err.Error()) + "): the direction is the inventory's or the command line's, " +
		"guarded by the direction file a failover wrote on both hosts (read when the run takes the host locks, which hold without Consul; the cluster lock is not taken)"
}

func firstLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	return s
}
