package replicate

import (
	"context"
	"fmt"
	"path"
	"slices"
	"strings"
	"time"

	"github.com/hoctl/hoctl/pkg/btrfs"
	"github.com/hoctl/hoctl/pkg/format"
	"github.com/hoctl/hoctl/pkg/inventory"
	"github.com/hoctl/hoctl/pkg/retention"
	"github.com/hoctl/hoctl/pkg/tasks"
)

// toPrune lists what retention removes on one side: the side as inspected
// under the host locks, which no other run has changed since, with the
// new snapshot, which this run added (each delete still checks that the
// name is the subvolume id listed); re-read when there is no such
// inspection. The new snapshot (now the common parent) is protected.
func (r *Run) toPrune(ctx context.Context, env *tasks.Env, source bool) ([]btrfs.Snapshot, error) {
	e := r.Ends
	host, dir, keep := e.SourceHost, e.SourceDir, e.KeepSource
	if !source {
		host, dir, keep = e.TargetHost, e.TargetDir, e.KeepTarget
	}
	newName := r.name()
	r.mu.Lock()
	side, fresh := r.src, r.fresh
	if !source {
		side = r.dst
	}
	r.mu.Unlock()
	_, newTime, ok := btrfs.ParseSnapshotName(newName)
	if side == nil || !fresh || !ok {
		run, err := runner(ctx, env, r.Inv, host)
		if err != nil {
			return nil, err
		}
		if side, err = List(ctx, run, dir, e.Base); err != nil {
			return nil, err
		}
	} else {
		added := btrfs.Snapshot{Subvolume: btrfs.Subvolume{Path: path.Join(dir, newName), ReadOnly: true}, Time: newTime}
		side = &Side{Host: side.Host, Dir: side.Dir, Snapshots: append(slices.Clip(side.Snapshots), added)}
	}
	// Only complete snapshots are pruned; garbage is removed separately.
	complete := side.Complete()
	byName := map[string]btrfs.Snapshot{}
	for _, s := range complete {
		byName[s.Name()] = s
	}
	var del []btrfs.Snapshot
	for _, name := range retention.Pruned(Retain(keep, complete, time.Now(), map[string]string{r.name(): NewestCommon})) {
		del = append(del, byName[name])
	}
	return del, nil
}

// NewestCommon is why the newest snapshot both sides hold is kept whatever
// the policy says: it is the parent of the next incremental send.
const NewestCommon = "newest common snapshot: the next send's parent"

// Retain applies a side's policy to its complete snapshots at now;
// protect names snapshots kept whatever the policy says, with the reason.
func Retain(p retention.Policy, snaps []btrfs.Snapshot, now time.Time, protect map[string]string) []retention.Verdict {
	items := make([]retention.Item, len(snaps))
	for i, s := range snaps {
		items[i] = retention.Item{Name: s.Name(), Time: s.Time}
	}
	return p.Apply(items, now, protect)
}

func (r *Run) pruneCmd(source bool) string {
	keep := r.Ends.Keep(source)
	name := r.name() // before the lock: name takes it too
	r.mu.Lock()
	defer r.mu.Unlock()
	side := r.src
	if !source {
		side = r.dst
	}
	if side == nil {
		return fmt.Sprintf("delete what %s does not keep (never the newest common snapshot), by subvolume id through hoctl's dir primitive", keep)
	}
	// In a plan: what exists now, plus the new snapshot.
	snaps := side.Complete()
	now := time.Now()
	snaps = append(snaps, btrfs.Snapshot{Subvolume: btrfs.Subvolume{Path: name}, Time: now})
	vs := Retain(keep, snaps, now, map[string]string{name: NewestCommon})
	del := retention.Pruned(vs)
	if len(del) == 0 {
		return fmt.Sprintf("nothing: keep %s keeps all %s after this run", keep, format.Plural(len(vs), "snapshot"))
	}
	return fmt.Sprintf("delete %s, each by its subvolume id through hoctl's dir primitive (keep %s: %s)", strings.Join(del, " "), keep, retention.Summary(vs))
}

func (r *Run) prune(ctx context.Context, env *tasks.Env, h *inventory.Host, source bool) (string, error) {
	defer r.phase("prune "+h.Name, time.Now())
	del, err := r.toPrune(ctx, env, source)
	if err != nil || len(del) == 0 {
		return "nothing to prune", err
	}
	run, err := env.Connect(ctx, h)
	if err != nil {
		return "", err
	}
	subs := make([]btrfs.Subvolume, len(del))
	var names []string
	for i, s := range del {
		subs[i] = s.Subvolume
		names = append(names, s.Name())
	}
	dir := r.Ends.SourceDir
	if !source {
		dir = r.Ends.TargetDir
	}
	if res, err := run.Run(ctx, deleteCmd(run, dir, subs)); err != nil {
		return "", fmt.Errorf("pruning: %w", dirOpError(h.Name, res, err))
	}
	return "pruned " + strings.Join(names, ", "), nil
}
