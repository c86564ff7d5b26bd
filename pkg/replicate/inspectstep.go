package replicate

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/hoctl/hoctl/pkg/btrfs"
	"github.com/hoctl/hoctl/pkg/format"
	"github.com/hoctl/hoctl/pkg/inventory"
	"github.com/hoctl/hoctl/pkg/sshexec"
	"github.com/hoctl/hoctl/pkg/tasks"
)

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
	parent, whyFull := r.chooseParent(src, dst)
	r.parent, r.whyFull = parent, whyFull
	r.mu.Unlock()

	need, err := r.sendSize(ctx, srcR, found, parent)
	if err != nil {
		return "", err
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

// chooseParent is the send's parent, the newest snapshot both sides
// hold; or nil and why the send is full.
func (r *Run) chooseParent(src, dst *Side) (*btrfs.Common, string) {
	if p, ok := btrfs.Parent(src.Snapshots, dst.Snapshots); ok && !r.Opts.Full {
		return &p, ""
	}
	switch {
	case r.Opts.Full:
		return nil, "--full asked for a full send"
	case len(src.Snapshots) == 0:
		return nil, "no earlier snapshot: first replication"
	}
	return nil, fmt.Sprintf("NO COMMON PARENT: none of the %d source snapshots has a copy on %s (matched by UUID)", len(src.Snapshots), r.Ends.TargetHost)
}

// sendSize is what the send needs on the target: the source's own
// estimate when it was for the parent chosen (a steady replication's),
// else asked now.
func (r *Run) sendSize(ctx context.Context, srcR sshexec.Runner, found *sides, parent *btrfs.Common) (int64, error) {
	if estimateFits(found.est, parent) {
		return found.est.Bytes, nil
	}
	res, err := srcR.Run(ctx, estimateCmd(r.Ends.Subvolume, parent))
	if err != nil {
		return 0, fmt.Errorf("%s: estimating the send: %w", r.Ends.SourceHost, sshexec.OneLine(res, err))
	}
	need, _ := strconv.ParseInt(strings.TrimSpace(string(res.Stdout)), 10, 64)
	return need, nil
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
