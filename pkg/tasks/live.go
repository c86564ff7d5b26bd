package tasks

import (
	"errors"
	"fmt"
	"maps"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/charmbracelet/x/ansi"
	"github.com/hoctl/hoctl/pkg/format"
	"github.com/hoctl/hoctl/pkg/iostreams"
	"golang.org/x/term"
)

// liveReporter redraws the running step in place on a terminal: a spinner
// and elapsed time on the step's line, one line per host under it saying
// what the host did so far (run ✓ · after…) and, while a command runs,
// the last line it printed. Finished steps stay on screen as one line
// each; a failed step is expanded with what happened on each host,
// its failures' output, and the hosts it never ran on.
type liveReporter struct {
	plain *plainReporter
	io    *iostreams.IOStreams
	cs    *iostreams.ColorScheme
	// width is the terminal's width (0: unknown): a redrawn line must not
	// wrap, or moving back up over the region would miss lines.
	width func() int

	mu      sync.Mutex
	step    int
	title   string
	started time.Time
	order   []string
	hosts   map[string]*liveHost
	drawn   int // lines of the live region on screen
	stop    chan struct{}
	done    chan struct{}
	frame   int
	total   int
}

// liveHost is what the live view knows of one host in the running step.
type liveHost struct {
	trail   []string // the phases that ended, shown: "run ✓", "after ✗"
	phases  []string // the phase of each trail entry
	now     string   // the phase running, shown ("run…"), or ""
	line    string   // the running command's last output line, or its progress
	status  string   // the latest phase's state without colour, for counts
	fails   []liveFailure
	ran     bool // the action started
	skipped bool
}

// liveFailure is the output of a phase that failed on a host.
type liveFailure struct{ phase, out string }

var spinner = []string{"⠋", "⠙", "⠹", "⠸", "⠼", "⠴", "⠦", "⠧", "⠇", "⠏"}

func newLiveReporter(ios *iostreams.IOStreams, secrets []string) *liveReporter {
	cs := ios.ColorScheme()
	return &liveReporter{plain: &plainReporter{io: ios, w: ios.ErrOut, cs: cs, secrets: secrets}, io: ios, cs: cs, width: func() int { return termWidth(ios) }}
}

