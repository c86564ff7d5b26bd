package guard

import (
	"context"
	"fmt"
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
// its context. The loop turns at least every Heartbeat, and tells
// systemd so (WATCHDOG=1): a guard wedged anywhere, or stopped
// (SIGSTOP), is killed by systemd's watchdog and started again, and
// the guard after it finds the lease as this one stored it.
func (g *Guard) Run(ctx context.Context) error {
	g.Log(Info, fmt.Sprintf("guarding %s on %s: it runs only while Consul's %s names %s (lease %s, checked every %s; a guard just started confirms within %s or stops it)%s",
		g.Unit, g.Host, g.Key, g.Host, g.Lease, g.Wait, g.StartGrace, map[bool]string{true: "; dry run: nothing is stopped or started"}[g.DryRun]))
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
