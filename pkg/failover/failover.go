// Package failover is the NFS failover runbook: move an NFS service
// (inventory `nfs`) from its current primary to a standby, with Consul as
// the arbiter of who may serve. The owner key is moved before anything
// starts on the new primary, and nothing starts while the old one may
// still serve, so at no point do two hosts export the share.
package failover

import (
	"context"
	"fmt"
	"maps"
	"path"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hoctl/hoctl/pkg/btrfs"
	"github.com/hoctl/hoctl/pkg/exitcode"
	"github.com/hoctl/hoctl/pkg/inventory"
	"github.com/hoctl/hoctl/pkg/replicate"
	"github.com/hoctl/hoctl/pkg/sshexec"
	"github.com/hoctl/hoctl/pkg/tasks"
)

// KindFailover is the journal kind of a failover run.
const KindFailover = "failover"

// Consul is what the failover asks of Consul (consul.Cluster).
type Consul interface {
	Leader(ctx context.Context) (string, error)
	Passing(ctx context.Context, service string) ([]string, error)
	Get(ctx context.Context, key string) (string, uint64, bool, error)
	CAS(ctx context.Context, key, value string, index uint64) (bool, error)
}

// inputf is a failover the inventory or the command line makes
// impossible, found before anything is asked or changed: exit 2.
func inputf(format string, args ...any) error { return exitcode.Usagef(format, args...) }

// Options shape one failover.
type Options struct {
	Service string // the inventory's nfs entry
	From    string // the current primary: the owner key's host when empty
	To      string
	// PrimaryDown is the operator's word that From is powered off: no
	// fencing over SSH and no final sync.
	PrimaryDown bool
	// AcceptLag allows promoting a copy older than max_lag.
	AcceptLag bool
	// Token makes the marker the clients read back unique to the run;
	// a resumed run passes its own (Params["token"]).
	Token string
	// ConsulWait bounds step 7's wait for the health checks.
	ConsulWait time.Duration
	Now        func() time.Time
	// Plan is a dry run: when Consul cannot say who owns the service,
	// assume the inventory's primary (the other end when To is the
	// primary) so the plan still shows, with its failing checks, instead
	// of no plan at all.
	Plan bool
}

// Run is one failover's state.
type Run struct {
	Opts   Options
	Inv    *inventory.Inventory
	NFS    *inventory.NFSService
	Ends   replicate.Ends // the final sync: From → To
	Consul func(ctx context.Context) (Consul, error)

	finalSync *replicate.Run // nil with --primary-down
	mu        sync.Mutex
	assessed  string // the newest complete copy the assessment found
	// inspect is the final sync's inspection (its before check and its
	// action, which takes the host locks), and inspected says this
	// process ran it: a run resumed after the fence has not.
	inspect   [2]func(context.Context, *tasks.Env, *inventory.Host) (string, error)
	inspected bool
	// keyMoved is when this run's compare-and-set of the owner key
	// returned: the old primary's guard can have had no confirmation
	// sent after it (zero: not by this run, as in a resumed one).
	keyMoved time.Time
	// stale are the direction files (host → file) that name the new
	// primary as the source while Consul's record, written by the
	// failover that made the old primary the owner, names the old one:
	// written on a host that was down then, they would refuse the final
	// sync after the fence. The assessment's action rewrites them.
	stale map[string]string
}

// currentOwner is the host the owner key names, else the primary.
func currentOwner(ctx context.Context, consulFn func(ctx context.Context) (Consul, error), svc *inventory.NFSService) (string, error) {
	c, err := consulFn(ctx)
	if err != nil {
		return "", err
	}
	owner, _, ok, err := c.Get(ctx, svc.OwnerKey)
	if err != nil {
		return "", err
	}
	if ok && owner != "" {
		return owner, nil
	}
	return svc.Primary, nil
}

