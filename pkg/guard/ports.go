package guard

// What the guard talks to and keeps: Consul's answers, systemd, its
// clock and its state across restarts. Each has a real implementation
// (consul.go, systemd.go, clock.go, state.go) and the simulation's fake.

import (
	"context"
	"time"
)

// Reading is one answer of Consul about the owner key.
type Reading struct {
	Owner string // the key's value
	Found bool   // false: the key does not exist
	Index uint64 // X-Consul-Index, for the next blocking query
	// ModifyIndex is the key's own: it changes with every write, so an
	// unchanged ModifyIndex means nobody wrote the key in between.
	ModifyIndex uint64
}

// Consul is what the guard asks Consul.
type Consul interface {
	// Owner reads key consistently (through the Raft leader). With index
	// > 0 it is a blocking query: it returns when the key's index passes
	// index or after about wait. It returns when ctx ends.
	Owner(ctx context.Context, key string, index uint64, wait time.Duration) (Reading, error)
}

// Units is what the guard does to systemd.
type Units interface {
	// Running says whether unit is active (or activating, reloading).
	Running(ctx context.Context, unit string) (bool, error)
	// Fence stops unit, then writes the fence drop-in
	// (failover.FenceDropIn) and reloads systemd: nothing starts it
	// again until the drop-in is removed (hoctl failover back to this
	// host does). The stop comes first: a reload runs the host's
	// generators and can take as long as they do, and the guard's fuse
	// does not stop the unit beside the guard's own fence.
	Fence(ctx context.Context, unit, reason string) error
	// Stop stops unit without a fence.
	Stop(ctx context.Context, unit string) error
	// Start queues a start of unit and returns without waiting for it
	// (systemctl start --no-block): a start can take minutes (the unit's
	// own start commands), and the lease's end and a move of the key
	// must be acted on meanwhile. The unit's own start check still
	// decides; later looks (Running) see how the start goes.
	Start(ctx context.Context, unit string) error
	// Activated is a mark that grows whenever unit becomes active
	// (systemd's ActiveEnterTimestampMonotonic; 0 for a unit systemd
	// unloaded): whether someone else started it since the lease stop,
	// even if they stopped it again between two looks of the guard.
	Activated(ctx context.Context, unit string) (string, error)
}

// Clock is the guard's only source of time.
type Clock interface {
	Now() time.Time
	// AfterFunc calls f in its own goroutine once d has passed (at once
	// when d <= 0); stop cancels it if it has not run.
	AfterFunc(d time.Duration, f func()) (stop func() bool)
	// WithDeadline is context.WithDeadline on this clock.
	WithDeadline(ctx context.Context, t time.Time) (context.Context, context.CancelFunc)
}

// Stored is what a guard keeps for the next guard on the same host (a
// restart, an upgrade): without it a restarted guard would know neither
// how old its lease is nor at which ModifyIndex it may start the unit.
type Stored struct {
	// LeaseEnd is when the unit has to stop. A guard just started keeps
	// the sooner of it and its own start + StartGrace, and stores that
	// at once: guards restarted again and again cannot stretch it.
	LeaseEnd time.Time
	// Confirmed is the send time of the newest request whose answer
	// named this host (zero: none).
	Confirmed time.Time
	// ModifyIndex is that answer's ModifyIndex of the key.
	ModifyIndex uint64
	// LeaseStopped: the guard stopped the unit when the lease ran out,
	// and starts it again only at ModifyIndex.
	LeaseStopped bool
	// Answered is the send time of the newest request Consul answered
	// (whatever it named): hoctl status reads it to tell a guard that
	// works from one that is wedged or cut off.
	Answered time.Time
	// StopMark is Units.Activated just after the lease stop: another
	// one means someone else started the unit since.
	StopMark string
	// Index is the last X-Consul-Index seen. One below it is a snapshot
	// restore, which can put the key back at an old ModifyIndex after
	// it was written since: that drops a lease stop's start.
	Index uint64
}

// State keeps Stored across restarts of the guard (FileState on a host).
type State interface {
	Load() (Stored, bool, error)
	Save(Stored) error
}
