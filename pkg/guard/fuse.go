package guard

import (
	"context"
	"fmt"
	"sync"
	"time"
)

// DefaultHandoff is how long the loop's own lease stop or fence has to
// issue its stop before the fuse stops the unit itself.
const DefaultHandoff = time.Second

// fuse is the lease's end as a timer of its own (attack F1). The loop is
// single-threaded and waits inside every call it makes: a fence (whose
// daemon-reload runs the host's generators), a status read, a start, a
// state save. Any of them can take long, and none may delay the stop due
// at the lease's end. So while the loop is in a step, the fuse is armed
// at the lease's end, and when it fires it stops the unit from its own
// goroutine, whatever the loop waits for; then again every Retry while
// the lease has run out and the loop is still in that step.
//
// Between its steps the loop waits too, outside any call of Units: it
// tells systemd it is alive, and logs. A notify socket whose queue is
// full while PID 1 runs a daemon-reload held it there (attack H3: any
// local user can fill that queue), with no step to arm the fuse: the
// server served 39 s beside the new primary. So between steps the fuse
// stays armed too: the loop's own timer acts at the lease's end, and if
// the loop has not begun a step by Handoff after it, the fuse stops the
// unit itself, then again every Retry until the loop is back. Once the
// lease has run out the loop wakes every Retry (a unit someone else
// started is stopped at the next); a loop not back in a step by Retry
// and Handoff after its last one is held, and the fuse stops the unit.
//
// The loop's own lease stop (it looks at the unit and stores the stop
// first, so that it can start the unit again at the confirmed
// ModifyIndex) runs in a step begun at or after the lease's end, and its
// fence follows an answer that ends the lease at once (endNow): the fuse
// gives either Handoff to issue its stop before it stops the unit
// itself. A stop or fence of the loop's own under way is the stop: the
// fuse does not stop the unit beside it (Units.Fence stops first, then
// reloads). A stop by the fuse is stored by no one: the guard does not
// start that unit again (a failover or the operator may).
//
// The fuse only stops: it never reads or changes the loop's state, and
// the loop tells it the lease's end and what it is doing under mu.
type fuse struct {
	clock   Clock
	retry   time.Duration
	handoff time.Duration
	// blow stops the unit (Units.Stop), logging; never called with mu
	// held: in the simulation it runs the clock on.
	blow func(first bool)

	mu       sync.Mutex
	end      time.Time // the lease's end
	busy     bool      // the loop is in a step
	since    time.Time // when that step began, or the loop's own stop in it ended; between steps, when the last one ended
	stopping time.Time // the loop's own stop or fence under way since (zero: none)
	blowing  bool      // the fuse's stop under way
	blown    bool      // the fuse stopped the unit in this step
	cancel   func() bool
	gen      int // each arming's own number: an older timer does nothing
}

func newFuse(clock Clock, retry, handoff time.Duration, blow func(first bool)) *fuse {
	return &fuse{clock: clock, retry: retry, handoff: handoff, blow: blow}
}

// set is the lease's new end.
func (f *fuse) set(end time.Time) {
	if f == nil {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.end = end
	f.arm(f.clock.Now())
}

// endNow ends the lease now, by the loop's own decision: it is about to
// stop (fence) the unit itself, and has Handoff to begin.
func (f *fuse) endNow() {
	if f == nil {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	now := f.clock.Now()
	f.end = now
	if f.busy {
		f.since = now
		f.arm(now)
	}
}

// enter: the loop begins a step; leave: it is back waiting, where its
// own timer acts at the lease's end, and the fuse Handoff after it.
func (f *fuse) enter() {
	if f == nil {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	now := f.clock.Now()
	since := now
	if f.since.Before(f.end) && !now.Before(f.end) {
		// Between steps when the lease ended: the loop's own timer
		// began this step then, or should have (a loop held between
		// its steps, then slow to begin, must not push the stop
		// later).
		since = f.end
	}
	f.busy, f.since, f.blown = true, since, false
	f.arm(now)
}

func (f *fuse) leave() {
	if f == nil {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	now := f.clock.Now()
	f.busy, f.stopping, f.since = false, time.Time{}, now
	f.arm(now)
}

// own marks the loop's own stop or fence of the unit, until the
// returned func is called.
func (f *fuse) own() func() {
	if f == nil {
		return func() {}
	}
	f.mu.Lock()
	f.stopping = f.clock.Now()
	f.mu.Unlock()
	return func() {
		f.mu.Lock()
		defer f.mu.Unlock()
		f.stopping = time.Time{}
		if f.busy {
			// Stopped just now: the rest of the step counts from here.
			now := f.clock.Now()
			f.since = now
			f.arm(now)
		}
	}
}

// due is when the fuse stops the unit if the loop has not: the lease's
// end, or Handoff after the start of a step begun after it (the loop's
// own lease stop looks at the unit and stores the stop first). While
// the loop's own stop or fence is under way, its call is the stop:
// the fuse looks again every Retry. Between steps, Handoff after the
// lease's end, for the loop's own timer to begin its step; or, after a
// step that ended past the lease's end, Handoff after the loop's next
// wake-up (Retry).
func (f *fuse) due() time.Time {
	switch {
	case !f.stopping.IsZero():
		return f.clock.Now().Add(f.retry)
	case !f.busy && !f.since.Before(f.end):
		return f.since.Add(f.retry + f.handoff)
	case !f.busy:
		return f.end.Add(f.handoff)
	case !f.since.Before(f.end):
		return f.since.Add(f.handoff)
	}
	return f.end
}

func (f *fuse) arm(now time.Time) {
	f.disarm()
	if f.end.IsZero() {
		return
	}
	f.gen++
	gen := f.gen
	f.cancel = f.clock.AfterFunc(f.due().Sub(now), func() { f.fire(gen) })
}

func (f *fuse) disarm() {
	if f.cancel != nil {
		f.cancel()
		f.cancel = nil
	}
}

func (f *fuse) fire(gen int) {
	f.mu.Lock()
	if gen != f.gen {
		f.mu.Unlock()
		return
	}
	now := f.clock.Now()
	if now.Before(f.due()) || f.blowing {
		if f.blowing {
			f.gen++
			gen := f.gen
			f.cancel = f.clock.AfterFunc(f.retry, func() { f.fire(gen) })
		} else {
			f.arm(now)
		}
		f.mu.Unlock()
		return
	}
	first := !f.blown
	f.blowing, f.blown = true, true
	f.mu.Unlock()

	f.blow(first)

	f.mu.Lock()
	defer f.mu.Unlock()
	f.blowing = false
	if gen == f.gen {
		f.gen++
		gen := f.gen
		f.cancel = f.clock.AfterFunc(f.retry, func() { f.fire(gen) })
	}
}

// blowFuse is the fuse's stop: the lease ran out while the loop waits in
// a call, or between its steps. It stops first and logs after: the loop
// may be the one waiting on the log (logMu, a stalled journal).
func (g *Guard) blowFuse(ctx context.Context) func(first bool) {
	return func(first bool) {
		err := g.Units.Stop(ctx, g.Unit)
		what := fmt.Sprintf("the lease ended (%s) while this guard waits in another call or between its steps: stopping %s from the lease's own timer (this guard will not start it again)", g.Lease, g.Unit)
		switch {
		case err != nil && ctx.Err() == nil:
			g.Log(Err, fmt.Sprintf("FAILED: %s: %v", what, err))
		case err == nil && first:
			g.Log(Warning, "done: "+what)
		}
	}
}