// Runbook builds the failover of o.Service from its primary to o.To.
// consulFn connects to Consul when a step first needs it.
func Runbook(ctx context.Context, inv *inventory.Inventory, consulFn func(ctx context.Context) (Consul, error), o Options) (*tasks.Runbook, *Run, error) {
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.ConsulWait == 0 {
		o.ConsulWait = 60 * time.Second
	}
	svc := inv.NFS[o.Service]
	if svc == nil {
		return nil, nil, inputf("no nfs service %q in the inventory", o.Service)
	}
	if inv.Consul == nil {
		return nil, nil, inputf("failover needs the inventory's consul section: Consul's owner key decides who may serve")
	}
	if svc.Replication == "" || inv.Replication[svc.Replication] == nil {
		return nil, nil, inputf("nfs %s names no replication: there is no copy to fail over to", o.Service)
	}
	if o.From == "" {
		owner, err := currentOwner(ctx, consulFn, svc)
		switch {
		case err != nil && !o.Plan:
			return nil, nil, err
		case err != nil:
			o.From = svc.Primary
			if o.To == svc.Primary {
				if rep := inv.Replication[svc.Replication]; rep != nil {
					o.From = rep.Target.Host
				}
			}
		default:
			o.From = owner
		}
	}
	if o.To == o.From {
		// A failover that stopped after moving the key is finished by
		// resume, not by a new run (which would fence the new owner).
		return nil, nil, inputf("%s already owns %s (owner key %s); if a failover to it stopped part-way, hoctl history --failed shows it and hoctl resume RUN-ID finishes it", o.To, o.Service, svc.OwnerKey)
	}
	if !isMember(svc, o.To) {
		return nil, nil, inputf("%s is neither the primary nor a standby of nfs %s (%s, standbys %s)", o.To, o.Service, svc.Primary, strings.Join(svc.Standbys, ", "))
	}
	rep := inv.Replication[svc.Replication]
	ends := replicate.EndsOf(rep)
	switch {
	case rep.Source.Host == o.From && rep.Target.Host == o.To:
	case rep.Source.Host == o.To && rep.Target.Host == o.From:
		ends = ends.Reverse()
	default:
		return nil, nil, inputf("replication %s runs between %s and %s, not %s and %s", rep.Name, rep.Source.Host, rep.Target.Host, o.From, o.To)
	}
	if o.Token == "" {
		o.Token = strconv.FormatInt(o.Now().UnixNano(), 36)
	}
	r := &Run{Opts: o, Inv: inv, NFS: svc, Ends: ends, Consul: consulFn}
	to := inv.Host(o.To)
	unit := svc.Unit

	steps := []*tasks.Step{{
		Title:  "Consul has a leader; the cluster lock is held",
		Before: &tasks.Func{Desc: "GET /v1/status/leader", Fn: r.leader},
		Action: &tasks.Func{Desc: "hold hoctl/locks/nfs-" + o.Service + " until the run ends", Fn: func(context.Context, *tasks.Env, *inventory.Host) (string, error) {
			return "lock held", nil
		}},
	}, {
		Title:  fmt.Sprintf("assess: %s serves %s now, %s can take over", o.From, o.Service, o.To),
		Before: &tasks.Func{Desc: r.assessDesc(), Fn: r.assess},
		Action: &tasks.Func{DescFn: func(*inventory.Host) string { return "state the expected data loss: " + r.dataLoss() + r.repairDesc() },
			Fn: func(ctx context.Context, env *tasks.Env, _ *inventory.Host) (string, error) {
				repaired, err := r.repairDirection(ctx, env)
				if err != nil {
					return "", err
				}
				return "expected data loss: " + r.dataLoss() + repaired, nil
			}},
	}}
	fence := &tasks.Step{
		Title:  fmt.Sprintf("fence %s: owner key to %s, fence and stop %s there", o.From, o.To, unit),
		Before: &tasks.Func{Desc: fmt.Sprintf("consul kv %s is %s (or unset)", svc.OwnerKey, o.From), Fn: r.ownerIs(o.From, true)},
		Action: &tasks.Func{DescFn: func(*inventory.Host) string { return r.fenceDesc() }, Fn: r.fence},
	}
	if !o.PrimaryDown {
		fence.After = &tasks.Func{Desc: fmt.Sprintf("no passing %s instance on %s; %s inactive there", o.Service, o.From, unit), Fn: r.fenced}
	}
	// The outage lasts from the fence's stop to the new primary's start:
	// of the final sync, only the snapshot and the send need the old
	// primary stopped. Its inspection (which takes the host locks, held
	// to the run's end) and its garbage removal come before the fence;
	// its prunes, which serving does not need, run last, once the
	// clients read the new primary. The replication runbook's steps are
	// told apart by their titles (TestFailoverStepOrder fails if those
	// change).
	var prunes []*tasks.Step
	if !o.PrimaryDown {
		// Consul's record of the direction, for the final sync's own
		// check: a resumed run whose assessment did not rewrite a stale
		// direction file (an older hoctl's) has it rewritten there.
		recorded := func(ctx context.Context) (replicate.KV, error) { return consulFn(ctx) }
		rb, finalSync := replicate.Runbook(inv, ends, replicate.Options{Now: o.Now, Recorded: recorded})
		r.finalSync = finalSync
		var sync []*tasks.Step
		for _, s := range rb.Steps {
			title := s.Title
			s.Title = "final sync: " + s.Title
			switch {
			case strings.HasPrefix(title, "inspect "):
				r.wrapInspect(s)
				steps = append(steps, s)
			case strings.HasPrefix(title, "remove garbage "):
				steps = append(steps, s)
			case strings.HasPrefix(title, "prune "):
				afterFenceStep(s)
				prunes = append(prunes, s)
			default:
				afterFenceStep(s)
				sync = append(sync, s)
			}
		}
		if len(sync) > 0 {
			sync[0].Before = &tasks.Func{Desc: "the final sync's inspection, under its host locks, done by this run (a resumed run does it again here)", Fn: r.inspectedHere}
		}
		steps = append(steps, fence)
		steps = append(steps, sync...)
	} else {
		steps = append(steps, fence, r.guardWaitStep())
	}
	steps = append(steps, &tasks.Step{
		Title: fmt.Sprintf("promote the newest complete copy on %s to %s", o.To, svc.Subvolume),
		Hosts: []*inventory.Host{to},
		Before: &tasks.Func{DescFn: func(*inventory.Host) string {
			return fmt.Sprintf("the newest read-only copy in %s; %s not exported", ends.TargetDir, svc.Export)
		}, Fn: r.promotable},
		Action: &tasks.Func{DescFn: func(*inventory.Host) string {
			return r.promoteCmd(nil, path.Base(r.copyToPromote()), "LISTED-UUID").Line()
		}, Fn: r.promote},
		After: tasks.Cmd(r.writableCheck()),
	}, &tasks.Step{
		Title:         fmt.Sprintf("start %s on %s", unit, o.To),
		Hosts:         []*inventory.Host{to},
		Before:        &tasks.Func{Desc: fmt.Sprintf("consul kv %s is %s", svc.OwnerKey, o.To), Fn: r.ownerIs(o.To, false)},
		NeedsPrevious: true,
		Action:        tasks.Cmd(startCmd(unit)),
		// exportfs lists a kernel server's exports; a user-space server
		// (nfs-ganesha) has none, and the next step's Consul health check
		// is what says it serves.
		After: tasks.Cmd(sshexec.QuoteArgv([]string{"systemctl", "is-active", "-q", unit}) + " && { ! command -v exportfs >/dev/null || exportfs -v | grep -q " + sshexec.Quote("^"+svc.Export+" ") + "; }"),
	}, &tasks.Step{
		Title:      fmt.Sprintf("Consul: exactly one passing %s, on %s", o.Service, o.To),
		Action:     &tasks.Func{Desc: fmt.Sprintf("wait up to %s for the health checks", o.ConsulWait), Fn: func(context.Context, *tasks.Env, *inventory.Host) (string, error) { return "waiting", nil }},
		After:      &tasks.Func{Desc: fmt.Sprintf("GET /v1/health/service/%s: one passing instance, on %s", o.Service, o.To), Fn: r.servedBy(o.To)},
		Retries:    int(o.ConsulWait / time.Second),
		RetryDelay: time.Second,
	}, &tasks.Step{
		Title: fmt.Sprintf("record the direction: replication %s now runs %s → %s", rep.Name, o.To, o.From),
		Action: &tasks.Func{Desc: fmt.Sprintf("consul kv put %s %s; write %s into %s:%s and %s:%s", replicate.DirectionKey(rep.Name), o.To, o.To,
			o.To, replicate.DirectionFile(ends.TargetDir, rep.Name), o.From, replicate.DirectionFile(ends.SourceDir, rep.Name)), Fn: func(ctx context.Context, env *tasks.Env, _ *inventory.Host) (string, error) {
			c, err := r.Consul(ctx)
			if err != nil {
				return "", err
			}
			_, idx, _, err := c.Get(ctx, replicate.DirectionKey(rep.Name))
			if err != nil {
				return "", err
			}
			ok, err := c.CAS(ctx, replicate.DirectionKey(rep.Name), o.To, idx)
			if err != nil {
				return "", err
			}
			if !ok {
				return "", fmt.Errorf("recording the direction: %s changed meanwhile", replicate.DirectionKey(rep.Name))
			}
			// Also on the hosts, where a replication run without Consul
			// (a timer on the old primary) finds it under its lock: the
			// new primary's record alone refuses a send to it.
			if err := writeDirection(ctx, env, to, ends.TargetDir, rep.Name, o.To); err != nil {
				return "", err
			}
			note := ""
			switch {
			case o.PrimaryDown:
				// Declared down, and it did not answer: asking it again
				// would hold the clients' remount for a connect timeout.
				note = fmt.Sprintf(" (not recorded on %s: --primary-down; Consul's record stands, and the next replication or failover rewrites its stale file)", o.From)
			default:
				if err := writeDirection(ctx, env, inv.Host(o.From), ends.SourceDir, rep.Name, o.To); err != nil {
					note = fmt.Sprintf(" (not recorded on %s: %v; Consul's record stands, and the next replication or failover rewrites that stale file)", o.From, err)
				}
			}
			return fmt.Sprintf("next: hoctl replicate %s %s (incremental)%s", o.To, o.From, note), nil
		}},
	})
	if clients := r.clients(); len(clients) > 0 {
		steps = append(steps, &tasks.Step{
			Title: fmt.Sprintf("remount %s on the clients and read it back", svc.Export),
			Hosts: clients,
			// A failed remount is not a failed failover: the after check
			// says whether the client reads the new primary's data, and a
			// client that does not makes the run exit 5 with its name.
			Action: tasks.Cmd(sshexec.QuoteArgv([]string{"systemctl", "restart", MountUnit(svc.Export)}) + ` || echo "remount failed (exit $?)" >&2`),
			After:  tasks.Cmd(r.clientCheck()),
		})
	}
	steps = append(steps, prunes...)
	for _, s := range steps[2:] {
		if s.Before != nil && s != fence {
			s.NeedsPrevious = true
		}
	}
	return &tasks.Runbook{
		Name:        fmt.Sprintf("failover %s: %s → %s", o.Service, o.From, o.To),
		Lock:        "nfs-" + o.Service,
		ClusterLock: true,
		Steps:       steps,
		Kind:        KindFailover,
		Params: map[string]string{"service": o.Service, "from": o.From, "to": o.To,
			"primary_down": strconv.FormatBool(o.PrimaryDown), "accept_lag": strconv.FormatBool(o.AcceptLag), "token": o.Token},
	}, r, nil
}

