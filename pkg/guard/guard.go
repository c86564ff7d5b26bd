// Package guard is the NFS host's self-fence (`hoctl guard`, run by
// systemd on every host of an NFS service): it stops the host's NFS unit
// when Consul's owner key names another host, and when it could not
// confirm for failover.GuardLease that the key names this one.
//
// The owner key is what the unit's own start check reads, so it keeps a
// returning primary from *starting*; it cannot stop one that never
// stopped: a primary that hung (every process frozen, its NFS server
// included) while `hoctl failover --primary-down` moved the key, and
// then runs again. The guard does: on the host itself, with no operator
// and no workstation, within a bound stated in docs/failover.md.
//
// The lease is a deadline, not the outcome of a request: the unit runs
// only until last confirmation + Lease, where a confirmation is the send
// time of a request whose answer named this host. A timer fires at that
// instant whatever any request is doing, and no request is given time
// past it. The failover waits Lease + GuardMargin after moving the key
// before it starts the new primary, so a primary cut off from Consul
// has stopped by then.
//
// The decisions (this file) are single-threaded and read time only from
// a Clock; Run (run.go) is the loop that feeds them Consul's answers and
// timer wake-ups. While the loop waits in a call of its own (a fence, a
// status read, a start, a state save), the fuse (fuse.go) stops the unit
// at the lease's end from its own timer. The simulation in sim_test.go drives the same
// decisions with a fake clock and a scripted Consul.
package guard

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/hoctl/hoctl/pkg/failover"
)

// Priorities of log lines, as systemd's journal reads them from a
// "<N>" prefix on stderr (sd-daemon(3)).
const (
	Err     = 3
	Warning = 4
	Notice  = 5
	Info    = 6
)

// Config shapes a guard.
type Config struct {
	Key  string // the owner key
	Unit string // the NFS unit
	Host string // this host, as the owner key names it
	// Lease: the unit runs only until Lease after the send time of the
	// newest request whose answer named Host (failover.GuardLease).
	Lease time.Duration
	// StartGrace is how long a guard just started may take for its first
	// confirmation before it stops a running unit: a restarted guard
	// that cannot confirm stops the unit at start + StartGrace at the
	// latest, sooner when the stored lease ends first.
	StartGrace time.Duration
	// Wait is the blocking query's wait; every Wait or so an unchanged
	// key is confirmed again, so Wait must be well under Lease.
	Wait time.Duration
	// Request bounds one request to Consul (more than Wait: Consul adds
	// up to Wait/16 of jitter); while the lease holds, its end bounds
	// every request too.
	Request time.Duration
	// Retry is the pause after a failed request or systemctl call.
	Retry time.Duration
	// Summary is how often a guard that keeps failing to read the key
	// says so again; between summaries it logs only changes.
	Summary time.Duration
	// Heartbeat: Run's loop turns at least this often (a wake-up that
	// finds nothing due does nothing) and tells Notify WATCHDOG=1.
	Heartbeat time.Duration
	// Notify tells systemd the guard's state (Notifier.Notify); nil:
	// not under systemd's watchdog.
	Notify func(state string) error
	// DryRun logs what the guard would do and does nothing.
	DryRun bool
	Log    func(prio int, msg string)
}

// Defaults for the production guard.
const (
	DefaultWait       = 5 * time.Second
	DefaultRequest    = 8 * time.Second
	DefaultRetry      = time.Second
	DefaultStartGrace = 1000 * time.Millisecond
	DefaultSummary    = 5 * time.Minute
	DefaultHeartbeat  = time.Second
)