// termWidth is the width of the terminal stderr is, or 0.
func termWidth(ios *iostreams.IOStreams) int {
	f, ok := ios.ErrOut.(*os.File)
	if !ok {
		return 0
	}
	w, _, err := term.GetSize(int(f.Fd()))
	if err != nil {
		return 0
	}
	return w
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
	r.hosts = map[string]*liveHost{}
	for _, h := range r.order {
		r.hosts[h] = &liveHost{status: "waiting"}
	}
	for _, h := range s.skipped() {
		r.order = append(r.order, h)
		r.hosts[h] = &liveHost{skipped: true, status: "skipped (when: false)"}
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

// text is what the view says of host h: its phases so far, then the one
// running with its last output line.
func (r *liveReporter) text(h *liveHost) string {
	if h.skipped {
		return r.cs.Dim("skipped (when: false)")
	}
	parts := slices.Clone(h.trail)
	if h.now != "" {
		now := h.now
		if h.line != "" {
			now += " " + r.cs.Dim(h.line)
		}
		parts = append(parts, now)
	}
	if len(parts) == 0 {
		return r.cs.Dim("waiting")
	}
	return strings.Join(parts, r.cs.Dim(" · "))
}

// fit cuts a line of the live region to the terminal's width.
func (r *liveReporter) fit(s string) string {
	if w := r.width(); w > 1 && ansi.StringWidth(s) >= w {
		return ansi.Truncate(s, w-1, "…")
	}
	return s
}

// draw rewrites the live region; r.mu is held.
func (r *liveReporter) draw() {
	var b strings.Builder
	if r.drawn > 0 {
		fmt.Fprintf(&b, "\x1b[%dA", r.drawn)
	}
	r.frame++
	fmt.Fprintf(&b, "\x1b[2K%s\n", r.fit(fmt.Sprintf("%s [%d/%d] %s %s", r.cs.Yellow(spinner[r.frame%len(spinner)]), r.step, r.total, r.title, r.cs.Dim(round(time.Since(r.started)).Truncate(100*time.Millisecond).String()))))
	lines := 1
	// Many hosts: one summary line instead of a screenful.
	if len(r.order) > 12 {
		counts := map[string]int{}
		for _, h := range r.order {
			counts[r.hosts[h].status]++
		}
		var parts []string
		for _, k := range slices.Sorted(maps.Keys(counts)) {
			parts = append(parts, fmt.Sprintf("%d %s", counts[k], k))
		}
		fmt.Fprintf(&b, "\x1b[2K%s\n", r.fit("    "+strings.Join(parts, ", ")))
		lines++
	} else {
		for _, h := range r.order {
			fmt.Fprintf(&b, "\x1b[2K%s\n", r.fit(fmt.Sprintf("    %s %s", r.cs.Host(h), r.text(r.hosts[h]))))
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
	h := r.hosts[ev.Host]
	if h == nil || ev.Phase == "when" {
		return
	}
	if ev.Running {
		// A retried check replaces its failed attempt.
		for k := len(h.trail) - 1; k >= 0 && h.phases[k] == ev.Phase; k-- {
			h.trail, h.phases = h.trail[:k], h.phases[:k]
		}
		h.fails = slices.DeleteFunc(h.fails, func(f liveFailure) bool { return f.phase == ev.Phase })
		h.now, h.line, h.status = r.cs.Yellow(ev.Phase+"…"), "", ev.Phase+"…"
		if ev.Attempt > 1 {
			h.now += r.cs.Dim(fmt.Sprintf(" (attempt %d)", ev.Attempt))
		}
		if ev.Phase == "run" {
			h.ran = true
		}
		return
	}
	var shown string
	switch {
	case ev.OK && ev.Output != nil && ev.Output.Note != "":
		h.status = ev.Phase + " ✓"
		shown = r.cs.Green(h.status) + " " + safe(oneLine(ev.Output.Note), r.plain.secrets)
	case ev.OK:
		h.status = ev.Phase + " ✓"
		shown = r.cs.Green(h.status)
	case interrupted(ev.Err):
		h.status = ev.Phase + " " + StatusInterrupted
		shown = r.cs.Yellow(h.status)
	default:
		h.status = ev.Phase + " ✗"
		shown = r.cs.Red(h.status)
		// Kept for the expanded view.
		h.fails = append(h.fails, liveFailure{ev.Phase, safe(errOutput(ev.Output, ev.Err), r.plain.secrets)})
	}
	h.trail, h.phases = append(h.trail, shown), append(h.phases, ev.Phase)
	h.now, h.line = "", ""
}

// HostLine shows line, the last line a host's running command printed
// (already sanitised by hostout), on the host's row.
func (r *liveReporter) HostLine(_ int, host, line string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if h := r.hosts[host]; h != nil && h.now != "" {
		h.line = Redact(line, r.plain.secrets)
	}
}

func (r *liveReporter) Progress(_ int, host, msg string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if h := r.hosts[host]; h != nil && h.now != "" {
		h.line = safe(msg, r.plain.secrets)
	}
}

// notRunWhy says why a failed step left a host alone.
func notRunWhy(status string, err error) string {
	var se *StepError
	var ue *UnverifiedError
	switch {
	case errors.As(err, &se) && se.NotRun > 0:
		return fmt.Sprintf("more than max_fail %d failed", se.MaxFail)
	case errors.As(err, &ue) && ue.NotRun > 0:
		return fmt.Sprintf("more than max_fail %d failed", ue.MaxFail)
	case status == StatusRefused:
		return "the step refused to start"
	case status == StatusInterrupted:
		return StatusInterrupted
	}
	return ""
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
	why := notRunWhy(status, err)
	for _, name := range r.order {
		h := r.hosts[name]
		text := r.text(h)
		if !h.ran && !h.skipped && h.now == "" {
			// What the journal says of it: no action record. Never
			// "waiting" for a step that is over.
			notRun := "not run"
			if why != "" {
				notRun += " (" + why + ")"
			}
			if len(h.trail) == 0 {
				text = r.cs.Yellow(notRun)
			} else {
				text += r.cs.Dim(" · ") + r.cs.Yellow(notRun)
			}
		}
		fmt.Fprintf(w, "    %s %s\n", r.cs.Host(name), text)
		for _, f := range h.fails {
			for _, l := range tailLines(f.out, 8) {
				fmt.Fprintf(w, "        %s %s\n", r.cs.Dim(f.phase+":"), l)
			}
		}
	}
}

func (r *liveReporter) RunEnd(id, status string, err error, d time.Duration) {
	r.plain.RunEnd(id, status, err, d)
}
