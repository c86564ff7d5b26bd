// Package failover is the NFS failover runbook: move an NFS service
// (inventory `nfs`) from its current primary to a standby, with Consul as
// the arbiter of who may serve. The owner key is moved before anything
// starts on the new primary, and nothing starts while the old one may
// still serve, so at no point do two hosts export the share.
package failover

import (
	"context"
	"fmt"
	"path"
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
	// LeaseWait is how long --primary-down waits after the owner key's
	// last write before the new primary starts: GuardLease + GuardMargin
	// when zero, the only value the guard's protocol allows (tests
	// shorten it).
	LeaseWait time.Duration
	// Plan is a dry run: when Consul cannot say who owns the service,
	// assume the inventory's primary (the other end when To is the
	// primary) so the plan still shows, with its failing checks, instead
	// of no plan at all.
	Plan bool
	// Snapshot is the final sync's new snapshot when a resumed run's
	// journal says its snapshot step took it (snapshotTaken): the resumed
	// send sends that one.
	Snapshot string
	// FenceCut is a resumed run whose fence step began its action (its
	// before check passed: the key named From, under this run's locks)
	// and did not finish: its compare-and-set may have moved the key to
	// To already. The fence then takes a key naming To as that write and
	// does only what is left (fenceBefore, fence).
	FenceCut bool
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
	assessed  string          // the newest complete copy the assessment found
	chosen    *btrfs.Snapshot // the copy the promote's before check found
	// inspect is the final sync's inspection (its before check and its
	// action, which takes the host locks), and inspected says this
	// process ran it: a run resumed after the fence has not.
	inspect   [2]func(context.Context, *tasks.Env, *inventory.Host) (string, error)
	inspected bool
	// keyMoved is when this run's compare-and-set of the owner key
	// returned: the old primary's guard can have had no confirmation
	// sent after it (zero: not by this run, as in a resumed one).
	keyMoved time.Time
	// movedIndex is the owner key's ModifyIndex after this run's write
	// (0: unknown, as in a resumed run). The lease wait counts from that
	// write; a later write (the key put back to the old primary and
	// moved again) may have let the old primary's guard confirm after
	// it, so the start refuses a key written since.
	movedIndex uint64
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
			// Nothing was asked of a host or changed yet: a refusal
			// (exit 3), as the assessment's own Consul check would be.
			return nil, nil, &tasks.RefusedError{Err: err, Reason: fmt.Sprintf(
				"Consul cannot say which host owns %s (reading the owner key %s: %v): nothing was changed; a failover needs Consul to move the key", o.Service, svc.OwnerKey, err)}
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
		Before: &tasks.Func{Desc: r.fenceBeforeDesc(), Fn: r.fenceBefore},
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
		rb, finalSync := replicate.Runbook(inv, ends, replicate.Options{Now: o.Now, Recorded: recorded, Snapshot: o.Snapshot})
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
		// The fence's daemon-reload before the key moves: the old
		// primary serves on meanwhile, so it is out of the outage.
		steps = append(steps, &tasks.Step{
			Title:  fmt.Sprintf("arm the fence on %s: refuse any new start of %s there (it serves on)", o.From, unit),
			Before: &tasks.Func{Desc: fmt.Sprintf("consul kv %s is %s (or unset)", svc.OwnerKey, o.From), Fn: r.ownerIs(o.From, true)},
			Action: &tasks.Func{DescFn: func(*inventory.Host) string { return r.armDesc() }, Fn: r.arm},
		})
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
		Before:        &tasks.Func{Desc: fmt.Sprintf("consul kv %s is %s", svc.OwnerKey, o.To), Fn: r.ownerStill(o.To)},
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
		Lock:        LockScope(o.Service),
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