// Guard is one running guard's state.
type Guard struct {
	Config
	Consul Consul
	Units  Units
	Clock  Clock
	State  State

	started   bool
	startedAt time.Time
	index     uint64 // the next blocking query's index
	// leaseEnd is when the unit has to stop: the newest confirmation's
	// send time + Lease (an answer says the key held its value at some
	// moment between sending and receiving, so the send time is the
	// safe end; an answer that waited in a frozen host's socket renews
	// nothing past the moment it was asked). A guard just started has
	// min(stored confirmation + Lease, start + StartGrace).
	leaseEnd      time.Time
	confirmed     time.Time // zero: never confirmed
	confirmedHere bool      // by this guard, not only the one before it
	mod           uint64    // the confirmed ModifyIndex
	haveMod       bool
	// leaseStopped: this guard (or the one before it) stopped the unit
	// because the lease ran out; it starts it again only when Consul
	// names this host at ModifyIndex mod.
	leaseStopped bool
	stopMark     string // Units.Activated after the lease stop
	// starting: this guard queued a start of the unit and has not seen
	// it run since. Until then the unit counts as running (the lease's
	// end and a key naming another host stop it): systemd shows a
	// queued start as inactive, and one in its start checks as not yet
	// running.
	starting   bool
	lastAnswer time.Time // Stored.Answered
	// lastIndex is the last X-Consul-Index seen (by this guard or the
	// one before it): one below it is a snapshot restore.
	lastIndex uint64
	// nextCheck: while the lease has run out, the unit is asked about
	// (and stopped if it runs) every Retry, whatever the reads do:
	// someone else may start it (an operator, a deploy, the boot order).
	nextCheck time.Time

	inflight *request
	recheck  string    // non-empty: the next read re-checks this answer before fencing
	nextRead time.Time // no read before this (the pause after a failure)

	log reporter
	// fuse stops the unit at the lease's end while the loop is in a
	// call (fuse.go); nil in a dry run.
	fuse *fuse
}

// request is one read of the owner key.
type request struct {
	sent     time.Time
	deadline time.Time // min(sent + Request, lease end while the lease holds)
	index    uint64
	wait     time.Duration
	recheck  string
}

// New is a guard with the defaults filled in. clock nil is the host's
// CLOCK_BOOTTIME (NewBootClock); state nil keeps nothing across
// restarts.
func New(c Config, consul Consul, units Units, clock Clock, state State) *Guard {
	if c.Lease == 0 {
		c.Lease = failover.GuardLease
	}
	if c.StartGrace == 0 {
		c.StartGrace = DefaultStartGrace
	}
	if c.Wait == 0 {
		c.Wait = DefaultWait
	}
	if c.Request == 0 {
		c.Request = DefaultRequest
	}
	if c.Retry == 0 {
		c.Retry = DefaultRetry
	}
	if c.Heartbeat == 0 {
		c.Heartbeat = DefaultHeartbeat
	}
	if c.Summary == 0 {
		c.Summary = DefaultSummary
	}
	if c.Log == nil {
		c.Log = func(int, string) {}
	}
	if clock == nil {
		clock = NewBootClock()
	}
	g := &Guard{Config: c, Consul: consul, Units: units, Clock: clock, State: state}
	g.log.g = g
	return g
}

// begin sets the lease of a guard just started from what the one before
// it stored: never longer than StartGrace from now.
func (g *Guard) begin() {
	now := g.Clock.Now()
	g.started, g.startedAt = true, now
	g.setLease(now.Add(g.StartGrace))
	if g.State == nil {
		return
	}
	s, ok, err := g.State.Load()
	switch {
	case err != nil:
		g.Log(Warning, fmt.Sprintf("cannot read what the last guard stored (%v): its lease and lease stop are unknown", err))
	case ok:
		g.confirmed, g.mod, g.haveMod, g.leaseStopped, g.lastIndex, g.stopMark, g.lastAnswer = s.Confirmed, s.ModifyIndex, s.ModifyIndex != 0, s.LeaseStopped, s.Index, s.StopMark, s.Answered
		if s.LeaseEnd.Before(g.leaseEnd) {
			g.setLease(s.LeaseEnd)
		}
	}
	g.save()
}

// setLease is the lease's new end, for the loop and its fuse.
func (g *Guard) setLease(end time.Time) {
	g.leaseEnd = end
	g.fuse.set(end)
}

