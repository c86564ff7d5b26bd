package replicate

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/user"
	"path"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hoctl/hoctl/pkg/format"
	"github.com/hoctl/hoctl/pkg/retention"

	"github.com/hoctl/hoctl/pkg/btrfs"
	"github.com/hoctl/hoctl/pkg/inventory"
	"github.com/hoctl/hoctl/pkg/sshexec"
	"github.com/hoctl/hoctl/pkg/tasks"
)

// KindReplicate is the journal kind of a replication run.
const KindReplicate = "replicate"

// Options shape one replication run.
type Options struct {
	Full bool // send in full even when a common parent exists
	// Transport overrides the inventory's relay or direct when set.
	Transport string
	Now       func() time.Time
	// Progress, when set, is called about every 250 ms during the send
	// with the bytes sent so far.
	Progress func(sent int64, elapsed time.Duration)
	// Holder is who this run is, as the host locks record it (default:
	// user@machine, pid and start time).
	Holder string
	// Yes: no one decides between the plan and the run (--yes), so the
	// plan's inspection is taken under the host locks and the run uses
	// it. Otherwise the plan holds no lock while a person reads it, and
	// the run inspects again under the locks.
	Yes bool
	// DryRun: only the plan; it takes no lock.
	DryRun bool
	// Recorded reads the direction a failover recorded in Consul
	// (DirectionKey; nil: none). A direction file against this run is
	// stale when Consul's record names this run's source: a failover
	// could not write it on a host that was down. The run rewrites it
	// under its lock instead of refusing.
	Recorded func(context.Context) (KV, error)
}

// Run is one replication's state, filled as its steps go.
type Run struct {
	Ends Ends
	Opts Options
	Inv  *inventory.Inventory

	mu       sync.Mutex
	src, dst *Side
	parent   *btrfs.Common
	whyFull  string
	newName  string
	estimate int64
	// mountWarning says what is unsafe about the target dir's mount.
	mountWarning string
	locks        []*HostLock
	// planned: the plan's inspection ran; fresh: an inspection ran under
	// the host locks (inspected is its output), which the rest of the run
	// uses.
	planned, fresh bool
	inspected      string
	phases         []Phase
	repaired       []string // stale direction files rewritten under the lock
	Sent           atomic.Int64
	Summary        string
}

