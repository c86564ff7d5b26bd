package failover

import (
	"context"
	"fmt"
	"path"
	"strings"
	"time"

	"github.com/hoctl/hoctl/pkg/btrfs"
	"github.com/hoctl/hoctl/pkg/inventory"
	"github.com/hoctl/hoctl/pkg/replicate"
	"github.com/hoctl/hoctl/pkg/sshexec"
	"github.com/hoctl/hoctl/pkg/tasks"
)

func (r *Run) assessDesc() string {
	o := r.Opts
	return fmt.Sprintf("Consul health of %s (one passing instance, on %s, or none if it is down); %s reachable (or --primary-down); %s is a member with a complete copy younger than %s in %s; %s not exported there; %s mounted nosuid,nodev",
		o.Service, o.From, o.From, o.To, r.NFS.MaxLag, r.Ends.TargetDir, r.NFS.Export, path.Dir(r.NFS.Subvolume))
}

// newestCopy is the newest complete copy in the new primary's
// replication dir (replicate.Side.NewestComplete): read-only, received or
// the host's own snapshot. The assessment, the promote step's before
// check and its action all choose by it, and the promote primitive
// accepts both kinds, so a copy the assessment passes is one promote
// serves.
func (r *Run) newestCopy(ctx context.Context, env *tasks.Env) (*btrfs.Snapshot, error) {
	run, err := env.Connect(ctx, r.Inv.Host(r.Opts.To))
	if err != nil {
		return nil, err
	}
	side, err := replicate.List(ctx, run, r.Ends.TargetDir, r.Ends.Base)
	if err != nil {
		return nil, err
	}
	if s, ok := side.NewestComplete(); ok {
		return &s, nil
	}
	return nil, fmt.Errorf("%s: no complete copy of %s in %s", r.Opts.To, r.Ends.Base, r.Ends.TargetDir)
}

