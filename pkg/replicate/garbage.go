package replicate

import (
	"context"
	"fmt"
	"path"
	"strings"
	"time"

	"github.com/hoctl/hoctl/pkg/btrfs"
	"github.com/hoctl/hoctl/pkg/inventory"
	"github.com/hoctl/hoctl/pkg/sshexec"
	"github.com/hoctl/hoctl/pkg/tasks"
)

func (r *Run) garbage() []btrfs.Subvolume {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.dst == nil {
		return nil
	}
	var subs []btrfs.Subvolume
	for _, s := range r.dst.Snapshots {
		subs = append(subs, s.Subvolume)
	}
	return btrfs.Garbage(subs, r.Ends.Base)
}

func (r *Run) garbageCmd() string {
	g := r.garbage()
	if len(g) == 0 {
		return "nothing to remove"
	}
	return deleteCmd(nil, r.Ends.TargetDir, g).Line()
}

// deleteCmd deletes subvolumes of dir in one command, through the dir
// primitive: each must still be the subvolume id listed, directly in dir.
func deleteCmd(run sshexec.Runner, dir string, subs []btrfs.Subvolume) sshexec.Cmd {
	op := []string{opDelete}
	for _, s := range subs {
		op = append(op, deleteArg(s))
	}
	return dirCmd(run, dir, op...)
}

// showEntry is one subvolume directly in dir, through the dir primitive.
func showEntry(ctx context.Context, run sshexec.Runner, dir, name string) (*Entry, error) {
	res, err := run.Run(ctx, dirCmd(run, dir, opShow, name))
	if err != nil {
		return nil, dirOpError(run.Name(), res, err)
	}
	es, err := ParseEntries(res.Stdout)
	if err != nil || len(es) != 1 || es[0].Name != name || es[0].Kind != KindSubvolume {
		return nil, fmt.Errorf("%s: showing %s: not one subvolume entry: %q", run.Name(), path.Join(dir, name), truncate(string(res.Stdout), 200))
	}
	return &es[0], nil
}

func (r *Run) removeGarbage(ctx context.Context, env *tasks.Env, h *inventory.Host) (string, error) {
	defer r.phase("garbage", time.Now())
	g := r.garbage()
	if len(g) == 0 {
		return "nothing to remove", nil
	}
	run, err := env.Connect(ctx, h)
	if err != nil {
		return "", err
	}
	if res, err := run.Run(ctx, deleteCmd(run, r.Ends.TargetDir, g)); err != nil {
		return "", fmt.Errorf("removing garbage: %w", dirOpError(h.Name, res, err))
	}
	var names []string
	for _, s := range g {
		names = append(names, s.Name())
	}
	return "removed unfinished receives: " + strings.Join(names, ", "), nil
}
