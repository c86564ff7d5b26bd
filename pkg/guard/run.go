package guard

import (
	"context"
	"fmt"
	"sync"
	"time"
)

type result struct {
	req *request
	r   Reading
	err error
}

// Run guards until ctx ends (systemd's stop), which is not an error.
//
// One read is out at a time, in its own goroutine, its context ending at
// the request's deadline; the loop waits for it or for the next thing
// due (the lease's end, the next read), whichever comes first. So the
// lease's end stops the unit on time even if a request does not honour
// its context; and while the loop itself waits in a call, the guard's
// fuse (fuse.go) stops the unit at the lease's end from its own timer. The loop turns at least every Heartbeat, and tells
// systemd so (WATCHDOG=1): a guard wedged anywhere, or stopped
// (SIGSTOP), is killed by systemd's watchdog and started again, and
// the guard after it finds the lease as this one stored it.
func (g *Guard) Run(ctx context.Context) error {
	g.Log(Info, fmt.Sprintf("guarding %s on %s: it runs only while Consul's %s names %s (lease %s, checked every %s; a guard just started confirms within %s or stops it)%s",
		g.Unit, g.Host, g.Key, g.Host, g.Lease, g.Wait, g.StartGrace, map[bool]string{true: "; dry run: nothing is stopped or started"}[g.DryRun]))
	if g.Notify != nil {
		g.Units = fedUnits{Units: g.Units, beat: g.Heartbeat, notify: g.notify}
	}
	// The fuse (fuse.go) logs from its own goroutine.
	var logMu sync.Mutex
	logf := g.Log
	g.Log = func(prio int, msg string) {
		logMu.Lock()
		defer logMu.Unlock()
		logf(prio, msg)
	}
	results := make(chan result, 1)
	wake := make(chan struct{}, 1)
	ready := false
	for ctx.Err() == nil {
		send, at := g.tick(ctx)
		if !ready {
			g.notify("READY=1")
			ready = true
		}
		g.notify("WATCHDOG=1")
		if beat := g.Clock.Now().Add(g.Heartbeat); at.IsZero() || at.After(beat) {
			at = beat
		}
		if send != nil {
			rctx, cancel := g.Clock.WithDeadline(ctx, send.deadline)
			go func() {
				defer cancel()
				r, err := g.Consul.Owner(rctx, g.Key, send.index, send.wait)
				results <- result{send, r, err}
			}()
		}
		stop := g.Clock.AfterFunc(at.Sub(g.Clock.Now()), func() {
			select {
			case wake <- struct{}{}:
			default:
			}
		})
		select {
		case <-ctx.Done():
		case res := <-results:
			g.answered(ctx, res.req, res.r, res.err)
		case <-wake:
		}
		stop()
	}
	g.Log(Info, "stopped")
	return nil
}

func (g *Guard) notify(state string) {
	if g.Notify == nil {
		return
	}
	if err := g.Notify(state); err != nil {
		g.log.once(Warning, "notify", fmt.Sprintf("cannot tell systemd %s: %v (its watchdog will restart this guard)", state, err))
	}
}

// fedUnits keeps systemd's watchdog fed while the loop waits on a
// systemctl call, which is bounded (systemctl's two minutes) but may
// take longer than the watchdog (a unit whose stop commands take their
// time): a guard killed in the middle of its own stop would leave the
// stop to the next one. A stopped or deadlocked guard feeds nothing.
type fedUnits struct {
	Units
	beat   time.Duration
	notify func(string)
}

func (f fedUnits) fed(call func()) {
	done := make(chan struct{})
	go func() {
		t := time.NewTicker(f.beat)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				f.notify("WATCHDOG=1")
			}
		}
	}()
	defer close(done)
	call()
}

func (f fedUnits) Running(ctx context.Context, unit string) (ok bool, err error) {
	f.fed(func() { ok, err = f.Units.Running(ctx, unit) })
	return ok, err
}

func (f fedUnits) Fence(ctx context.Context, unit, reason string) (err error) {
	f.fed(func() { err = f.Units.Fence(ctx, unit, reason) })
	return err
}

func (f fedUnits) Stop(ctx context.Context, unit string) (err error) {
	f.fed(func() { err = f.Units.Stop(ctx, unit) })
	return err
}

func (f fedUnits) Start(ctx context.Context, unit string) (err error) {
	f.fed(func() { err = f.Units.Start(ctx, unit) })
	return err
}

func (f fedUnits) Activated(ctx context.Context, unit string) (mark string, err error) {
	f.fed(func() { mark, err = f.Units.Activated(ctx, unit) })
	return mark, err
}