// copyToPromote is the copy a plan shows for promotion: the final sync's
// new one, or the newest the assessment found.
func (r *Run) copyToPromote() string {
	if r.finalSync != nil {
		return path.Join(r.Ends.TargetDir, r.finalSync.NewName())
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.assessed == "" {
		return "NEWEST-COMPLETE-COPY"
	}
	return r.assessed
}

func (r *Run) dataLoss() string {
	if !r.Opts.PrimaryDown {
		return "none: the old primary is fenced, then a final sync sends its last writes"
	}
	return "everything written on " + r.Opts.From + " after the newest copy on " + r.Opts.To + " (its age is in the assessment)"
}

func (r *Run) assess(ctx context.Context, env *tasks.Env, _ *inventory.Host) (string, error) {
	o := r.Opts
	c, err := r.Consul(ctx)
	if err != nil {
		return "", err
	}
	passing, err := c.Passing(ctx, o.Service)
	if err != nil {
		return "", err
	}
	switch {
	case len(passing) > 1:
		return "", fmt.Errorf("Consul: %d passing %s instances (%s): fix that by hand first", len(passing), o.Service, strings.Join(passing, ", "))
	case len(passing) == 1 && passing[0] != o.From:
		return "", fmt.Errorf("Consul: %s is served by %s, but the owner key says %s: fix that by hand first", o.Service, passing[0], o.From)
	}
	// The old primary: reachable means it can be fenced over SSH;
	// unreachable is never taken as fenced.
	connErr := r.probe(ctx, env)
	switch {
	case connErr != nil && !o.PrimaryDown:
		// Not wrapped: this is a refusal (exit 3), not an unreachable
		// host failing a step (exit 4).
		return "", fmt.Errorf("%s is unreachable (%s): unreachable is not fenced. Make sure it is powered off, then pass --primary-down", o.From, connErr.Error())
	case connErr == nil && o.PrimaryDown:
		return "", fmt.Errorf("--primary-down says %s is powered off, but it answers over SSH: fail over without --primary-down, so it is fenced", o.From)
	}
	// With a final sync the copy is made by the run itself (a full send if
	// there is no parent); without one, the newest copy there is what
	// will serve, and its age is the data lost.
	copyState := "none yet: the final sync makes it"
	copy, err := r.newestCopy(ctx, env)
	switch {
	case err != nil && o.PrimaryDown:
		return "", err
	case err == nil:
		r.mu.Lock()
		r.assessed = copy.Path
		r.mu.Unlock()
		age := o.Now().Sub(copy.Time).Round(time.Second)
		if o.PrimaryDown && r.NFS.MaxLag > 0 && age > r.NFS.MaxLag && !o.AcceptLag {
			return "", fmt.Errorf("the newest copy on %s, %s, is %s old (max_lag %s): promoting it loses up to %s of writes. Pass --accept-lag to accept that", o.To, copy.Name(), age, r.NFS.MaxLag, age)
		}
		copyState = fmt.Sprintf("%s, %s old", copy.Name(), age)
		if copy.ReceivedUUID == "" {
			// Promote serves it as it serves a received copy: after a
			// failback it is what the old primary started from.
			copyState += fmt.Sprintf(" (%s's own snapshot of what it served, taken when it was the source)", o.To)
		}
	}
	dirNote := ""
	if !o.PrimaryDown {
		if dirNote, err = r.checkDirection(ctx, env, c); err != nil {
			return "", err
		}
	}
	run, err := env.Connect(ctx, r.Inv.Host(o.To))
	if err != nil {
		return "", err
	}
	if res, err := run.Run(ctx, sshexec.Cmd{Script: "exportfs -v"}); err == nil && exported(string(res.Stdout), r.NFS.Export) {
		return "", fmt.Errorf("%s already exports %s", o.To, r.NFS.Export)
	}
	if err := promoteMountSafe(ctx, run, r.NFS.Subvolume); err != nil {
		return "", err
	}
	state := "serving"
	switch {
	case len(passing) == 0:
		state = "not passing in Consul"
	case o.PrimaryDown:
		// Consul's gossip takes seconds to see a host go; the guard
		// makes that wait unneeded: cut off, the old primary stops at
		// its lease's end, which the run waits out; reaching Consul, it
		// reads the moved key and fences itself. The run checks after
		// the wait that Consul sees it gone.
		state = "still passing in Consul (its guard stops it: see the lease wait)"
	}
	return fmt.Sprintf("%s %s; newest complete copy on %s: %s%s", o.From, state, o.To, copyState, dirNote), nil
}

// wrapInspect notes when the final sync's inspection step ran.
func (r *Run) wrapInspect(s *tasks.Step) {
	before, action := s.Before.(*tasks.Func), s.Action.(*tasks.Func)
	r.inspect = [2]func(context.Context, *tasks.Env, *inventory.Host) (string, error){before.Fn, action.Fn}
	s.Action = &tasks.Func{Desc: action.Desc, DescFn: action.DescFn, Fn: func(ctx context.Context, env *tasks.Env, h *inventory.Host) (string, error) {
		out, err := action.Fn(ctx, env, h)
		if err == nil {
			r.mu.Lock()
			r.inspected = true
			r.mu.Unlock()
		}
		return out, err
	}}
}

// inspectedHere is the snapshot's before check: the final sync's
// inspection ran before the fence in this run, or, in a run resumed
// after it, runs now (its check, then its locks and choice), so the send
// has its parent and its host locks.
func (r *Run) inspectedHere(ctx context.Context, env *tasks.Env, h *inventory.Host) (string, error) {
	r.mu.Lock()
	done := r.inspected
	r.mu.Unlock()
	if done {
		return "inspected before the fence, host locks held", nil
	}
	if _, err := r.inspect[0](ctx, env, h); err != nil {
		return "", err
	}
	out, err := r.inspect[1](ctx, env, h)
	if err != nil {
		return "", err
	}
	r.mu.Lock()
	r.inspected = true
	r.mu.Unlock()
	return "inspected again (a resumed run): " + out, nil
}

// DownProbe bounds how long --primary-down gives the old primary to
// answer over SSH (less when its connect_timeout is shorter). The probe
// only checks the operator's word: a primary that answers later than
// this is treated as down and stops by itself (its guard), so the bound
// costs no safety, while the connect timeout would hold up the failover.
const DownProbe = 2 * time.Second

// probe connects to the old primary: nil if it answers.
func (r *Run) probe(ctx context.Context, env *tasks.Env) error {
	if r.Opts.PrimaryDown {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, DownProbe)
		defer cancel()
	}
	_, err := env.Connect(ctx, r.Inv.Host(r.Opts.From))
	return err
}