// Runbook builds the replication runbook: inspect both sides and choose
// the parent (before anything changes), remove garbage of interrupted
// receives, snapshot, send and verify, prune both sides.
func Runbook(inv *inventory.Inventory, e Ends, o Options) (*tasks.Runbook, *Run) {
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Holder == "" {
		o.Holder = defaultHolder(o.Now())
	}
	r := &Run{Ends: e, Opts: o, Inv: inv, newName: btrfs.SnapshotName(e.Base, o.Now())}
	src, dst := inv.Host(e.SourceHost), inv.Host(e.TargetHost)
	steps := []*tasks.Step{
		{
			Title: "inspect source and target, choose the parent",
			Before: &tasks.Func{
				Desc: fmt.Sprintf("%s and %s at once, one command each: %s is a subvolume (btrfs subvolume show) with no nested subvolume it would leave out (btrfs subvolume list -o); list %s@* in %s:%s and %s:%s; the send's estimate; %s's free space and mount options",
					e.SourceHost, e.TargetHost, e.Subvolume, e.Base, e.SourceHost, e.SourceDir, e.TargetHost, e.TargetDir, e.TargetDir),
				Fn: r.inspectStep,
			},
			Action: &tasks.Func{DescFn: func(*inventory.Host) string {
				return fmt.Sprintf("under the replication's lock on %s and %s (%s, %s), taken before the inspection the run uses: %s",
					e.SourceHost, e.TargetHost, HostLockFile(e.SourceDir, e.Name), HostLockFile(e.TargetDir, e.Name), r.choiceAndWarning())
			}, Fn: r.lockAndChoose},
		},
		{
			Title:  "remove garbage left by interrupted receives on " + e.TargetHost,
			Hosts:  []*inventory.Host{dst},
			Action: &tasks.Func{DescFn: func(*inventory.Host) string { return r.garbageCmd() }, Fn: r.removeGarbage},
		},
		{
			Title: "snapshot " + e.Subvolume + " read-only on " + e.SourceHost,
			Hosts: []*inventory.Host{src},
			// Through the dir primitive: the name is created by the
			// snapshot ioctl directly in the dir's descriptor (anything
			// already there, a planted symlink included, fails it), and
			// checked read-only through its own.
			Action: &tasks.Func{DescFn: func(*inventory.Host) string { return snapshotCmd(nil, e.SourceDir, e.Subvolume, r.name()).Line() },
				Fn: func(ctx context.Context, env *tasks.Env, h *inventory.Host) (string, error) {
					defer r.phase("snapshot", time.Now())
					run, err := env.Connect(ctx, h)
					if err != nil {
						return "", err
					}
					res, err := run.Run(ctx, snapshotCmd(run, e.SourceDir, e.Subvolume, r.name()))
					if err != nil {
						return "", dirOpError(h.Name, res, err)
					}
					return strings.TrimSpace(string(res.Stdout)), nil
				}},
		},
		{
			Title:  "send the new snapshot to " + e.TargetHost + " and verify it",
			Hosts:  []*inventory.Host{dst},
			Action: &tasks.Func{DescFn: func(*inventory.Host) string { return r.sendCmd() }, Fn: r.send},
			After: &tasks.Func{DescFn: func(*inventory.Host) string {
				return "btrfs subvolume show " + path.Join(e.TargetDir, r.name()) + ": read-only, received UUID = the source snapshot's UUID, parent matches"
			}, Fn: r.verify},
			Undo: &tasks.Func{DescFn: func(*inventory.Host) string {
				return "delete " + path.Join(e.TargetDir, r.name()) + " by its subvolume id (the unverified copy)"
			}, Fn: r.deleteReceived},
		},
		{
			Title: fmt.Sprintf("prune %s (keep %s)", e.SourceHost, e.KeepSource),
			Hosts: []*inventory.Host{src},
			Action: &tasks.Func{DescFn: func(*inventory.Host) string { return r.pruneCmd(true) }, Fn: func(ctx context.Context, env *tasks.Env, h *inventory.Host) (string, error) {
				return r.prune(ctx, env, h, true)
			}},
		},
		{
			Title: fmt.Sprintf("prune %s (keep %s)", e.TargetHost, e.KeepTarget),
			Hosts: []*inventory.Host{dst},
			Action: &tasks.Func{DescFn: func(*inventory.Host) string { return r.pruneCmd(false) }, Fn: func(ctx context.Context, env *tasks.Env, h *inventory.Host) (string, error) {
				return r.prune(ctx, env, h, false)
			}},
		},
	}
	rb := &tasks.Runbook{
		Name: fmt.Sprintf("replicate %s: %s:%s → %s:%s", e.Name, e.SourceHost, e.Subvolume, e.TargetHost, e.TargetDir),
		Lock: "replicate-" + e.Name,
		// Where Consul is configured, its lock too: the host locks
		// (lockHosts) hold without it.
		ClusterLock: inv.Consul != nil,
		Steps:       steps,
		Kind:        KindReplicate,
		Params: map[string]string{
			"name": e.Name, "source": e.SourceHost, "target": e.TargetHost, "full": strconv.FormatBool(o.Full), "transport": o.Transport,
		},
	}
	return rb, r
}

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
		where := s.host + ":" + DirectionFile(s.dir, e.Name)
		if !r.recordedSource(ctx) {
			releaseAll(locks)
			return &DirectionError{Name: e.Name, Source: e.TargetHost, Target: e.SourceHost, Where: where}
		}
		if res, err := runs[i].Run(ctx, DirectionCmd(s.dir, e.Name, e.SourceHost)); err != nil {
			releaseAll(locks)
			return fmt.Errorf("rewriting the stale direction file %s: %w", where, dirOpError(s.host, res, err))
		}
		r.mu.Lock()
		r.repaired = append(r.repaired, where)
		r.mu.Unlock()
	}
	r.mu.Lock()
	r.locks = locks
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

// Phase is one part of a run and the time it took: what -v prints.
type Phase struct {
	Name string
	Took time.Duration
}

// phase adds the time since start to the run's phase name.
func (r *Run) phase(name string, start time.Time) {
	d := time.Since(start)
	r.mu.Lock()
	defer r.mu.Unlock()
	for i := range r.phases {
		if r.phases[i].Name == name {
			r.phases[i].Took += d
			return
		}
	}
	r.phases = append(r.phases, Phase{Name: name, Took: d})
}

// Phases are the run's parts so far, in the order they first ran.
func (r *Run) Phases() []Phase {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Phase(nil), r.phases...)
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

// name is the new snapshot's name, final once both sides were inspected.
func (r *Run) name() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.newName
}

// NewName is the name of the snapshot this run sends (final once its
// first step inspected both sides).
func (r *Run) NewName() string { return r.name() }

