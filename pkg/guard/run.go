package guard

import (
	"context"
	"fmt"
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
// its context.
func (g *Guard) Run(ctx context.Context) error {
	g.Log(Info, fmt.Sprintf("guarding %s on %s: it runs only while Consul's %s names %s (lease %s, checked every %s; a guard just started confirms within %s or stops it)%s",
		g.Unit, g.Host, g.Key, g.Host, g.Lease, g.Wait, g.StartGrace, map[bool]string{true: "; dry run: nothing is stopped or started"}[g.DryRun]))
	results := make(chan result, 1)
	wake := make(chan struct{}, 1)
	for ctx.Err() == nil {
		send, at := g.tick(ctx)
		if send != nil {
			rctx, cancel := g.Clock.WithDeadline(ctx, send.deadline)
			go func() {
				defer cancel()
				r, err := g.Consul.Owner(rctx, g.Key, send.index, send.wait)
				results <- result{send, r, err}
			}()
		}
		stop := func() bool { return false }
		if !at.IsZero() {
			stop = g.Clock.AfterFunc(at.Sub(g.Clock.Now()), func() {
				select {
				case wake <- struct{}{}:
				default:
				}
			})
		}
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

// RealClock is the machine's clock (monotonic within the process).
type RealClock struct{}

func (RealClock) Now() time.Time { return time.Now() }

func (RealClock) AfterFunc(d time.Duration, f func()) func() bool { return time.AfterFunc(d, f).Stop }

func (RealClock) WithDeadline(ctx context.Context, t time.Time) (context.Context, context.CancelFunc) {
	return context.WithDeadline(ctx, t)
}
