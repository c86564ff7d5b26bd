package guard

// The guard's decisions as they were at d4ac807 (before the lease was a
// deadline), kept only so that TestSimulationFindsTheOldBugs can show
// what the simulation finds in them: its Step is synchronous, so the
// simulation's Consul answers it in line, moving the fake clock.

import (
	"context"
	"fmt"
	"time"

	"github.com/hoctl/hoctl/pkg/failover"
)

// oldConfig shapes a guard.
type oldConfig struct {
	Key  string // the owner key
	Unit string // the NFS unit
	Host string // this host, as the owner key names it
	// Lease: the unit runs only while the key named Host in an answer to
	// a request sent less than Lease ago (failover.GuardLease).
	Lease time.Duration
	// Wait is the blocking query's wait; every Wait or so an unchanged
	// key is confirmed again, so Wait must be well under Lease.
	Wait time.Duration
	// Request bounds one request to Consul (more than Wait: Consul adds
	// up to Wait/16 of jitter).
	Request time.Duration
	// Retry is the pause after a failed request.
	Retry time.Duration
	// DryRun logs what the guard would do and does nothing.
	DryRun bool
	Log    func(prio int, msg string)
	Now    func() time.Time
}

// oldGuard is one running guard's state.
type oldGuard struct {
	oldConfig
	Consul Consul
	Units  Units

	index uint64
	// confirmed is when the newest request whose answer named Host was
	// sent: an answer says the key held that value at some moment
	// between sending and receiving, so the send time is the safe end.
	// A late answer (one that waited in a frozen host's socket) then
	// renews nothing past the moment it was asked.
	confirmed time.Time
	// leaseStopped: the guard stopped the unit because the lease ran
	// out, not because another host owns it; a new confirmation starts
	// it again.
	leaseStopped bool
	lastNote     string
}

