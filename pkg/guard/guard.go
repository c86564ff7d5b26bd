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
// Why a lease and not only a watch of the key: a primary that is cut off
// from Consul never sees the key move. With the lease it stops serving
// by itself, GuardLease after its last confirmation, whether or not it
// can reach anything; the failover waits that long before it starts the
// new primary.
package guard

import (
	"context"
	"fmt"
	"time"

	"github.com/hoctl/hoctl/pkg/failover"
)

// Reading is one answer of Consul about the owner key.
type Reading struct {
	Owner string // the key's value
	Found bool   // false: the key does not exist
	Index uint64 // X-Consul-Index, for the next blocking query
}

// Consul is what the guard asks Consul.
type Consul interface {
	// Owner reads key consistently (through the Raft leader). With index
	// > 0 it is a blocking query: it returns when the key's index passes
	// index or after about wait.
	Owner(ctx context.Context, key string, index uint64, wait time.Duration) (Reading, error)
}

// Units is what the guard does to systemd.
type Units interface {
	// Running says whether unit is active (or activating, reloading).
	Running(ctx context.Context, unit string) (bool, error)
	// Fence writes the fence drop-in (failover.FenceDropIn), reloads
	// systemd and stops unit: nothing starts it again until the drop-in
	// is removed (hoctl failover back to this host does).
	Fence(ctx context.Context, unit, reason string) error
	// Stop stops unit without a fence.
	Stop(ctx context.Context, unit string) error
	// Start starts unit (its own start check still decides).
	Start(ctx context.Context, unit string) error
}

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

// Defaults for the production guard.
const (
	DefaultWait    = 5 * time.Second
	DefaultRequest = 8 * time.Second
	DefaultRetry   = time.Second
)

// Guard is one running guard's state.
type Guard struct {
	Config
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

// New is a guard with the defaults filled in.
func New(c Config, consul Consul, units Units) *Guard {
	if c.Lease == 0 {
		c.Lease = failover.GuardLease
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
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Log == nil {
		c.Log = func(int, string) {}
	}
	return &Guard{Config: c, Consul: consul, Units: units}
}

// Run guards until ctx ends (systemd's stop), which is not an error.
func (g *Guard) Run(ctx context.Context) error {
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
func (g *Guard) leaseEnd() time.Time {
	if g.confirmed.IsZero() {
		return time.Time{}
	}
	return g.confirmed.Add(g.Lease)
}

func (g *Guard) leased(now time.Time) bool {
	e := g.leaseEnd()
	return !e.IsZero() && now.Before(e)
}

// pause waits Retry after a failed request, but never past the lease's
// end: that is when the unit has to stop.
func (g *Guard) pause(ctx context.Context) {
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
func (g *Guard) read(ctx context.Context, index uint64, wait time.Duration) (Reading, time.Time, error) {
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
func (g *Guard) Step(ctx context.Context) bool {
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
	case fenceStop:
		// Never act on an old answer: ask again, without blocking.
		r2, _, err2 := g.read(ctx, 0, 0)
		if err2 != nil || (r2.Found && r2.Owner == g.Host) {
			g.note(Notice, fmt.Sprintf("%s; but asked again: %s", why, describe(r2, err2, g.Key)))
			return err2 == nil
		}
		g.act(ctx, why+": fencing and stopping "+g.Unit, func() error { return g.Units.Fence(ctx, g.Unit, why) })
		g.leaseStopped = false
	case leaseStop:
		if g.act(ctx, why+": stopping "+g.Unit+" until Consul confirms this host again", func() error { return g.Units.Stop(ctx, g.Unit) }) {
			g.leaseStopped = true
		}
	case restart:
		if g.act(ctx, "Consul confirms "+g.Host+" owns "+g.Key+" again: starting "+g.Unit+", which this guard stopped when its lease ran out", func() error { return g.Units.Start(ctx, g.Unit) }) {
			g.leaseStopped = false
		}
	default:
		if err != nil {
			g.note(Warning, fmt.Sprintf("cannot read %s: %v", g.Key, err))
		} else {
			g.note(Info, describe(r, nil, g.Key)+map[bool]string{true: "; " + g.Unit + " runs", false: "; " + g.Unit + " is not running"}[running])
		}
	}
	return err == nil
}

type action int

const (
	none action = iota
	fenceStop
	leaseStop
	restart
)

// decide is the guard's rule, from one read and the unit's state:
//   - the key names another host, or is gone, and the unit runs (or
//     this guard stopped it for its lease): fence and stop it. The unit's
//     own start check refuses an unset key too.
//   - the lease ran out and the unit runs: stop it (no fence: the unit's
//     start check cannot pass while Consul cannot answer, and once it
//     can, this host may own the key still).
//   - the key names this host again after a lease stop: start it.
func (g *Guard) decide(now time.Time, r Reading, err error, running bool) (action, string) {
	mine := err == nil && r.Found && r.Owner == g.Host
	switch {
	case err == nil && !mine && (running || g.leaseStopped):
		return fenceStop, describe(r, nil, g.Key)
	case running && !g.leased(now):
		why := "no answer from Consul yet"
		if !g.confirmed.IsZero() {
			why = fmt.Sprintf("Consul has not confirmed that %s names %s for %s (lease %s)", g.Key, g.Host, now.Sub(g.confirmed).Round(time.Millisecond), g.Lease)
		}
		if err != nil {
			why += fmt.Sprintf("; last error: %v", err)
		}
		return leaseStop, why
	case mine && !running && g.leaseStopped:
		return restart, ""
	}
	return none, ""
}

func describe(r Reading, err error, key string) string {
	switch {
	case err != nil:
		return fmt.Sprintf("cannot read %s: %v", key, err)
	case !r.Found:
		return fmt.Sprintf("owner key %s is not set", key)
	}
	return fmt.Sprintf("owner key %s names %q", key, r.Owner)
}

// act does f (or, in a dry run, says it would) and logs the outcome.
func (g *Guard) act(ctx context.Context, what string, f func() error) bool {
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
func (g *Guard) note(prio int, msg string) {
	if msg == g.lastNote {
		return
	}
	g.lastNote = msg
	g.Log(prio, msg)
}
