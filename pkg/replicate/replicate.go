package replicate

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/user"
	"path"
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
	"github.com/hoctl/hoctl/pkg/iostreams"
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
	repaired     []string // stale direction files rewritten under the lock
	Sent         atomic.Int64
	Summary      string
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
				Desc: fmt.Sprintf("btrfs subvolume show %s; no nested subvolume it would leave out (btrfs subvolume list -o); list %s@* in %s:%s and %s:%s; df %s", e.Subvolume, e.Base, e.SourceHost, e.SourceDir, e.TargetHost, e.TargetDir, e.TargetDir),
				Fn:   r.inspect,
			},
			Action: &tasks.Func{DescFn: func(*inventory.Host) string {
				return fmt.Sprintf("lock the replication on %s and %s (%s, %s), inspect again under the lock, then: %s",
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

// lockAndChoose takes the replication's lock on both hosts, held until
// Release (or the connections end), and inspects both sides again under
// it: the garbage removed and the parent chosen are what no other run is
// changing. A receive in progress holds the lock, so it is never taken
// for garbage.
func (r *Run) lockAndChoose(ctx context.Context, env *tasks.Env, h *inventory.Host) (string, error) {
	if err := r.lockHosts(ctx, env); err != nil {
		return "", err
	}
	if _, err := r.inspect(ctx, env, h); err != nil {
		return "", err
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
			return err
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

// both connects to the source and the target.
func (r *Run) both(ctx context.Context, env *tasks.Env) (src, dst sshexec.Runner, err error) {
	if src, err = runner(ctx, env, r.Inv, r.Ends.SourceHost); err != nil {
		return nil, nil, err
	}
	if dst, err = runner(ctx, env, r.Inv, r.Ends.TargetHost); err != nil {
		return nil, nil, err
	}
	return src, dst, nil
}

// inspect is the first step's before check: both sides reachable, the
// source a subvolume, the target dir on btrfs with room, and their
// snapshots listed.
func (r *Run) inspect(ctx context.Context, env *tasks.Env, _ *inventory.Host) (string, error) {
	e := r.Ends
	srcR, dstR, err := r.both(ctx, env)
	if err != nil {
		return "", err
	}
	if res, err := srcR.Run(ctx, sshexec.Cmd{Argv: []string{"btrfs", "subvolume", "show", e.Subvolume}}); err != nil {
		return "", fmt.Errorf("%s: %s is not a btrfs subvolume: %s", e.SourceHost, e.Subvolume, sshexec.FirstLine(res, err))
	}
	nested, err := Nested(ctx, srcR, e)
	if err != nil {
		return "", err
	}
	if len(nested) > 0 {
		return "", NestedError(e.SourceHost, e, nested)
	}
	// The first command on the target has empty input, as List's: see there.
	res, err := dstR.Run(ctx, sshexec.Cmd{Argv: []string{"stat", "-f", "-c", "%T", e.TargetDir}, Stdin: strings.NewReader("")})
	if err != nil {
		if isEmptyStream(res) {
			return "", restrictedKeyError(e.TargetHost)
		}
		reason := sshexec.FirstLine(res, err)
		if strings.Contains(reason, "No such file") {
			// hoctl does not create it: a typo in dir: must not fill the
			// wrong disk.
			return "", fmt.Errorf("%s: target dir %s does not exist: create it (hoctl run %s -- mkdir -p %s), a directory on btrfs with room for the copies, outside the replicated subvolume",
				e.TargetHost, e.TargetDir, e.TargetHost, sshexec.Quote(e.TargetDir))
		}
		return "", fmt.Errorf("%s: target dir %s: %s", e.TargetHost, e.TargetDir, reason)
	}
	if fs := strings.TrimSpace(string(res.Stdout)); fs != "btrfs" {
		return "", fmt.Errorf("%s: %s is on %s, not btrfs: btrfs receive needs a btrfs filesystem", e.TargetHost, e.TargetDir, fs)
	}
	warning := MountWarning(ctx, dstR, e.TargetDir)
	src, err := List(ctx, srcR, e.SourceDir, e.Base)
	if err != nil {
		return "", err
	}
	dst, err := List(ctx, dstR, e.TargetDir, e.Base)
	if err != nil {
		return "", err
	}
	now := r.Opts.Now()
	src.ignoreFuture(now)
	dst.ignoreFuture(now)
	r.mu.Lock()
	r.src, r.dst = src, dst
	r.mountWarning = warning
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
	r.mu.Unlock()

	// Free space: a full send needs about the subvolume's data; an
	// incremental about the bytes changed since the parent, as
	// `btrfs subvolume find-new` reports them.
	est := "du -sxb " + sshexec.Quote(e.Subvolume) + " | cut -f1"
	if r.parent != nil {
		est = fmt.Sprintf("btrfs subvolume find-new %s %d | awk '/^inode/ {for (i=1;i<NF;i++) if ($i==\"len\") s+=$(i+1)} END {print s+0}'", sshexec.Quote(e.Subvolume), r.parent.Source.Gen)
	}
	res, err = srcR.Run(ctx, sshexec.Cmd{Script: est})
	if err != nil {
		return "", fmt.Errorf("%s: estimating the send: %s", e.SourceHost, sshexec.FirstLine(res, err))
	}
	need, _ := strconv.ParseInt(strings.TrimSpace(string(res.Stdout)), 10, 64)
	res, err = dstR.Run(ctx, sshexec.Cmd{Argv: []string{"df", "-B1", "--output=avail", e.TargetDir}})
	if err != nil {
		return "", fmt.Errorf("%s: df %s: %s", e.TargetHost, e.TargetDir, sshexec.FirstLine(res, err))
	}
	avail, err := dfAvail(res.Stdout)
	if err != nil {
		return "", fmt.Errorf("%s: df %s: %w", e.TargetHost, e.TargetDir, err)
	}
	r.mu.Lock()
	r.estimate = need
	r.mu.Unlock()
	if need > avail {
		return "", fmt.Errorf("%s: %s has %s free, the send needs about %s", e.TargetHost, e.TargetDir, BytesText(avail), BytesText(need))
	}
	out := fmt.Sprintf("%s on %s, %d on %s; send estimated at %s, %s free on %s", iostreams.Plural(len(src.Snapshots), "snapshot"), e.SourceHost, len(dst.Snapshots), e.TargetHost, BytesText(need), BytesText(avail), e.TargetHost)
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

// The wire compression's two ends. -1: on a LAN the link, not the ratio,
// is what zstd has to beat, and level 1 runs at several hundred MB/s on
// one core.
var (
	CompressArgv   = []string{"zstd", "-q", "-c", "-1"}
	DecompressArgv = []string{"zstd", "-d", "-q", "-c"}
)

// sendArgv is the source's send, run by prog (hoctlOn): the dir
// primitive's send op, which opens the new snapshot and the parent by
// their names in the source dir and checks them on their descriptors
// (read-only subvolumes directly in the dir, the parent with the UUID
// inspect chose) before the kernel sends from those descriptors. After a
// failover the source dir holds names a stream wrote; `btrfs send -p
// PATH` would follow a symlink planted under the parent's name.
func (r *Run) sendArgv(prog string) []string {
	e := r.Ends
	op := []string{opSend, r.name()}
	r.mu.Lock()
	if r.parent != nil {
		op = append(op, r.parent.Source.Name()+"="+r.parent.Source.UUID)
	}
	r.mu.Unlock()
	return hostOpArgv(prog, e.SourceDir, op...)
}

func (r *Run) zstd() bool { return r.Ends.Compress == "zstd" }

// senderCmd is the source's half of a relayed send, on src (nil: as a
// plan shows it).
func (r *Run) senderCmd(src sshexec.Runner) sshexec.Cmd {
	if r.zstd() {
		return sshexec.Cmd{Script: "set -o pipefail; " + sshexec.QuoteArgv(r.sendArgv(hoctlOn(src))) + " | " + sshexec.QuoteArgv(CompressArgv)}
	}
	return sshexec.Cmd{Argv: r.sendArgv(hoctlOn(src))}
}

// receiverLine is the target's half on dst (nil: as a plan shows it), as
// the target's shell or its forced-command filter (filter.go) receives
// it: the receive always runs inside hoctl's target filter, also over an
// unrestricted key, so that the stream check and the dedicated-dir check
// (stream.go, subvol_linux.go) hold whichever key the target has. A plain
// `btrfs receive -C DIR` in the shell would take a snapshot of any
// subvolume of the filesystem the stream names.
func (r *Run) receiverLine(dst sshexec.Runner) string {
	recv := sshexec.QuoteArgv(ReceiveArgv(r.Ends.TargetDir))
	if r.zstd() {
		recv = sshexec.QuoteArgv(DecompressArgv) + " | " + recv
	}
	return "SSH_ORIGINAL_COMMAND=" + sshexec.Quote(recv) + " " + sshexec.Quote(hoctlOn(dst)) + " target-filter " + sshexec.Quote(r.Ends.TargetDir) + " " + sshexec.Quote(r.Ends.Base)
}

// directScript is the whole send for --transport direct: run on the source,
// which connects to the target itself with its own key and known_hosts
// (BatchMode: never a prompt, never an unverified host key). dd counts the
// stream for the progress line.
func (r *Run) directScript(src sshexec.Runner) string {
	t := r.Inv.Host(r.Ends.TargetHost)
	s := r.Inv.Settings(t)
	addr := t.Address
	if addr == "" {
		addr = t.Name
	}
	port := s.Port
	if port == 0 {
		port = sshexec.DefaultPort
	}
	user := s.User
	if user == "" {
		user = "root"
	}
	timeout := int(s.ConnectTimeout.Seconds())
	if timeout <= 0 {
		timeout = 10
	}
	parts := []string{sshexec.QuoteArgv(r.sendArgv(hoctlOn(src))), "dd bs=128K status=progress"}
	if r.zstd() {
		parts = append(parts, sshexec.QuoteArgv(CompressArgv))
	}
	parts = append(parts, sshexec.QuoteArgv([]string{"ssh", "-o", "BatchMode=yes", "-o", "ConnectTimeout=" + strconv.Itoa(timeout),
		"-o", "ServerAliveInterval=5", "-o", "ServerAliveCountMax=3", "-p", strconv.Itoa(port), "-l", user, addr, r.receiverLine(nil)}))
	return "set -o pipefail; " + strings.Join(parts, " | ")
}

func (r *Run) direct() bool {
	if r.Opts.Transport != "" {
		return r.Opts.Transport == inventory.TransportDirect
	}
	return r.Ends.Transport == inventory.TransportDirect
}

func (r *Run) sendCmd() string {
	e := r.Ends
	if r.direct() {
		return fmt.Sprintf("%s: %s   (direct, %s)", e.SourceHost, r.directScript(nil), r.choice())
	}
	return fmt.Sprintf("%s: %s | %s: %s   (relayed through this machine, %s)", e.SourceHost, r.senderCmd(nil).Line(), e.TargetHost,
		r.receiverLine(nil), r.choice())
}

func (r *Run) send(ctx context.Context, env *tasks.Env, _ *inventory.Host) (string, error) {
	e := r.Ends
	srcR, dstR, err := r.both(ctx, env)
	if err != nil {
		return "", err
	}
	start := time.Now()
	stop := make(chan struct{})
	if r.Opts.Progress != nil {
		go func() {
			t := time.NewTicker(250 * time.Millisecond)
			defer t.Stop()
			for {
				select {
				case <-stop:
					return
				case <-t.C:
					r.Opts.Progress(r.Sent.Load(), time.Since(start))
				}
			}
		}()
	}
	var stderr string
	if r.direct() {
		dd := &ddProgress{sent: &r.Sent}
		_, err = srcR.Run(ctx, sshexec.Cmd{Script: r.directScript(srcR), Stderr: dd})
		stderr = dd.text()
		if err != nil {
			err = fmt.Errorf("%s: direct send to %s failed: %s", e.SourceHost, e.TargetHost, strings.TrimSpace(stderr))
		}
	} else {
		_, err = sshexec.Pipe(ctx, srcR, r.senderCmd(srcR), dstR, sshexec.Cmd{Script: r.receiverLine(dstR)}, &r.Sent)
		var pe *sshexec.PipeError
		var ee *sshexec.ExitError
		if errors.As(err, &pe) && pe.Side == "receiver" && errors.As(pe.Err, &ee) {
			stderr = ee.Stderr
		}
	}
	close(stop)
	d := time.Since(start)
	if r.Opts.Progress != nil {
		r.Opts.Progress(r.Sent.Load(), d)
	}
	if err != nil {
		switch {
		case strings.Contains(stderr, "No space left"):
			return "", fmt.Errorf("%s: target filesystem full during receive: %w", e.TargetHost, err)
		case strings.Contains(stderr, "Host key verification failed") || strings.Contains(stderr, "Permission denied (publickey"):
			return "", fmt.Errorf("%w\n--transport direct needs %s's own key authorized on %s and %s's host key in %s's known_hosts (docs/replicate.md, \"Direct transport\")",
				err, e.SourceHost, e.TargetHost, e.TargetHost, e.SourceHost)
		}
		return "", err
	}
	rate := float64(r.Sent.Load()) / d.Seconds()
	how := "relayed"
	if r.direct() {
		how = "direct"
	}
	if r.zstd() && !r.direct() {
		how += ", zstd on the wire"
	} else if r.zstd() {
		how += ", zstd"
	}
	r.mu.Lock()
	r.Summary = fmt.Sprintf("%s in %s (%s/s, %s), %s", BytesText(r.Sent.Load()), d.Round(time.Millisecond), BytesText(int64(rate)), how, r.choiceLocked())
	r.mu.Unlock()
	return r.Summary, nil
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

// ddProgress reads dd's status=progress lines ("123 bytes (...) copied,
// ...", rewritten with \r) into the sent counter and keeps every other
// line, which are the pipeline's error messages. Both hosts' stderr
// arrive here, so what it keeps is bounded: a line up to maxStderrLine
// bytes (the rest of a longer one is dropped) and the messages' first and
// last maxStderrKept bytes.
type ddProgress struct {
	sent    *atomic.Int64
	mu      sync.Mutex
	partial []byte
	other   *sshexec.HeadTail
}

const (
	maxStderrLine = 4096
	maxStderrKept = 16 << 10
)

func (d *ddProgress) Write(p []byte) (int, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	n := len(p)
	for len(p) > 0 {
		i := bytes.IndexAny(p, "\r\n")
		end := i
		if i < 0 {
			end = len(p)
		}
		d.partial = append(d.partial, p[:min(end, maxStderrLine-len(d.partial))]...)
		if i < 0 {
			break
		}
		d.line(string(d.partial))
		d.partial = d.partial[:0]
		p = p[i+1:]
	}
	return n, nil
}

func (d *ddProgress) line(l string) {
	l = strings.TrimSpace(l)
	if n, rest, ok := strings.Cut(l, " bytes"); ok && rest != "" {
		if v, err := strconv.ParseInt(n, 10, 64); err == nil {
			d.sent.Store(v)
			return
		}
	}
	if l == "" || strings.HasSuffix(l, " records in") || strings.HasSuffix(l, " records out") || strings.HasPrefix(l, "At subvol ") ||
		strings.HasPrefix(l, "At snapshot ") || strings.HasPrefix(l, "Chroot to ") {
		return
	}
	if d.other == nil {
		d.other = sshexec.NewHeadTail(maxStderrKept, maxStderrKept)
	}
	_, _ = d.other.Write([]byte(l + "\n"))
}

func (d *ddProgress) text() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	if len(d.partial) > 0 {
		d.line(string(d.partial))
		d.partial = d.partial[:0]
	}
	if d.other == nil {
		return ""
	}
	return strings.TrimRight(string(d.other.Bytes()), "\n")
}

func (r *Run) choiceLocked() string {
	if r.parent != nil {
		return "incremental from " + r.parent.Source.Name()
	}
	return "full send (" + r.whyFull + ")"
}

// verify is the send's after check: the received copy is read-only, its
// received UUID is the new source snapshot's UUID, and an incremental
// copy descends from the target's copy of the parent.
func (r *Run) verify(ctx context.Context, env *tasks.Env, _ *inventory.Host) (string, error) {
	e := r.Ends
	srcR, dstR, err := r.both(ctx, env)
	if err != nil {
		return "", err
	}
	srcShow, err := showEntry(ctx, srcR, e.SourceDir, r.name())
	if err != nil {
		return "", err
	}
	got, err := showEntry(ctx, dstR, e.TargetDir, r.name())
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

// toPrune lists what retention removes on one side, re-reading that side
// so the new snapshot counts; the new snapshot (now the common parent) is
// protected.
func (r *Run) toPrune(ctx context.Context, env *tasks.Env, source bool) ([]btrfs.Snapshot, error) {
	e := r.Ends
	host, dir, keep := e.SourceHost, e.SourceDir, e.KeepSource
	if !source {
		host, dir, keep = e.TargetHost, e.TargetDir, e.KeepTarget
	}
	run, err := runner(ctx, env, r.Inv, host)
	if err != nil {
		return nil, err
	}
	side, err := List(ctx, run, dir, e.Base)
	if err != nil {
		return nil, err
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
		return fmt.Sprintf("nothing: keep %s keeps all %s after this run", keep, iostreams.Plural(len(vs), "snapshot"))
	}
	return fmt.Sprintf("delete %s, each by its subvolume id through hoctl's dir primitive (keep %s: %s)", strings.Join(del, " "), keep, retention.Summary(vs))
}

func (r *Run) prune(ctx context.Context, env *tasks.Env, h *inventory.Host, source bool) (string, error) {
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

// ProgressText is a send's progress line: bytes sent, and against the
// estimate (when there is one) the percentage and the time left at the
// rate so far. The estimate is inspect's, so a send that outgrows it
// shows 99% and no ETA rather than a wrong one.
func ProgressText(sent, estimate int64, elapsed time.Duration) string {
	rate := float64(sent) / max(elapsed.Seconds(), 0.001)
	s := BytesText(sent)
	if estimate > 0 {
		pct := min(sent*100/estimate, 99)
		s += fmt.Sprintf(" of ~%s (%d%%)", BytesText(estimate), pct)
	}
	s += fmt.Sprintf(", %s/s", BytesText(int64(rate)))
	if estimate > 0 && sent < estimate && rate > 0 {
		eta := time.Duration(float64(estimate-sent) / rate * float64(time.Second))
		s += ", ETA " + eta.Round(time.Second).String()
	}
	return s + ", " + iostreams.Duration(elapsed)
}

// BytesText formats a byte count for people: 19.1 MiB.
func BytesText(n int64) string { return format.Bytes(n) }