func (g *Guard) save() {
	if g.State == nil || g.DryRun {
		return
	}
	if err := g.State.Save(Stored{LeaseEnd: g.leaseEnd, Confirmed: g.confirmed, ModifyIndex: g.mod, LeaseStopped: g.leaseStopped, Index: g.lastIndex, StopMark: g.stopMark, Answered: g.lastAnswer}); err != nil {
		g.log.once(Warning, "state", fmt.Sprintf("cannot store the lease for the next guard: %v", err))
	}
}

// tick does what is due now: the lease's end (checked before anything
// is asked, so a restarted guard whose stored lease ran out stops the
// unit at once, and then every Retry while the lease stays run out,
// whatever the reads do), then the next read. It returns the read to
// send, if any, and when to call tick again (zero: only when the read
// returns).
func (g *Guard) tick(ctx context.Context) (*request, time.Time) {
	if g.fuse == nil && !g.DryRun {
		g.fuse = newFuse(g.Clock, g.Retry, DefaultHandoff, g.blowFuse(ctx))
	}
	g.fuse.enter()
	defer g.fuse.leave()
	if !g.started {
		g.begin()
	}
	now := g.Clock.Now()
	if !now.Before(g.leaseEnd) && !now.Before(g.nextCheck) {
		g.leaseRanOut(ctx, now, nil)
		now = g.Clock.Now()
		g.nextCheck = now.Add(g.Retry)
	}
	var send *request
	if g.inflight == nil && !now.Before(g.nextRead) {
		send = &request{sent: now, deadline: now.Add(g.Request), index: g.index, wait: g.Wait, recheck: g.recheck}
		if g.recheck != "" {
			// Never act on an old answer: ask again, without blocking.
			send.index, send.wait = 0, 0
		}
		if now.Before(g.leaseEnd) && g.leaseEnd.Before(send.deadline) {
			send.deadline = g.leaseEnd
		}
		g.inflight = send
	}
	var wake time.Time
	earliest := func(t time.Time) {
		if t.After(now) && (wake.IsZero() || t.Before(wake)) {
			wake = t
		}
	}
	if now.Before(g.leaseEnd) {
		earliest(g.leaseEnd)
	} else {
		earliest(g.nextCheck)
	}
	if g.inflight == nil {
		earliest(g.nextRead)
	}
	return send, wake
}

// leaseRanOut stops the unit, if it runs, because the lease ended.
func (g *Guard) leaseRanOut(ctx context.Context, now time.Time, lastErr error) {
	running := g.running(ctx)
	if running {
		g.starting = false
	} else if !g.starting {
		return
	}
	var why string
	switch {
	case !g.confirmedHere:
		why = fmt.Sprintf("this guard started %s ago and has no confirmation from Consul yet (start grace %s)", now.Sub(g.startedAt).Round(time.Millisecond), g.StartGrace)
		if !g.confirmed.IsZero() {
			why += fmt.Sprintf("; the guard before it was last confirmed %s ago", now.Sub(g.confirmed).Round(time.Millisecond))
		}
	default:
		why = fmt.Sprintf("Consul has not confirmed that %s names %s for %s (lease %s)", g.Key, g.Host, now.Sub(g.confirmed).Round(time.Millisecond), g.Lease)
	}
	if lastErr == nil {
		lastErr = g.log.lastErr
	}
	if lastErr != nil {
		why += fmt.Sprintf("; last error: %v", lastErr)
	}
	// The lease stop is stored before the stop, which can take a while
	// (the unit's own stop commands): a guard killed meanwhile leaves
	// it to the next one, which then starts the unit again, or fences
	// it, as this one would have.
	// A start of this guard's not yet seen running is stopped (it may
	// only be queued) but not recorded as a lease stop: the unit may have
	// been stopped by someone else since, which no guard may undo.
	if running && !g.DryRun {
		if mark, err := g.Units.Activated(ctx, g.Unit); err != nil {
			// No mark: no start by the guard either.
			g.Log(Warning, fmt.Sprintf("cannot tell when %s last started (%v): this guard will not start it again", g.Unit, err))
		} else {
			g.leaseStopped, g.stopMark = true, mark
			g.save()
		}
	}
	what := why + ": stopping " + g.Unit + " until Consul confirms this host again, unchanged"
	if !running {
		what = why + ": stopping the start of " + g.Unit + " this guard queued, not seen running yet (this guard will not start it again)"
	}
	if g.act(ctx, what, func() error { defer g.fuse.own()(); return g.Units.Stop(ctx, g.Unit) }) {
		g.starting = false
	}
}