func isMember(svc *inventory.NFSService, h string) bool {
	if svc.Primary == h {
		return true
	}
	for _, s := range svc.Standbys {
		if s == h {
			return true
		}
	}
	return false
}

// MountUnit is systemd's name for the mount unit of path (systemd-escape
// --path --suffix=mount), for the common characters of mount points.
func MountUnit(p string) string {
	p = strings.Trim(path.Clean(p), "/")
	var b strings.Builder
	for i, c := range []byte(p) {
		switch {
		case c == '/':
			b.WriteByte('-')
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '_', c == '.' && i > 0, c == ':':
			b.WriteByte(c)
		default:
			fmt.Fprintf(&b, `\x%02x`, c)
		}
	}
	return b.String() + ".mount"
}

func (r *Run) clients() []*inventory.Host {
	if r.NFS.Clients == "" {
		return nil
	}
	hosts, err := r.Inv.Select(r.NFS.Clients)
	if err != nil {
		return nil
	}
	return hosts
}

func (r *Run) leader(ctx context.Context, _ *tasks.Env, _ *inventory.Host) (string, error) {
	c, err := r.Consul(ctx)
	if err != nil {
		return "", err
	}
	l, err := c.Leader(ctx)
	if err != nil {
		return "", err
	}
	return "leader " + l, nil
}

