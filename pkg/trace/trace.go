// Package trace is what -v prints on stderr: how each host is reached,
// the commands sent and how long they took; -vv adds SSH protocol detail.
// Every line is redacted of the secrets registered so far, and callers
// never hand it what cannot be redacted (command input, tokens).
package trace

import (
	"fmt"
	"io"
	"strings"
	"sync"
	"time"
)

// Levels of detail, as counted by -v.
const (
	Verbose = 1 // connections, commands, timings
	Debug   = 2 // SSH protocol detail
)

// Log writes trace lines. A nil *Log is silent, so callers need not check.
type Log struct {
	w     io.Writer
	level int
	start time.Time

	mu      sync.Mutex
	secrets []string
}

// New returns a Log writing lines up to level to w; nil when level is 0.
func New(w io.Writer, level int) *Log {
	if level <= 0 {
		return nil
	}
	return &Log{w: w, level: level, start: time.Now()}
}

// Enabled reports whether lines of level are written.
func (l *Log) Enabled(level int) bool { return l != nil && l.level >= level }

// Secret registers values that must never appear: each is replaced by
// "***" in every later line.
func (l *Log) Secret(values ...string) {
	if l == nil {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, v := range values {
		if v != "" {
			l.secrets = append(l.secrets, v)
		}
	}
}

// Printf writes one line at level, prefixed with the time since the Log
// began, newlines inside it escaped so one event stays one line.
func (l *Log) Printf(level int, format string, args ...any) {
	if !l.Enabled(level) {
		return
	}
	msg := fmt.Sprintf(format, args...)
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, s := range l.secrets {
		msg = strings.ReplaceAll(msg, s, "***")
	}
	msg = strings.ReplaceAll(strings.TrimRight(msg, "\n"), "\n", `\n`)
	fmt.Fprintf(l.w, "[%7.3fs] %s\n", time.Since(l.start).Seconds(), msg)
}

// Since formats an elapsed time for a trace line.
func Since(t time.Time) string {
	d := time.Since(t)
	switch {
	case d < time.Millisecond:
		return "<1ms"
	case d < time.Second:
		return d.Round(time.Millisecond).String()
	}
	return d.Round(10 * time.Millisecond).String()
}
