package replicate

import (
	"context"
	"fmt"
	"path"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hoctl/hoctl/pkg/btrfs"
	"github.com/hoctl/hoctl/pkg/format"
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
	// Snapshot is the new snapshot an earlier run of the same runbook
	// took (TookSnapshot), when it is resumed after its snapshot step:
	// the send, verify and prunes are of that one, not of a name made
	// from the resume's clock, which no step took.
	Snapshot string
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
	if o.Snapshot != "" {
		r.newName = o.Snapshot
	}
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
				Fn: r.snapshot},
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

// snapshot takes the new read-only snapshot of the source subvolume.
func (r *Run) snapshot(ctx context.Context, env *tasks.Env, h *inventory.Host) (string, error) {
	defer r.phase("snapshot", time.Now())
	run, err := env.Connect(ctx, h)
	if err != nil {
		return "", err
	}
	res, err := run.Run(ctx, snapshotCmd(run, r.Ends.SourceDir, r.Ends.Subvolume, r.name()))
	if err != nil {
		return "", dirOpError(h.Name, res, err)
	}
	return strings.TrimSpace(string(res.Stdout)), nil
}

// TookSnapshot is the snapshot a journaled action of the snapshot step
// took, from the command line it journaled (cmd, the step's description
// on the source): "" when cmd is not that step's command for e, so a
// name is only ever one hoctl itself gave the step.
func TookSnapshot(e Ends, cmd string) string {
	f := strings.Fields(cmd)
	if len(f) == 0 {
		return ""
	}
	name := f[len(f)-1]
	if base, _, ok := btrfs.ParseSnapshotName(name); !ok || base != e.Base || snapshotCmd(nil, e.SourceDir, e.Subvolume, name).Line() != cmd {
		return ""
	}
	return name
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

// Estimate is the send's size as inspect estimated it (0 before).
func (r *Run) Estimate() int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.estimate
}

// BytesText formats a byte count for people: 19.1 MiB.
func BytesText(n int64) string { return format.Bytes(n) }
