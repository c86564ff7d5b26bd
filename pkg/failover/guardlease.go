package failover

import (
	"context"
	"fmt"
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
// GuardLease of the last confirmation, which came before the key moved.
// Waiting GuardLease + GuardMargin from here (after the key moved) means
// such a primary has stopped serving before the new one starts. A primary
// that is hung serves nothing while hung, and its guard stops the unit as
// soon as it runs again (see docs/failover.md for the bound).
func (r *Run) guardWaitStep() *tasks.Step {
	wait := GuardLease + GuardMargin
	return &tasks.Step{
		Title: fmt.Sprintf("wait out %s's guard lease: a cut-off %s stops serving by itself first", r.Opts.From, r.NFS.Unit),
		Action: &tasks.Func{Desc: fmt.Sprintf("wait %s (the lease of %s on %s, %s, plus %s)", wait, GuardUnit(r.Opts.Service), r.Opts.From, GuardLease, GuardMargin),
			Fn: func(ctx context.Context, _ *tasks.Env, _ *inventory.Host) (string, error) {
				t := time.NewTimer(wait)
				defer t.Stop()
				select {
				case <-ctx.Done():
					return "", ctx.Err()
				case <-t.C:
				}
				return fmt.Sprintf("waited %s since the owner key moved: %s's guard has stopped %s there if it runs at all", wait, r.Opts.From, r.NFS.Unit), nil
			}},
	}
}