func runner(ctx context.Context, env *tasks.Env, inv *inventory.Inventory, host string) (sshexec.Runner, error) {
	return env.Connect(ctx, inv.Host(host))
}

// both connects to the source and the target, at once.
func (r *Run) both(ctx context.Context, env *tasks.Env) (src, dst sshexec.Runner, err error) {
	start := time.Now()
	var srcErr, dstErr error
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		src, srcErr = runner(ctx, env, r.Inv, r.Ends.SourceHost)
	}()
	dst, dstErr = runner(ctx, env, r.Inv, r.Ends.TargetHost)
	wg.Wait()
	if err = firstErr(srcErr, dstErr); err != nil {
		return nil, nil, err
	}
	r.phase("connect", start)
	return src, dst, nil
}

// firstErr is the first of the errors that is set.
func firstErr(errs ...error) error {
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// inspectStep is the first step's before check: both sides reachable,
// the source a subvolume, the target dir on btrfs with room, and their
// snapshots listed. The engine runs it for the plan and again before the
// step; the step's action needs it too. It inspects under the host locks
// once: with --yes the plan's own inspection is taken under them (no one
// decides between plan and run, and the locks keep every other run of
// this replication out until Release), so the run reuses it; when a
// person confirms, the plan inspects without holding any lock while they
// decide, and the run inspects again under the locks once they did.
func (r *Run) inspectStep(ctx context.Context, env *tasks.Env, _ *inventory.Host) (string, error) {
	r.mu.Lock()
	first := !r.planned
	r.planned = true
	fresh, out := r.fresh, r.inspected
	r.mu.Unlock()
	var err error
	switch {
	case first && (r.Opts.DryRun || !r.Opts.Yes):
		out, err = r.inspect(ctx, env)
	case !fresh:
		out, err = r.lockedInspect(ctx, env)
	}
	return out, shownWhole(err)
}

// shownWhole keeps a before check's error whole in the plan and the
// journal: the engine shows an error that wraps a command's exit status
// as that status alone ("exit 1"), and the operator must read what the
// host said (the lock is a block device, the dir is missing). Its other
// causes (an unreachable host, a held lock) still unwrap.
func shownWhole(err error) error {
	if err == nil || !errors.As(err, new(*sshexec.ExitError)) {
		return err
	}
	return &wholeError{err}
}

type wholeError struct{ err error }

func (e *wholeError) Error() string { return e.err.Error() }

// Unwrap hides the exit status (see shownWhole); a connection error, a
// held lock or an interruption in the chain is still found.
func (e *wholeError) Unwrap() []error {
	var out []error
	for _, c := range []error{context.Canceled, context.DeadlineExceeded} {
		if errors.Is(e.err, c) {
			out = append(out, c)
		}
	}
	var ce *sshexec.ConnError
	if errors.As(e.err, &ce) {
		out = append(out, ce)
	}
	var he *HostLockedError
	if errors.As(e.err, &he) {
		out = append(out, he)
	}
	return out
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

// inspect reads both sides, each host in one round trip and both at
// once (the sequential commands for a host whose hoctl predates the
// inspect op), and chooses the parent and the new snapshot's name.
func (r *Run) inspect(ctx context.Context, env *tasks.Env) (string, error) {
	e := r.Ends
	srcR, dstR, err := r.both(ctx, env)
	if err != nil {
		return "", err
	}
	start := time.Now()
	found, err := r.inspectBatched(ctx, srcR, dstR)
	if errors.Is(err, errOldHoctl) {
		found, err = r.inspectSequential(ctx, srcR, dstR)
	}
	if err != nil {
		return "", err
	}
	src, dst := found.src, found.dst
	now := r.Opts.Now()
	src.ignoreFuture(now)
	dst.ignoreFuture(now)
	r.mu.Lock()
	r.src, r.dst = src, dst
	r.mountWarning = found.warning
	name, err := nextName(e.Base, now, src)
	if err != nil {
		r.mu.Unlock()
		return "", fmt.Errorf("%s: %w", e.SourceHost, err)
	}
	r.newName = name
	r.parent, r.whyFull = nil, ""
	if p, ok := btrfs.Parent(src.Snapshots, dst.Snapshots); ok && !r.Opts.Full {
		r.parent = &p
	} else if r.Opts.Full {
		r.whyFull = "--full asked for a full send"
	} else if len(src.Snapshots) == 0 {
		r.whyFull = "no earlier snapshot: first replication"
	} else {
		r.whyFull = fmt.Sprintf("NO COMMON PARENT: none of the %d source snapshots has a copy on %s (matched by UUID)", len(src.Snapshots), e.TargetHost)
	}
	parent := r.parent
	r.mu.Unlock()

	// Free space: the source's own estimate when it was for the parent
	// chosen (a steady replication's), else asked now.
	need := int64(0)
	if estimateFits(found.est, parent) {
		need = found.est.Bytes
	} else {
		res, err := srcR.Run(ctx, estimateCmd(e.Subvolume, parent))
		if err != nil {
			return "", fmt.Errorf("%s: estimating the send: %s", e.SourceHost, sshexec.FirstLine(res, err))
		}
		need, _ = strconv.ParseInt(strings.TrimSpace(string(res.Stdout)), 10, 64)
	}
	r.phase("inspect", start)
	avail := found.avail
	r.mu.Lock()
	r.estimate = need
	r.mu.Unlock()
	if need > avail {
		return "", fmt.Errorf("%s: %s has %s free, the send needs about %s", e.TargetHost, e.TargetDir, BytesText(avail), BytesText(need))
	}
	out := fmt.Sprintf("%s on %s, %d on %s; send estimated at %s, %s free on %s", format.Plural(len(src.Snapshots), "snapshot"), e.SourceHost, len(dst.Snapshots), e.TargetHost, BytesText(need), BytesText(avail), e.TargetHost)
	for _, s := range []*Side{src, dst} {
		for _, p := range s.Problems {
			out += fmt.Sprintf("\nWARNING %s:%s: %s", s.Host, s.Dir, p)
		}
	}
	return out, nil
}

// isEmptyStream recognises a key restricted to `btrfs receive`: whatever
// hoctl asks, the host runs receive on empty input.
func isEmptyStream(res *sshexec.Result) bool {
	return res != nil && strings.Contains(string(res.Stderr), "empty stream is not considered valid")
}

func restrictedKeyError(host string) error {
	return fmt.Errorf("%s: the SSH key is restricted to `btrfs receive` (authorized_keys command=...): every command hoctl sends runs receive on empty input (\"empty stream\"). hoctl must list and verify snapshots on the target: install hoctl's forced-command filter instead (docs/replicate.md)", host)
}

func (r *Run) choice() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.src == nil {
		return "choose the parent by UUID (after inspecting both sides)"
	}
	if r.parent != nil {
		return fmt.Sprintf("incremental: parent %s (UUID %s, on %s as %s)", r.parent.Source.Name(), r.parent.Source.UUID, r.Ends.TargetHost, r.parent.Target.Name())
	}
	return "FULL send: " + r.whyFull
}

// choiceAndWarning is the choice, and what is unsafe about the target's
// mount, in the plan and the journal.
func (r *Run) choiceAndWarning() string {
	c := r.choice()
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.mountWarning != "" {
		c += "\nWARNING " + r.mountWarning
	}
	if len(r.repaired) > 0 {
		c += "\nrewrote the stale direction file " + strings.Join(r.repaired, ", ") + " to " + r.Ends.SourceHost + ", as Consul records (" + DirectionKey(r.Ends.Name) + ")"
	}
	return c
}

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

// nextName names the run's new snapshot. Names must grow: two runs within
// one second, or a clock behind the newest snapshot, take the second
// after the newest one.
func nextName(base string, now time.Time, src *Side) (string, error) {
	t := now.UTC().Truncate(time.Second)
	if n := len(src.Snapshots); n > 0 && !t.After(src.Snapshots[n-1].Time) {
		t = src.Snapshots[n-1].Time.Add(time.Second)
	}
	name := btrfs.SnapshotName(base, t)
	if b, _, ok := btrfs.ParseSnapshotName(name); !ok || b != base {
		return "", fmt.Errorf("the next snapshot's name %q would not be one of hoctl's (the clock, or the newest snapshot's time, is past what a name holds)", name)
	}
	return name, nil
}

// dfAvail reads `df -B1 --output=avail`: a header, then the bytes free.
// Anything else (the host's answer is its own) is an error, never a
// guess and never a panic.
func dfAvail(out []byte) (int64, error) {
	f := strings.Fields(string(out))
	if len(f) == 0 {
		return 0, errors.New("no output")
	}
	avail, err := strconv.ParseInt(f[len(f)-1], 10, 64)
	if err != nil || avail < 0 {
		return 0, fmt.Errorf("not a free space: %q", truncate(f[len(f)-1], 40))
	}
	return avail, nil
}

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

// Estimate is the send's size as inspect estimated it (0 before).
func (r *Run) Estimate() int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.estimate
}

// BytesText formats a byte count for people: 19.1 MiB.
func BytesText(n int64) string { return format.Bytes(n) }
