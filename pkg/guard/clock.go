package guard

import (
	"context"
	"sync"
	"time"
)

// BootClock is CLOCK_BOOTTIME as a Clock. The lease must count the time
// a host spends suspended: Go's own timers and its monotonic clock
// (CLOCK_MONOTONIC) stop during a suspend, so a host resumed after a
// minute would still see the rest of its lease, and a timer set for the
// lease's end would fire that much late. Timers here re-read boottime
// at least every poll, so they fire at most poll after a resume.
type BootClock struct {
	base time.Time                     // the wall clock at boot, read once
	boot func() (time.Duration, error) // CLOCK_BOOTTIME (tests replace it)
	poll time.Duration
}

// bootPoll bounds how late a timer fires after a resume.
const bootPoll = 250 * time.Millisecond

// NewBootClock is the host's CLOCK_BOOTTIME.
func NewBootClock() *BootClock { return newBootClock(boottime, bootPoll) }

func newBootClock(boot func() (time.Duration, error), poll time.Duration) *BootClock {
	c := &BootClock{boot: boot, poll: poll}
	d, _ := boot()
	// Only for printing: every difference comes from boottime alone.
	c.base = time.Now().Round(0).Add(-d)
	return c
}

// Now implements Clock. If boottime cannot be read (it always can on
// Linux), it is the wall clock without its monotonic reading.
func (c *BootClock) Now() time.Time {
	d, err := c.boot()
	if err != nil {
		return time.Now().Round(0)
	}
	return c.base.Add(d)
}

// AfterFunc implements Clock: a Go timer for the rest of d, cut to poll,
// checked against boottime each time it fires.
func (c *BootClock) AfterFunc(d time.Duration, f func()) func() bool {
	at := c.Now().Add(d)
	var mu sync.Mutex
	stopped, fired := false, false
	var t *time.Timer
	var check func()
	check = func() {
		mu.Lock()
		defer mu.Unlock()
		if stopped {
			return
		}
		left := at.Sub(c.Now())
		if left > 0 {
			t = time.AfterFunc(min(left, c.poll), check)
			return
		}
		fired = true
		go f()
	}
	mu.Lock()
	t = time.AfterFunc(min(max(d, 0), c.poll), check)
	mu.Unlock()
	return func() bool {
		mu.Lock()
		defer mu.Unlock()
		if stopped || fired {
			return false
		}
		stopped = true
		t.Stop()
		return true
	}
}

// WithDeadline implements Clock: Go's deadline (its error is
// context.DeadlineExceeded), and a boottime timer for a suspend.
func (c *BootClock) WithDeadline(ctx context.Context, t time.Time) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithDeadline(ctx, time.Now().Add(t.Sub(c.Now())))
	stop := c.AfterFunc(t.Sub(c.Now()), cancel)
	return ctx, func() { stop(); cancel() }
}

// Boottime is t as CLOCK_BOOTTIME, for a time of this clock.
func (c *BootClock) Boottime(t time.Time) time.Duration { return t.Sub(c.base) }

// At is the time of this clock at boottime d.
func (c *BootClock) At(d time.Duration) time.Time { return c.base.Add(d) }
