package failover

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/hoctl/hoctl/pkg/inventory"
	"github.com/hoctl/hoctl/pkg/tasks"
)

// Self-fencing (docs/failover.md#self-fencing): each NFS host runs
// `hoctl guard`, which lets the NFS unit run only while Consul confirmed,
// within the last GuardLease, that the owner key names the host. The
// lease is a constant of the protocol, not a setting, because a failover
// that declares a primary down has to wait it out without asking that
// primary (which cannot answer) what its lease is.
const (
	// GuardLease is how long an NFS unit may run after the last answer
	// from Consul naming its host as the owner.
	GuardLease = 15 * time.Second
	// GuardMargin is added to the lease before a new primary starts: the
	// old primary's guard needs a moment to stop its unit (ganesha stops
	// in under a second) and its clock may run a little slow.
	GuardMargin = 5 * time.Second
)

// GuardUnit is the systemd unit that runs `hoctl guard` for an NFS
// service on each of its hosts.
func GuardUnit(service string) string { return "hoctl-guard-" + service + ".service" }

// guardWaitStep is --primary-down's wait between moving the owner key and
// starting the new primary. A primary declared down may in truth be
// running and cut off (from this workstation, and from Consul): its guard
// cannot confirm ownership any more and stops its NFS unit within
// GuardLease of the last confirmation, whose request was sent before the
// key moved. Waiting GuardLease + GuardMargin from the moment the key's
// compare-and-set returned means such a primary has stopped serving
// before the new one starts. A primary that reaches Consul reads the
// moved key and fences itself; one that is hung serves nothing while
// hung, and its guard stops the unit as soon as it runs again (see
// docs/failover.md for the bound).
//
// Consul's own detection (its gossip marking the host failed, which
// takes it out of the passing instances) runs during the wait instead of
// before the run: the after check wants it done by the wait's end.
func (r *Run) guardWaitStep() *tasks.Step {
	wait := r.leaseWait()
	o := r.Opts
	return &tasks.Step{
		Title: fmt.Sprintf("wait out %s's guard lease: a cut-off %s stops serving by itself first", o.From, r.NFS.Unit),
		Action: &tasks.Func{Desc: fmt.Sprintf("wait until %s after the owner key moved (the lease of %s on %s, %s, plus %s)", wait, GuardUnit(o.Service), o.From, GuardLease, GuardMargin),
			Fn: func(ctx context.Context, _ *tasks.Env, _ *inventory.Host) (string, error) {
				if err := sleep(ctx, time.Until(r.leaseWaitEnd(time.Now()))); err != nil {
					return "", err
				}
				return fmt.Sprintf("waited %s since the owner key moved: %s's guard has stopped %s there if it runs at all", wait, o.From, r.NFS.Unit), nil
			}},
		After:      &tasks.Func{Desc: fmt.Sprintf("GET /v1/health/service/%s: no passing instance on %s", o.Service, o.From), Fn: r.notPassing(o.From)},
		Retries:    int(o.ConsulWait / time.Second),
		RetryDelay: time.Second,
	}
}

// leaseWaitEnd is when the new primary may start: GuardLease +
// GuardMargin after this run moved the owner key, or after now when the
// run does not know when that was (a resumed run).
func (r *Run) leaseWaitEnd(now time.Time) time.Time {
	r.mu.Lock()
	from := r.keyMoved
	r.mu.Unlock()
	if from.IsZero() || from.After(now) {
		from = now
	}
	return from.Add(r.leaseWait())
}

// leaseWait is Options.LeaseWait, GuardLease + GuardMargin by default.
func (r *Run) leaseWait() time.Duration {
	if r.Opts.LeaseWait > 0 {
		return r.Opts.LeaseWait
	}
	return GuardLease + GuardMargin
}

// sleep waits d, or until ctx ends.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// notPassing checks that Consul has no passing instance of the service
// on host.
func (r *Run) notPassing(host string) func(ctx context.Context, _ *tasks.Env, _ *inventory.Host) (string, error) {
	return func(ctx context.Context, _ *tasks.Env, _ *inventory.Host) (string, error) {
		passing, err := r.passing(ctx)
		if err != nil {
			return "", err
		}
		if slices.Contains(passing, host) {
			return "", fmt.Errorf("Consul still has a passing %s instance on %s", r.Opts.Service, host)
		}
		return "no passing instance on " + host, nil
	}
}

// passing is the service's passing instances, as Consul sees them now.
func (r *Run) passing(ctx context.Context) ([]string, error) {
	c, err := r.Consul(ctx)
	if err != nil {
		return nil, err
	}
	return c.Passing(ctx, r.Opts.Service)
}
