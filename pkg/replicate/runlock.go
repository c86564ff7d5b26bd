package replicate

import (
	"context"
	"fmt"
	"os"
	"os/user"
	"sort"
	"strings"
	"time"

	"github.com/hoctl/hoctl/pkg/inventory"
	"github.com/hoctl/hoctl/pkg/sshexec"
	"github.com/hoctl/hoctl/pkg/tasks"
)

// lockAndChoose is the first step's action: the host locks held and both
// sides inspected under them (by the step's before check already, unless
// that ran without them), so the garbage removed and the parent chosen
// are what no other run is changing. A receive in progress holds the
// lock, so it is never taken for garbage.
func (r *Run) lockAndChoose(ctx context.Context, env *tasks.Env, _ *inventory.Host) (string, error) {
	r.mu.Lock()
	fresh := r.fresh
	r.mu.Unlock()
	if !fresh {
		if _, err := r.lockedInspect(ctx, env); err != nil {
			return "", err
		}
	}
	return r.choiceAndWarning(), nil
}

func (r *Run) lockHosts(ctx context.Context, env *tasks.Env) error {
	r.mu.Lock()
	held := len(r.locks) > 0
	r.mu.Unlock()
	if held {
		return nil
	}
	e := r.Ends
	// Both connections at once, before the first lock.
	if _, _, err := r.both(ctx, env); err != nil {
		return err
	}
	defer r.phase("lock", time.Now())
	type side struct{ host, dir string }
	sides := []side{{e.SourceHost, e.SourceDir}, {e.TargetHost, e.TargetDir}}
	// One order everywhere, so two runs never each hold one half.
	sort.Slice(sides, func(i, j int) bool { return sides[i].host+sides[i].dir < sides[j].host+sides[j].dir })
	var locks []*HostLock
	var runs []sshexec.Runner
	for _, s := range sides {
		run, err := runner(ctx, env, r.Inv, s.host)
		if err != nil {
			releaseAll(locks)
			return err
		}
		l, err := AcquireHostLock(ctx, run, s.dir, e.Name, r.Opts.Holder)
		if err != nil {
			releaseAll(locks)
			return missingDir(e, s.host, s.dir, err)
		}
		locks, runs = append(locks, l), append(runs, run)
	}
	// The direction a failover recorded on the hosts themselves: the
	// guard holds without Consul (a timer's inventory has none).
	for i, s := range sides {
		if locks[i].Direction != e.TargetHost {
			continue
		}
		if err := r.repairDirection(ctx, runs[i], s.host, s.dir); err != nil {
			releaseAll(locks)
			return err
		}
	}
	r.mu.Lock()
	r.locks = locks
	r.mu.Unlock()
	return nil
}

// repairDirection rewrites a direction file on host that names this
// run's target as the source, when Consul's record says it is stale;
// otherwise the run is refused.
func (r *Run) repairDirection(ctx context.Context, run sshexec.Runner, host, dir string) error {
	e := r.Ends
	where := host + ":" + DirectionFile(dir, e.Name)
	if !r.recordedSource(ctx) {
		return &DirectionError{Name: e.Name, Source: e.TargetHost, Target: e.SourceHost, Where: where}
	}
	if res, err := run.Run(ctx, DirectionCmd(dir, e.Name, e.SourceHost)); err != nil {
		return fmt.Errorf("rewriting the stale direction file %s: %w", where, dirOpError(host, res, err))
	}
	r.mu.Lock()
	r.repaired = append(r.repaired, where)
	r.mu.Unlock()
	return nil
}

// missingDir says what to do about a replication dir the lock found
// missing (the lock is taken before anything else looks at the dir), as
// the inspection says it.
func missingDir(e Ends, host, dir string, err error) error {
	if !strings.Contains(err.Error(), dir+": No such file or directory") {
		return err
	}
	if host == e.TargetHost && dir == e.TargetDir {
		return missingTargetDir(e)
	}
	return fmt.Errorf("%s: %s does not exist", host, dir)
}

func releaseAll(locks []*HostLock) {
	for _, l := range locks {
		l.Release()
	}
}

// Release lets go of the host locks this run holds.
func (r *Run) Release() {
	r.mu.Lock()
	locks := r.locks
	r.locks = nil
	r.mu.Unlock()
	releaseAll(locks)
}

// defaultHolder names this run for the host locks.
func defaultHolder(now time.Time) string {
	who := "hoctl"
	if u, err := user.Current(); err == nil {
		who = u.Username
	}
	host, _ := os.Hostname()
	h := fmt.Sprintf("%s@%s pid %d, started %s", who, host, os.Getpid(), now.UTC().Format(time.RFC3339))
	if !holderText.MatchString(h) {
		h = fmt.Sprintf("pid %d, started %s", os.Getpid(), now.UTC().Format(time.RFC3339))
	}
	return h
}

// lockedInspect takes the host locks and inspects under them: what the
// run then removes, sends and prunes is what no other run is changing.
func (r *Run) lockedInspect(ctx context.Context, env *tasks.Env) (string, error) {
	if err := r.lockHosts(ctx, env); err != nil {
		return "", err
	}
	out, err := r.inspect(ctx, env)
	if err != nil {
		return "", err
	}
	r.mu.Lock()
	r.fresh, r.inspected = true, out
	r.mu.Unlock()
	return out, nil
}