func (r *Run) assessDesc() string {
	o := r.Opts
	return fmt.Sprintf("Consul health of %s (one passing instance, on %s, or none if it is down); %s reachable (or --primary-down); %s is a member with a complete copy younger than %s in %s; %s not exported there",
		o.Service, o.From, o.From, o.To, r.NFS.MaxLag, r.Ends.TargetDir, r.NFS.Export)
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

// FenceDropIn is the runtime drop-in that fences an NFS unit on its old
// primary. `systemctl mask --runtime` cannot: it puts a /dev/null link in
// /run/systemd/system, which systemd reads after /etc/systemd/system, so
// for a unit whose file is in /etc (every unit on NixOS) it silently does
// nothing (systemd#10583, nixpkgs#252591; checked on the lab's real
// systemd). A plain `systemctl mask` cannot either: on NixOS /etc is the
// read-only store, and elsewhere it refuses a unit file in /etc. Drop-ins
// are read from /run whatever directory holds the unit, so this one
// applies on every layout, and it lasts until reboot (/run is a tmpfs),
// after which the unit's own owner-key check is what refuses.
func FenceDropIn(unit string) string {
	return "/run/systemd/system/" + unit + ".d/50-hoctl-fence.conf"
}

// fenceConf refuses every start, manual or by dependency, with an error
// (a Condition would skip the start and report success): the assertion
// holds only while the drop-in itself is absent.
func fenceConf(unit string) string {
	return "# hoctl failover fenced " + unit + " here: another host owns its NFS service.\n" +
		"# Until reboot; hoctl failover back to this host removes it.\n" +
		"[Unit]\nAssertPathExists=!" + FenceDropIn(unit) + "\n"
}

// fenceCmd fences first, then stops: from the daemon-reload on, nothing
// starts the unit again. exportfs is the kernel server's (its unexport is
// belt and braces there); a user-space server such as nfs-ganesha has
// none, and stopping the unit withdraws its exports.
func (r *Run) fenceCmd() string {
	u := r.NFS.Unit
	d := FenceDropIn(u)
	return "mkdir -p " + sshexec.Quote(path.Dir(d)) + " && printf %s " + sshexec.Quote(fenceConf(u)) + " > " + sshexec.Quote(d) +
		" && systemctl daemon-reload && " + sshexec.QuoteArgv([]string{"systemctl", "stop", u}) +
		" && { ! command -v exportfs >/dev/null || exportfs -ua; }"
}

// unfenceCmd lifts a fence left by an earlier failover away from this
// host (and a runtime mask, an older hoctl's fence, where there is one),
// then starts the unit; its own owner-key check still decides. This runs
// while nothing serves, so it does no daemon-reload before the start
// (a reload is slow on a loaded host, and `systemctl unmask` is one):
// the fence asserts its own absence, so the start passes once the file
// is gone, and the reload that tidies systemd's view of the unit comes
// after. docs/failover.md, step "start NFS on the target".
func unfenceCmd(unit string) string {
	d, mask := sshexec.Quote(FenceDropIn(unit)), sshexec.Quote("/run/systemd/system/"+unit)
	return "fenced=; if [ -e " + d + " ]; then rm -f " + d + " && fenced=1; fi && " +
		"if [ \"$(readlink " + mask + ")\" = /dev/null ]; then " + sshexec.QuoteArgv([]string{"systemctl", "unmask", "--runtime", unit}) + "; fi && " +
		sshexec.QuoteArgv([]string{"systemctl", "start", unit}) + " && if [ -n \"$fenced\" ]; then systemctl daemon-reload; fi"
}

// RecoveryDirs hold the NFSv4 clients an NFS server recorded in its last
// term on this host, which it lets reclaim their state in the grace
// period it enters at start: nfs-ganesha's (its fs recovery backend, at
// its default RecoveryRoot) and the Linux server's legacy tracker.
func RecoveryDirs() []string {
	return []string{"/var/lib/nfs/ganesha/v4recov", "/var/lib/nfs/ganesha/v4old", "/var/lib/nfs/v4recovery"}
}

// forgetClientsCmd empties dirs (RecoveryDirs) before a failover's start. The
// clients recorded there held state on this host in an earlier term;
// another host has served since, and granted opens and locks that such
// a reclaim would contradict, so none may come back. A server with no
// client to wait for ends its grace at once (nfs-ganesha with NLM off,
// as an NFSv4-only server runs) instead of after its whole grace period
// (90 s by default), during which no client can open a file.
func forgetClientsCmd(dirs []string) string {
	var q []string
	for _, d := range dirs {
		q = append(q, sshexec.Quote(d))
	}
	return "for d in " + strings.Join(q, " ") + `; do if [ -d "$d" ]; then find "$d" -mindepth 1 -delete || exit 1; fi; done`
}

// startCmd is the new primary's start: the earlier term's clients
// forgotten, the fence lifted, the unit started.
func startCmd(unit string) string {
	return forgetClientsCmd(RecoveryDirs()) + " && " + unfenceCmd(unit)
}

func (r *Run) fenceDesc() string {
	d := fmt.Sprintf("consul kv cas %s %s → %s", r.NFS.OwnerKey, r.Opts.From, r.Opts.To)
	if r.Opts.PrimaryDown {
		return d + "; " + r.Opts.From + " is powered off (--primary-down): nothing to stop there"
	}
	return d + "; on " + r.Opts.From + ": " + r.fenceCmd()
}

// fence moves the owner key first: from then on the old primary's unit
// refuses to start, whatever happens next; then it stops what serves.
func (r *Run) fence(ctx context.Context, env *tasks.Env, _ *inventory.Host) (string, error) {
	o := r.Opts
	c, err := r.Consul(ctx)
	if err != nil {
		return "", err
	}
	v, idx, ok, err := c.Get(ctx, r.NFS.OwnerKey)
	if err != nil {
		return "", err
	}
	if ok && v != o.From {
		return "", fmt.Errorf("owner key %s changed to %q meanwhile", r.NFS.OwnerKey, v)
	}
	if !ok {
		idx = 0
	}
	won, err := c.CAS(ctx, r.NFS.OwnerKey, o.To, idx)
	if err != nil {
		return "", err
	}
	if !won {
		return "", fmt.Errorf("owner key %s changed while it was being moved: someone else is at work", r.NFS.OwnerKey)
	}
	r.mu.Lock()
	r.keyMoved = time.Now()
	r.mu.Unlock()
	if o.PrimaryDown {
		return fmt.Sprintf("owner %s; %s powered off (operator's word)", o.To, o.From), nil
	}
	run, err := env.Connect(ctx, r.Inv.Host(o.From))
	if err != nil {
		return "", err
	}
	if res, err := run.Run(ctx, sshexec.Cmd{Script: r.fenceCmd()}); err != nil {
		return "", fmt.Errorf("%s: stopping %s: %w", o.From, r.NFS.Unit, sshexec.OneLine(res, err))
	}
	return fmt.Sprintf("owner %s; %s fenced (%s) and stopped on %s", o.To, r.NFS.Unit, FenceDropIn(r.NFS.Unit), o.From), nil
}

func (r *Run) fenced(ctx context.Context, env *tasks.Env, _ *inventory.Host) (string, error) {
	o := r.Opts
	c, err := r.Consul(ctx)
	if err != nil {
		return "", err
	}
	passing, err := c.Passing(ctx, o.Service)
	if err != nil {
		return "", err
	}
	if slices.Contains(passing, o.From) {
		return "", fmt.Errorf("Consul still has a passing %s instance on %s", o.Service, o.From)
	}
	run, err := env.Connect(ctx, r.Inv.Host(o.From))
	if err != nil {
		return "", err
	}
	if _, err := run.Run(ctx, sshexec.Cmd{Argv: []string{"systemctl", "is-active", "-q", r.NFS.Unit}}); err == nil {
		return "", fmt.Errorf("%s is still active on %s", r.NFS.Unit, o.From)
	}
	return fmt.Sprintf("no passing instance on %s; %s inactive there", o.From, r.NFS.Unit), nil
}

func (r *Run) promotable(ctx context.Context, env *tasks.Env, _ *inventory.Host) (string, error) {
	copy, err := r.newestCopy(ctx, env)
	if err != nil {
		return "", err
	}
	run, err := env.Connect(ctx, r.Inv.Host(r.Opts.To))
	if err != nil {
		return "", err
	}
	if res, err := run.Run(ctx, sshexec.Cmd{Script: "exportfs -v"}); err == nil && exported(string(res.Stdout), r.NFS.Export) {
		return "", fmt.Errorf("%s already exports %s", r.Opts.To, r.NFS.Export)
	}
	return "will promote " + copy.Name(), nil
}

// promoteCmd makes a writable snapshot of the copy at the service's path,
// moving aside (never deleting) whatever stale data is there, as after a
// failback. The received copy itself stays read-only: flipping it would
// break later receives. It is the dir primitive's promote (run by hoctl on
// the host, never through a restricted key): the copy is opened by its
// one name in the replication dir, whose names a stream wrote, and
// checked to be the read-only received subvolume with the UUID listed;
// the snapshot is made from that descriptor, so no planted symlink can
// make it read or write anything else.
func (r *Run) promoteCmd(run sshexec.Runner, copyName, uuid string) sshexec.Cmd {
	sub := r.NFS.Subvolume
	aside := sub + ".before-failover-" + r.Opts.Now().UTC().Format("20060102T150405Z")
	return replicate.PromoteCmd(run, r.Ends.TargetDir, copyName, uuid, sub, aside, r.marker())
}

// marker is what the promote step writes and every client must read back
// through its mount: proof that it sees the new primary's data.
func (r *Run) marker() string {
	return fmt.Sprintf("hoctl failover %s to %s %s", r.Opts.Service, r.Opts.To, r.Opts.Token)
}

func (r *Run) promote(ctx context.Context, env *tasks.Env, h *inventory.Host) (string, error) {
	copy, err := r.newestCopy(ctx, env)
	if err != nil {
		return "", err
	}
	run, err := env.Connect(ctx, h)
	if err != nil {
		return "", err
	}
	if res, err := run.Run(ctx, r.promoteCmd(run, copy.Name(), copy.UUID)); err != nil {
		return "", fmt.Errorf("%s: promoting %s: %w", h.Name, copy.Name(), sshexec.OneLine(res, err))
	}
	return fmt.Sprintf("%s is a writable snapshot of %s", r.NFS.Subvolume, copy.Name()), nil
}

func (r *Run) writableCheck() string {
	sub := r.NFS.Subvolume
	return sshexec.QuoteArgv([]string{"btrfs", "property", "get", "-ts", sub, "ro"}) + " | grep -qx ro=false && " +
		"grep -qx " + sshexec.Quote(r.marker()) + " " + sshexec.Quote(path.Join(sub, ".hoctl-failover"))
}

func (r *Run) clientCheck() string {
	e := r.NFS.Export
	return "stat " + sshexec.Quote(e+"/") + " >/dev/null && grep -qx " + sshexec.Quote(r.marker()) + " " + sshexec.Quote(path.Join(e, ".hoctl-failover"))
}

func (r *Run) servedBy(host string) func(ctx context.Context, _ *tasks.Env, _ *inventory.Host) (string, error) {
	return func(ctx context.Context, _ *tasks.Env, _ *inventory.Host) (string, error) {
		c, err := r.Consul(ctx)
		if err != nil {
			return "", err
		}
		passing, err := c.Passing(ctx, r.Opts.Service)
		if err != nil {
			return "", err
		}
		if len(passing) != 1 || passing[0] != host {
			return "", fmt.Errorf("passing %s instances: [%s], want exactly [%s]", r.Opts.Service, strings.Join(passing, ", "), host)
		}
		return "one passing instance, on " + host, nil
	}
}

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

// changedError is a step that stopped after the fence moved the owner
// key: whatever it says of itself (a replication refused, exit 3,
// "nothing was changed"), the failover has changed things, so it exits
// 1 and says how to go on.
type changedError struct{ err error }

func (e *changedError) Error() string {
	return e.err.Error() + " (the failover has moved the owner key and fenced the old primary: fix this, then hoctl resume RUN-ID)"
}

// ExitCode is exitcode.Failed, not the refusal of the error it holds.
func (e *changedError) ExitCode() int { return exitcode.Failed }

// afterFenceStep makes a refusal of step's action, which runs after the
// fence, exit 1 (afterFence).
func afterFenceStep(s *tasks.Step) {
	if f, ok := s.Action.(*tasks.Func); ok {
		f.Fn = afterFence(f.Fn)
	}
}

// afterFence wraps the action of a step after the fence: an error that
// would exit 3 becomes a changedError (exit 1). Other errors keep their
// codes (an unreachable host is still 4).
func afterFence(fn func(context.Context, *tasks.Env, *inventory.Host) (string, error)) func(context.Context, *tasks.Env, *inventory.Host) (string, error) {
	return func(ctx context.Context, env *tasks.Env, h *inventory.Host) (string, error) {
		out, err := fn(ctx, env, h)
		if err != nil && exitcode.Of(err) == exitcode.Refused {
			return out, &changedError{err: err}
		}
		return out, err
	}
}
