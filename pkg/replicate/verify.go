package replicate

import (
	"context"
	"errors"
	"fmt"
	"path"
	"sync"
	"time"

	"github.com/hoctl/hoctl/pkg/btrfs"
	"github.com/hoctl/hoctl/pkg/inventory"
	"github.com/hoctl/hoctl/pkg/sshexec"
	"github.com/hoctl/hoctl/pkg/tasks"
)

// verify is the send's after check: the received copy is read-only, its
// received UUID is the new source snapshot's UUID, and an incremental
// copy descends from the target's copy of the parent.
func (r *Run) verify(ctx context.Context, env *tasks.Env, _ *inventory.Host) (string, error) {
	defer r.phase("verify", time.Now())
	e := r.Ends
	srcR, dstR, err := r.both(ctx, env)
	if err != nil {
		return "", err
	}
	// Both sides at once.
	var srcShow *Entry
	var srcErr error
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		srcShow, srcErr = showEntry(ctx, srcR, e.SourceDir, r.name())
	}()
	got, err := showEntry(ctx, dstR, e.TargetDir, r.name())
	wg.Wait()
	if srcErr != nil {
		return "", srcErr
	}
	if err != nil {
		return "", fmt.Errorf("no received copy: %w", err)
	}
	switch {
	case !got.ReadOnly:
		return "", fmt.Errorf("%s: %s is writable: the receive did not finish", e.TargetHost, r.name())
	case got.ReceivedUUID != srcShow.UUID:
		return "", fmt.Errorf("%s: %s has received UUID %q, want the source snapshot's %s", e.TargetHost, r.name(), got.ReceivedUUID, srcShow.UUID)
	}
	r.mu.Lock()
	parent := r.parent
	r.mu.Unlock()
	if parent != nil && got.ParentUUID != parent.Target.UUID {
		return "", fmt.Errorf("%s: %s descends from %q, want the parent copy %s (%s)", e.TargetHost, r.name(), got.ParentUUID, parent.Target.Name(), parent.Target.UUID)
	}
	return fmt.Sprintf("%s read-only, received UUID %s matches", r.name(), got.ReceivedUUID), nil
}

// deleteReceived removes a copy that failed verification; only the one
// this run created, by its exact name.
func (r *Run) deleteReceived(ctx context.Context, env *tasks.Env, h *inventory.Host) (string, error) {
	run, err := env.Connect(ctx, h)
	if err != nil {
		return "", err
	}
	// Shown, then deleted by the id shown: through the dir primitive, so
	// only a subvolume directly in the dir under exactly that name.
	p := path.Join(r.Ends.TargetDir, r.name())
	got, err := showEntry(ctx, run, r.Ends.TargetDir, r.name())
	if err != nil {
		var ee *sshexec.ExitError
		if errors.As(err, &ee) {
			return "nothing received at " + p, nil
		}
		return "", err
	}
	sub := btrfs.Subvolume{ID: got.ID, Path: p}
	if res, err := run.Run(ctx, deleteCmd(run, r.Ends.TargetDir, []btrfs.Subvolume{sub})); err != nil {
		return "", fmt.Errorf("deleting %s: %w", p, dirOpError(h.Name, res, err))
	}
	return "deleted " + p, nil
}