// newOldGuard is a guard with the defaults filled in.
func newOldGuard(c oldConfig, consul Consul, units Units) *oldGuard {
	if c.Lease == 0 {
		c.Lease = failover.GuardLease
	}
	if c.Wait == 0 {
		c.Wait = 5 * time.Second
	}
	if c.Request == 0 {
		c.Request = 8 * time.Second
	}
	if c.Retry == 0 {
		c.Retry = time.Second
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Log == nil {
		c.Log = func(int, string) {}
	}
	return &oldGuard{oldConfig: c, Consul: consul, Units: units}
}

// Run guards until ctx ends (systemd's stop), which is not an error.
func (g *oldGuard) Run(ctx context.Context) error {
	g.Log(Info, fmt.Sprintf("guarding %s on %s: it runs only while Consul's %s names %s (lease %s, checked every %s)%s",
		g.Unit, g.Host, g.Key, g.Host, g.Lease, g.Wait, map[bool]string{true: "; dry run: nothing is stopped or started"}[g.DryRun]))
	for ctx.Err() == nil {
		if ok := g.Step(ctx); !ok {
			g.pause(ctx)
		}
	}
	g.Log(Info, "stopped")
	return nil
}

// leaseEnd is when the lease runs out; zero if it never began.
func (g *oldGuard) leaseEnd() time.Time {
	if g.confirmed.IsZero() {
		return time.Time{}
	}
	return g.confirmed.Add(g.Lease)
}

func (g *oldGuard) leased(now time.Time) bool {
	e := g.leaseEnd()
	return !e.IsZero() && now.Before(e)
}

// pause waits Retry after a failed request, but never past the lease's
// end: that is when the unit has to stop.
func (g *oldGuard) pause(ctx context.Context) {
	d := g.Retry
	if now := g.Now(); g.leased(now) {
		d = min(d, g.leaseEnd().Sub(now))
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

// read asks Consul once, bounded by Request and, while the lease holds,
// by the lease's end: a request that hangs (a dead connection after the
// host was frozen, a partitioned agent) cannot hold the guard past it.
// After SIGSTOP/SIGCONT a deadline in the past fires at once.
func (g *oldGuard) read(ctx context.Context, index uint64, wait time.Duration) (Reading, time.Time, error) {
	sent := g.Now()
	deadline := sent.Add(g.Request)
	if g.leased(sent) && g.leaseEnd().Before(deadline) {
		deadline = g.leaseEnd()
	}
	rctx, cancel := context.WithDeadline(ctx, deadline)
	defer cancel()
	r, err := g.Consul.Owner(rctx, g.Key, index, wait)
	if err == nil && r.Found && r.Owner == g.Host {
		g.confirmed = sent
	}
	return r, sent, err
}

// Step is one round: a (blocking) read of the owner key, then what the
// answer, the lease and the unit's state call for. It says whether the
// read succeeded.
func (g *oldGuard) Step(ctx context.Context) bool {
	r, _, err := g.read(ctx, g.index, g.Wait)
	if ctx.Err() != nil {
		return true
	}
	if err == nil {
		// Consul's rule for blocking queries: an index that goes
		// backwards (a snapshot restore) starts over from 0.
		// And an index of 0 would make every query return at once.
		if r.Index < g.index {
			g.index = 0
		} else {
			g.index = max(r.Index, 1)
		}
	}
	running, uerr := g.Units.Running(ctx, g.Unit)
	if uerr != nil {
		// Not knowing, act as if it runs: stopping a stopped unit is
		// harmless, leaving a running one is not.
		g.note(Warning, fmt.Sprintf("cannot tell whether %s runs (%v): taken as running", g.Unit, uerr))
		running = true
	}
	switch a, why := g.decide(g.Now(), r, err, running); a {
	case oldFenceStop:
		// Never act on an old answer: ask again, without blocking.
		r2, _, err2 := g.read(ctx, 0, 0)
		if err2 != nil || (r2.Found && r2.Owner == g.Host) {
			g.note(Notice, fmt.Sprintf("%s; but asked again: %s", why, oldDescribe(r2, err2, g.Key)))
			return err2 == nil
		}
		g.act(ctx, why+": fencing and stopping "+g.Unit, func() error { return g.Units.Fence(ctx, g.Unit, why) })
		g.leaseStopped = false
	case oldLeaseStop:
		if g.act(ctx, why+": stopping "+g.Unit+" until Consul confirms this host again", func() error { return g.Units.Stop(ctx, g.Unit) }) {
			g.leaseStopped = true
		}
	case oldRestart:
		if g.act(ctx, "Consul confirms "+g.Host+" owns "+g.Key+" again: starting "+g.Unit+", which this guard stopped when its lease ran out", func() error { return g.Units.Start(ctx, g.Unit) }) {
			g.leaseStopped = false
		}
	default:
		if err != nil {
			g.note(Warning, fmt.Sprintf("cannot read %s: %v", g.Key, err))
		} else {
			g.note(Info, oldDescribe(r, nil, g.Key)+map[bool]string{true: "; " + g.Unit + " runs", false: "; " + g.Unit + " is not running"}[running])
		}
	}
	return err == nil
}

type oldAction int

const (
	oldNone oldAction = iota
	oldFenceStop
	oldLeaseStop
	oldRestart
)

// decide is the guard's rule, from one read and the unit's state:
//   - the key names another host, or is gone, and the unit runs (or
//     this guard stopped it for its lease): fence and stop it. The unit's
//     own start check refuses an unset key too.
//   - the lease ran out and the unit runs: stop it (no fence: the unit's
//     start check cannot pass while Consul cannot answer, and once it
//     can, this host may own the key still).
//   - the key names this host again after a lease stop: start it.
func (g *oldGuard) decide(now time.Time, r Reading, err error, running bool) (oldAction, string) {
	mine := err == nil && r.Found && r.Owner == g.Host
	switch {
	case err == nil && !mine && (running || g.leaseStopped):
		return oldFenceStop, oldDescribe(r, nil, g.Key)
	case running && !g.leased(now):
		why := "no answer from Consul yet"
		if !g.confirmed.IsZero() {
			why = fmt.Sprintf("Consul has not confirmed that %s names %s for %s (lease %s)", g.Key, g.Host, now.Sub(g.confirmed).Round(time.Millisecond), g.Lease)
		}
		if err != nil {
			why += fmt.Sprintf("; last error: %v", err)
		}
		return oldLeaseStop, why
	case mine && !running && g.leaseStopped:
		return oldRestart, ""
	}
	return oldNone, ""
}

func oldDescribe(r Reading, err error, key string) string {
	switch {
	case err != nil:
		return fmt.Sprintf("cannot read %s: %v", key, err)
	case !r.Found:
		return fmt.Sprintf("owner key %s is not set", key)
	}
	return fmt.Sprintf("owner key %s names %q", key, r.Owner)
}

// act does f (or, in a dry run, says it would) and logs the outcome.
func (g *oldGuard) act(ctx context.Context, what string, f func() error) bool {
	if g.DryRun {
		g.note(Notice, "dry run: would act: "+what)
		return false
	}
	g.Log(Warning, what)
	g.lastNote = ""
	if err := f(); err != nil {
		if ctx.Err() == nil {
			g.Log(Err, fmt.Sprintf("FAILED: %s: %v", what, err))
		}
		return false
	}
	g.Log(Notice, "done: "+what)
	return true
}

// note logs msg when it differs from the last note: the state of a
// guard that has nothing to do is said once, not every Wait.
func (g *oldGuard) note(prio int, msg string) {
	if msg == g.lastNote {
		return
	}
	g.lastNote = msg
	g.Log(prio, msg)
}
