package failover

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/hoctl/hoctl/pkg/inventory"
	"github.com/hoctl/hoctl/pkg/replicate"
	"github.com/hoctl/hoctl/pkg/sshexec"
	"github.com/hoctl/hoctl/pkg/tasks"
)

// writeDirection records on host h which end is replication name's
// source, through the replication dir's primitive: only ever into a
// regular file directly in dir, never through a link, FIFO or device a
// send stream planted under that name.
func writeDirection(ctx context.Context, env *tasks.Env, h *inventory.Host, dir, name, source string) error {
	run, err := env.Connect(ctx, h)
	if err != nil {
		return err
	}
	res, err := run.Run(ctx, replicate.DirectionCmd(dir, name, source))
	if err != nil {
		return fmt.Errorf("%s: writing %s: %w", h.Name, replicate.DirectionFile(dir, name), sshexec.OneLine(res, err))
	}
	return nil
}

// checkDirection reads the direction files a failover wrote on both hosts
// (under each host's replication lock, as the final sync will) and
// Consul's record of the direction, before anything changes: the final
// sync From → To runs after the fence, and a direction file naming To
// there would refuse it with the old primary already fenced. A file
// naming To while Consul's record names From is stale (a failover that
// could not reach that host, which was down, to record it): the
// assessment's action rewrites it. Any other file naming To is refused
// here, with nothing changed.
func (r *Run) checkDirection(ctx context.Context, env *tasks.Env, c Consul) (string, error) {
	o, e := r.Opts, r.Ends
	recorded, _, _, err := c.Get(ctx, replicate.DirectionKey(e.Name))
	if err != nil {
		return "", err
	}
	stale := map[string]string{}
	for _, side := range []struct{ host, dir string }{{o.From, e.SourceDir}, {o.To, e.TargetDir}} {
		run, err := env.Connect(ctx, r.Inv.Host(side.host))
		if err != nil {
			return "", err
		}
		l, err := replicate.AcquireHostLock(ctx, run, side.dir, e.Name, "hoctl failover assessment")
		if err != nil {
			// The message, not the chain: a check's error that wraps
			// a command's exit status is shown as that status alone.
			return "", fmt.Errorf("reading the direction file: %s (the final sync after the fence takes this lock too)", err.Error())
		}
		l.Release()
		if l.Direction != o.To {
			continue
		}
		file := replicate.DirectionFile(side.dir, e.Name)
		if recorded != o.From {
			rec := "no record"
			if recorded != "" {
				rec = "records " + recorded
			}
			return "", fmt.Errorf("%s:%s says replication %s runs %s → %s, but the owner key names %s and Consul (%s) %s: the final sync %s → %s would be refused after the fence. "+
				"Find out which host holds the newest data, then write the source's name into that file (or fail over to it)",
				side.host, file, e.Name, o.To, o.From, o.From, replicate.DirectionKey(e.Name), rec, o.From, o.To)
		}
		stale[side.host] = side.dir
	}
	r.mu.Lock()
	r.stale = stale
	r.mu.Unlock()
	if len(stale) == 0 {
		return "", nil
	}
	return "; stale direction file (Consul records " + o.From + " as the source) on " + strings.Join(slices.Sorted(maps.Keys(stale)), ", ") + ": rewritten before the fence", nil
}

func (r *Run) repairDesc() string {
	if r.Opts.PrimaryDown {
		return ""
	}
	return fmt.Sprintf("; where the assessment found a stale direction file naming %s, write %s into it", r.Opts.To, r.Opts.From)
}

// repairDirection rewrites the stale direction files checkDirection
// found to name the old primary, as Consul's record does. It runs before
// the fence: failing, it leaves the owner key and both servers alone.
func (r *Run) repairDirection(ctx context.Context, env *tasks.Env) (string, error) {
	r.mu.Lock()
	stale := r.stale
	r.mu.Unlock()
	var done []string
	for _, h := range slices.Sorted(maps.Keys(stale)) {
		if err := writeDirection(ctx, env, r.Inv.Host(h), stale[h], r.Ends.Name, r.Opts.From); err != nil {
			return "", err
		}
		done = append(done, h+":"+replicate.DirectionFile(stale[h], r.Ends.Name))
	}
	if len(done) == 0 {
		return "", nil
	}
	return "; stale direction rewritten to " + r.Opts.From + " in " + strings.Join(done, ", "), nil
}