// up is running, or started by this guard and not yet seen running.
func (g *Guard) up(ctx context.Context) bool {
	if g.running(ctx) {
		g.starting = false
		return true
	}
	return g.starting
}

// endLease ends the lease now: an answer naming another host (asked
// again when the unit runs) is the end of this host's ownership, and
// the unit's start check (--check-lease) must say so at once.
func (g *Guard) endLease(now time.Time) {
	if now.Before(g.leaseEnd) {
		g.leaseEnd = now
		g.fuse.endNow()
		g.save()
	}
}

// running asks systemd; not knowing, it takes the unit as running:
// stopping a stopped unit is harmless, leaving a running one is not.
func (g *Guard) running(ctx context.Context) bool {
	running, err := g.Units.Running(ctx, g.Unit)
	if err != nil {
		g.log.once(Warning, "units", fmt.Sprintf("cannot tell whether %s runs (%v): taken as running", g.Unit, err))
		return true
	}
	return running
}

// answered takes the outcome of req: the answer, the lease, the unit's
// state, and what they call for.
func (g *Guard) answered(ctx context.Context, req *request, r Reading, err error) {
	g.fuse.enter()
	defer g.fuse.leave()
	if g.inflight == req {
		g.inflight = nil
	}
	if ctx.Err() != nil {
		return
	}
	g.recheck = ""
	if err != nil {
		g.log.failed(err)
		g.nextRead = g.Clock.Now().Add(g.Retry)
		// The next answer is wanted as soon as Consul can give it, not
		// when the key next changes.
		g.index = 0
		if req.recheck != "" {
			g.Log(Notice, fmt.Sprintf("%s; but asking again failed (%v): not acting on it; the lease still ends at its time", req.recheck, err))
		}
		return
	}
	g.log.answered()
	if req.sent.After(g.lastAnswer) {
		g.lastAnswer = req.sent
		defer g.save()
	}
	// Consul's rule for blocking queries: an index that goes backwards
	// (a snapshot restore) starts over from 0. And an index of 0 would
	// make every query return at once.
	if r.Index < g.index {
		g.index = 0
	} else {
		g.index = max(r.Index, 1)
	}
	if r.Index != g.lastIndex {
		if r.Index < g.lastIndex && g.leaseStopped {
			g.Log(Warning, fmt.Sprintf("Consul's index went back from %d to %d (a snapshot restore): the key may hold an old value at an old ModifyIndex, so this guard will not start %s after its lease stop (hoctl failover, or the operator, may)",
				g.lastIndex, r.Index, g.Unit))
			g.leaseStopped = false
		}
		g.lastIndex = r.Index
		g.save()
	}
	mine := r.Found && r.Owner == g.Host
	if mine {
		g.confirm(req.sent, r)
	}
	running := g.up(ctx)
	now := g.Clock.Now()
	switch {
	case !mine && (running || g.leaseStopped):
		why := describe(r, g.Key)
		if req.recheck == "" {
			g.recheck = why
			g.nextRead = now
			return
		}
		g.endLease(now)
		if g.act(ctx, why+": fencing and stopping "+g.Unit, func() error { defer g.fuse.own()(); return g.Units.Fence(ctx, g.Unit, why) }) {
			g.leaseStopped, g.starting = false, false
			g.save()
		}
	case !mine:
		// Nothing runs, so nothing is stopped on an answer that may be
		// old; but no start check passes on this host's lease now.
		g.endLease(now)
		g.log.state(r, running)
	case running && !now.Before(g.leaseEnd):
		// A late answer, or a unit started by someone else while the
		// lease had run out: the lease rule holds on every path.
		g.leaseRanOut(ctx, now, nil)
	case mine && g.leaseStopped && running:
		// Someone else started it, with the lease held again: the lease
		// stop is over, and a later stop is theirs, not for this guard
		// to undo.
		g.Log(Notice, fmt.Sprintf("%s runs again (started by someone else) and Consul confirms %s names %s at ModifyIndex %d: the lease stop is over", g.Unit, g.Key, g.Host, r.ModifyIndex))
		g.leaseStopped = false
		g.save()
	case mine && g.leaseStopped && !running && now.Before(g.leaseEnd):
		if mark, err := g.Units.Activated(ctx, g.Unit); err != nil || startedSince(g.stopMark, mark) {
			why := "it was started again since the lease stop (by someone else), and stopped"
			if err != nil {
				why = fmt.Sprintf("cannot tell whether it was started since the lease stop (%v)", err)
			}
			g.Log(Notice, fmt.Sprintf("Consul confirms %s names %s again at ModifyIndex %d, but %s: this guard leaves %s stopped (the operator, or hoctl failover, may start it)", g.Key, g.Host, r.ModifyIndex, why, g.Unit))
			g.leaseStopped = false
			g.save()
			return
		}
		if !g.Clock.Now().Before(g.leaseEnd) {
			// The look took the rest of the lease: no start on it.
			return
		}
		if g.act(ctx, fmt.Sprintf("Consul confirms %s names %s again at ModifyIndex %d, unchanged since the lease stop: starting %s", g.Key, g.Host, r.ModifyIndex, g.Unit),
			func() error { return g.Units.Start(ctx, g.Unit) }) {
			g.leaseStopped, g.starting = false, true
			g.save()
		}
	default:
		g.log.state(r, running)
	}
}

