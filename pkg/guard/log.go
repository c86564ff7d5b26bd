package guard

import (
	"fmt"
	"sync"
	"time"
)

// reporter keeps the journal to changes: a guard whose Consul is down
// for a day fails a read every second, and says so once, then every
// Summary, then once when Consul answers again.
type reporter struct {
	g *Guard

	failing      bool
	since        time.Time // the first failure of this outage
	failures     int       // reads failed since then
	lastErr      error
	lastSummary  time.Time
	sinceSummary int

	lastState string
	// onces is written from other goroutines than the loop's too: a
	// notify that fails while the loop waits in a systemctl call logs
	// from fedUnits' ticker (attack review 4, L1: a data race, which
	// Go's runtime may end as a fatal error, a guard lost).
	mu    sync.Mutex
	onces map[string]string
}

func (l *reporter) failed(err error) {
	now := l.g.Clock.Now()
	l.lastErr = err
	if !l.failing {
		l.failing, l.since, l.failures, l.lastSummary, l.sinceSummary = true, now, 0, now, 0
		l.lastState = ""
		l.g.Log(Warning, fmt.Sprintf("cannot read %s: %v (retried every %s; said again every %s while it lasts, and when Consul answers)", l.g.Key, err, l.g.Retry, l.g.Summary))
	}
	l.failures++
	l.sinceSummary++
	if now.Sub(l.lastSummary) >= l.g.Summary {
		l.g.Log(Warning, fmt.Sprintf("still cannot read %s: %d failed reads in the last %s, %d since %s; last error: %v",
			l.g.Key, l.sinceSummary, now.Sub(l.lastSummary).Round(time.Second), l.failures, l.since.UTC().Format(time.RFC3339), err))
		l.lastSummary, l.sinceSummary = now, 0
	}
}

func (l *reporter) answered() {
	if !l.failing {
		return
	}
	l.g.Log(Notice, fmt.Sprintf("Consul answers again, after %d failed reads over %s", l.failures, l.g.Clock.Now().Sub(l.since).Round(time.Millisecond)))
	l.failing, l.lastErr = false, nil
}

// state says what the guard sees when that changed.
func (l *reporter) state(r Reading, running bool) {
	msg := describe(r, l.g.Key)
	if running {
		msg += "; " + l.g.Unit + " runs"
	} else {
		msg += "; " + l.g.Unit + " is not running"
	}
	if msg != l.lastState {
		l.lastState = msg
		l.g.Log(Info, msg)
	}
}

// once logs msg unless it is what was last logged under key.
func (l *reporter) once(prio int, key, msg string) {
	l.mu.Lock()
	if l.onces == nil {
		l.onces = map[string]string{}
	}
	said := l.onces[key] == msg
	l.onces[key] = msg
	l.mu.Unlock()
	if !said {
		l.g.Log(prio, msg)
	}
}

// reset makes the next state and notes be said again (after an action).
func (l *reporter) reset() {
	l.lastState = ""
	l.mu.Lock()
	clear(l.onces)
	l.mu.Unlock()
}