func exported(exportfs, export string) bool {
	for _, l := range strings.Split(exportfs, "\n") {
		if f := strings.Fields(l); len(f) > 0 && f[0] == export {
			return true
		}
	}
	return false
}

// ownerIs checks the owner key; orUnset also accepts no key at all (the
// first failover of a service whose primary never wrote it).
func (r *Run) ownerIs(host string, orUnset bool) func(ctx context.Context, _ *tasks.Env, _ *inventory.Host) (string, error) {
	return func(ctx context.Context, _ *tasks.Env, _ *inventory.Host) (string, error) {
		c, err := r.Consul(ctx)
		if err != nil {
			return "", err
		}
		v, _, ok, err := c.Get(ctx, r.NFS.OwnerKey)
		if err != nil {
			return "", err
		}
		if (!ok && orUnset) || v == host {
			return "owner " + host, nil
		}
		return "", fmt.Errorf("owner key %s is %q, not %s", r.NFS.OwnerKey, v, host)
	}
}

// ownerStill is the start's before check: the owner key names host, at
// the index of this run's own write when it knows it. A key written
// since (put back to the old primary and moved again, by hand or by
// another tool) may have let a cut-off old primary's guard confirm after
// this run's write, and the lease wait counted from that write does not
// bound it: with --primary-down the check waits out the lease again from
// the write it saw (a planned failover's fence keeps the old primary from
// starting, whoever the key names). A key that keeps changing is refused.
func (r *Run) ownerStill(host string) func(ctx context.Context, _ *tasks.Env, _ *inventory.Host) (string, error) {
	return func(ctx context.Context, _ *tasks.Env, _ *inventory.Host) (string, error) {
		c, err := r.Consul(ctx)
		if err != nil {
			return "", err
		}
		r.mu.Lock()
		moved := r.movedIndex
		r.mu.Unlock()
		waits := 0
		if moved == 0 && r.Opts.PrimaryDown {
			// This process did not see its own write (a resumed run):
			// the wait it may have skipped is waited from the write
			// there is now.
			_, idx, _, err := c.Get(ctx, r.NFS.OwnerKey)
			if err != nil {
				return "", err
			}
			if err := sleep(ctx, r.leaseWait()); err != nil {
				return "", err
			}
			moved, waits = idx, 1
		}
		for ; ; waits++ {
			v, idx, ok, err := c.Get(ctx, r.NFS.OwnerKey)
			if err != nil {
				return "", err
			}
			if !ok || v != host {
				return "", fmt.Errorf("owner key %s is %q, not %s", r.NFS.OwnerKey, v, host)
			}
			switch {
			case moved == 0 || idx == moved:
				if waits > 0 {
					return fmt.Sprintf("owner %s; waited %s more from the key's last write (%s's guard lease)", host, r.leaseWait()*time.Duration(waits), r.Opts.From), nil
				}
				return "owner " + host, nil
			case !r.Opts.PrimaryDown:
				return fmt.Sprintf("owner %s (written again since this run moved it; %s is fenced)", host, r.Opts.From), nil
			case waits >= 2:
				return "", fmt.Errorf("owner key %s keeps being written (index %d, now %d) while this failover waits out %s's guard lease: find who writes it, then resume", r.NFS.OwnerKey, moved, idx, r.Opts.From)
			}
			if err := sleep(ctx, r.leaseWait()); err != nil {
				return "", err
			}
			moved = idx
		}
	}
}

// promoteMountSafe refuses, before the fence, what the promote itself
// would refuse after it (hoctl dir-op promote, docs/security.md): the
// copy came from send streams, and its directory's mount on the new
// primary must keep what a stream could carry (setuid files, device
// nodes) inert there too. Found only at the promote, the refusal would
// leave the service fenced and down until the operator remounts.
func promoteMountSafe(ctx context.Context, run sshexec.Runner, subvolume string) error {
	dir := path.Dir(subvolume)
	missing, err := replicate.MountMissing(ctx, run, dir)
	if err != nil {
		return fmt.Errorf("%s: reading the mount options of %s, where the promote puts the copy: %w", run.Name(), dir, err)
	}
	if len(missing) > 0 {
		return fmt.Errorf("%s: %s is mounted without %s: the promote would make the copy, which came from send streams, live there with any setuid file or device node in it; mount it nosuid,nodev (docs/security.md), then fail over", run.Name(), dir, strings.Join(missing, ","))
	}
	return nil
}