// confirm renews the lease from an answer naming this host, sent at
// sent. After a lease stop only the ModifyIndex then confirmed renews
// it: a key written since (by a failover away and back, or by anyone
// who can write the key) does not restart the unit; that is for a
// failover or the operator.
func (g *Guard) confirm(sent time.Time, r Reading) {
	if g.leaseStopped && (!g.haveMod || r.ModifyIndex != g.mod) {
		known := "no ModifyIndex was confirmed before it"
		if g.haveMod {
			known = fmt.Sprintf("it was %d", g.mod)
		}
		g.Log(Warning, fmt.Sprintf("Consul names %s in %s again, but at ModifyIndex %d and %s at the lease stop: the key was written since, so this guard will not start %s (hoctl failover, or the operator, may)",
			g.Host, g.Key, r.ModifyIndex, known, g.Unit))
		g.leaseStopped = false
	}
	if sent.After(g.confirmed) {
		g.confirmed = sent
	}
	g.confirmedHere = true
	if end := sent.Add(g.Lease); end.After(g.leaseEnd) {
		g.setLease(end)
	}
	g.mod, g.haveMod = r.ModifyIndex, true
	g.save()
}

// startedSince says whether the unit's activation mark now is newer
// than at the lease stop. Newer, not different: systemd unloads an
// inactive unit nothing refers to, and one loaded again shows 0.
func startedSince(atStop, now string) bool {
	a, err1 := strconv.ParseUint(atStop, 10, 64)
	b, err2 := strconv.ParseUint(now, 10, 64)
	if err1 != nil || err2 != nil {
		return atStop != now
	}
	return b > a
}

func describe(r Reading, key string) string {
	if !r.Found {
		return fmt.Sprintf("owner key %s is not set", key)
	}
	return fmt.Sprintf("owner key %s names %q", key, r.Owner)
}

// act does f (or, in a dry run, says it would) and logs the outcome.
func (g *Guard) act(ctx context.Context, what string, f func() error) bool {
	if g.DryRun {
		g.log.once(Notice, "act", "dry run: would act: "+what)
		return false
	}
	g.Log(Warning, what)
	g.log.reset()
	if err := f(); err != nil {
		if ctx.Err() == nil {
			g.Log(Err, fmt.Sprintf("FAILED: %s: %v", what, err))
		}
		return false
	}
	g.Log(Notice, "done: "+what)
	return true
}
