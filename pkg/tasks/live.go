package tasks

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/hoctl/hoctl/pkg/format"
	"github.com/hoctl/hoctl/pkg/iostreams"
)

// liveReporter redraws the running step in place on a terminal: a spinner
// and elapsed time on the step's line, one short status per host under it.
// Finished steps stay on screen as one line each; a failed step is
// expanded with its hosts' output.
type liveReporter struct {
	plain *plainReporter
	io    *iostreams.IOStreams
	cs    *iostreams.ColorScheme

	mu      sync.Mutex
	step    int
	title   string
	started time.Time
	order   []string
	state   map[string]string
	drawn   int // lines of the live region on screen
	stop    chan struct{}
	done    chan struct{}
	frame   int
	total   int
}

var spinner = []string{"⠋", "⠙", "⠹", "⠸", "⠼", "⠴", "⠦", "⠧", "⠇", "⠏"}

func newLiveReporter(ios *iostreams.IOStreams, secrets []string) *liveReporter {
	cs := ios.ColorScheme()
	return &liveReporter{plain: &plainReporter{io: ios, w: ios.ErrOut, cs: cs, secrets: secrets}, io: ios, cs: cs}
}

func (r *liveReporter) Plan(p *Plan) { r.plain.Plan(p) }

func (r *liveReporter) RunStart(id string, rb *Runbook, from int) {
	r.total = len(rb.Steps)
	r.plain.RunStart(id, rb, from)
}

func (r *liveReporter) StepStart(i int, s *Step) {
	r.mu.Lock()
	r.step, r.title, r.started = i, s.Title, time.Now()
	r.order = s.hostNames()
	r.state = map[string]string{}
	for _, h := range r.order {
		r.state[h] = r.cs.Dim("waiting")
	}
	for _, h := range s.skipped() {
		r.order = append(r.order, h)
		r.state[h] = r.cs.Dim("skipped (when: false)")
	}
	r.drawn = 0
	r.stop, r.done = make(chan struct{}), make(chan struct{})
	r.mu.Unlock()
	go r.loop(r.stop, r.done)
}

func (r *liveReporter) loop(stop, done chan struct{}) {
	defer close(done)
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	for {
		r.mu.Lock()
		r.draw()
		r.mu.Unlock()
		select {
		case <-stop:
			return
		case <-t.C:
		}
	}
}

// draw rewrites the live region; r.mu is held.
func (r *liveReporter) draw() {
	var b strings.Builder
	if r.drawn > 0 {
		fmt.Fprintf(&b, "\x1b[%dA", r.drawn)
	}
	r.frame++
	fmt.Fprintf(&b, "\x1b[2K%s [%d/%d] %s %s\n", r.cs.Yellow(spinner[r.frame%len(spinner)]), r.step, r.total, r.title, r.cs.Dim(round(time.Since(r.started)).Truncate(100*time.Millisecond).String()))
	lines := 1
	// Many hosts: one summary line instead of a screenful.
	if len(r.order) > 12 {
		counts := map[string]int{}
		for _, h := range r.order {
			counts[stripANSI(r.state[h])]++
		}
		var parts []string
		for _, k := range slices.Sorted(maps.Keys(counts)) {
			parts = append(parts, fmt.Sprintf("%d %s", counts[k], k))
		}
		fmt.Fprintf(&b, "\x1b[2K    %s\n", strings.Join(parts, ", "))
		lines++
	} else {
		for _, h := range r.order {
			fmt.Fprintf(&b, "\x1b[2K    %s %s\n", r.cs.Host(h), r.state[h])
			lines++
		}
	}
	r.drawn = lines
	r.io.Lock()
	_, _ = r.io.ErrOut.Write([]byte(b.String()))
	r.io.Unlock()
}

func (r *liveReporter) clear() {
	if r.drawn == 0 {
		return
	}
	var b strings.Builder
	fmt.Fprintf(&b, "\x1b[%dA", r.drawn)
	for i := 0; i < r.drawn; i++ {
		b.WriteString("\x1b[2K\n")
	}
	fmt.Fprintf(&b, "\x1b[%dA", r.drawn)
	r.io.Lock()
	_, _ = r.io.ErrOut.Write([]byte(b.String()))
	r.io.Unlock()
	r.drawn = 0
}

func (r *liveReporter) HostEvent(_ int, _ *Step, ev HostEvent) {
	r.mu.Lock()
	defer r.mu.Unlock()
	switch {
	case ev.Running:
		r.state[ev.Host] = r.cs.Yellow(ev.Phase + "…")
	case ev.OK && ev.Output != nil && ev.Output.Note != "":
		r.state[ev.Host] = r.cs.Green(ev.Phase+" ✓") + " " + safe(oneLine(ev.Output.Note), r.plain.secrets)
	case ev.OK:
		r.state[ev.Host] = r.cs.Green(ev.Phase + " ✓")
	case interrupted(ev.Err):
		r.state[ev.Host] = r.cs.Yellow(ev.Phase + " " + StatusInterrupted)
	default:
		r.state[ev.Host] = r.cs.Red(ev.Phase + " ✗")
	}
	if !ev.Running && !ev.OK && !interrupted(ev.Err) {
		// Keep the failure for the expanded view.
		r.state[ev.Host+"\x00out"] = safe(errOutput(ev.Output, ev.Err), r.plain.secrets)
	}
}

func (r *liveReporter) Progress(_ int, host, msg string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.state != nil {
		r.state[host] = r.cs.Yellow("run… " + msg)
	}
}

func (r *liveReporter) StepEnd(i int, s *Step, status string, err error) {
	r.mu.Lock()
	stop, done := r.stop, r.done
	r.mu.Unlock()
	close(stop)
	<-done
	r.mu.Lock()
	defer r.mu.Unlock()
	r.clear()
	d := round(time.Since(r.started)).Truncate(time.Millisecond)
	w := r.io.ErrOut
	if status == StatusOK {
		fmt.Fprintf(w, "%s [%d/%d] %s %s\n", r.cs.SuccessIcon(), i, r.total, s.Title, r.cs.Dim(format.Duration(d)))
		return
	}
	fmt.Fprintf(w, "%s [%d/%d] %s: %s %s\n", r.cs.FailureIcon(), i, r.total, s.Title, statusText(status), r.cs.Dim(format.Duration(d)))
	for _, h := range r.order {
		fmt.Fprintf(w, "    %s %s\n", r.cs.Host(h), r.state[h])
		for _, l := range tailLines(r.state[h+"\x00out"], 8) {
			fmt.Fprintf(w, "        %s\n", l)
		}
	}
}

func (r *liveReporter) RunEnd(id, status string, err error, d time.Duration) {
	r.plain.RunEnd(id, status, err, d)
}

func stripANSI(s string) string {
	var b strings.Builder
	in := false
	for _, c := range s {
		switch {
		case c == '\x1b':
			in = true
		case in && (c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'):
			in = false
		case !in:
			b.WriteRune(c)
		}
	}
	return b.String()
}
