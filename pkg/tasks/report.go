package tasks

import (
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/hoctl/hoctl/pkg/format"
	"github.com/hoctl/hoctl/pkg/hostout"
	"github.com/hoctl/hoctl/pkg/iostreams"
)

// HostEvent is progress of one check or action on one host.
type HostEvent struct {
	Host    string
	Phase   string // before, run, after, undo
	Cmd     string
	Running bool // started; a second event says how it ended
	OK      bool
	Output  *Output
	Err     error
	Attempt int
}

// Reporter shows a run to the operator.
type Reporter interface {
	Plan(p *Plan)
	RunStart(id string, rb *Runbook, from int)
	StepStart(i int, s *Step)
	HostEvent(i int, s *Step, ev HostEvent)
	StepEnd(i int, s *Step, status string, err error)
	RunEnd(id, status string, err error, d time.Duration)
	// Progress reports a long action's progress on a host ("120 MiB,
	// 45 MiB/s"); it may be called often and is shown at a sane rate.
	Progress(i int, host, msg string)
}

// NewReporter picks the reporter for the streams: JSON events, a live
// view on a terminal, or plain lines. Secrets are redacted from all of
// them.
func NewReporter(ios *iostreams.IOStreams, secrets []string) Reporter {
	switch {
	case ios.JSON:
		return &jsonReporter{io: ios, secrets: secrets}
	case ios.IsStderrTTY() && ios.ColorEnabled():
		return newLiveReporter(ios, secrets)
	default:
		return &plainReporter{io: ios, w: ios.ErrOut, cs: ios.ColorScheme(), secrets: secrets}
	}
}

// PrintPlan writes a plan as text: each step, its hosts and the exact
// commands, with the before checks that ran marked.
func PrintPlan(w io.Writer, cs *iostreams.ColorScheme, p *Plan, secrets []string) {
	fmt.Fprintf(w, "%s %s\n", cs.Bold("Plan:"), p.Name)
	for _, s := range p.Steps {
		extra := ""
		if s.Confirm {
			extra += cs.Yellow("  [asks to confirm]")
		}
		if s.Serial > 0 {
			extra += cs.Dim(fmt.Sprintf("  [serial %d]", s.Serial))
		}
		fmt.Fprintf(w, "\n%s %s%s\n", cs.Bold(fmt.Sprintf("%d.", s.Index)), s.Title, extra)
		// Hosts running the same commands are listed together.
		type group struct {
			hosts []string
			items []PlanItem
		}
		var groups []*group
		byCmd := map[string]*group{}
		for _, it := range s.Items {
			key := it.Before + "\x00" + it.Run + "\x00" + it.After + "\x00" + it.Undo
			g := byCmd[key]
			if g == nil {
				g = &group{}
				byCmd[key] = g
				groups = append(groups, g)
			}
			g.hosts = append(g.hosts, it.Host)
			g.items = append(g.items, it)
		}
		for _, g := range skipGroups(s.Skipped) {
			fmt.Fprintf(w, "   %s %s: %s\n", cs.Dim("skipped on"), strings.Join(g.hosts, ", "), safe(g.reason, secrets))
		}
		for _, g := range groups {
			it := g.items[0]
			fmt.Fprintf(w, "   %s %s\n", cs.Dim("on"), strings.Join(g.hosts, ", "))
			if it.Before != "" {
				planField(w, "before", safe(it.Before, secrets))
				for _, x := range g.items {
					switch {
					case x.NotCheckedWhy != "":
						fmt.Fprintf(w, "             %s %s: not checked now (%s)\n", cs.Dim("·"), x.Host, x.NotCheckedWhy)
					case x.BeforeChecked && x.BeforeOK:
						fmt.Fprintf(w, "             %s %s: passes now\n", cs.SuccessIcon(), x.Host)
					case x.BeforeChecked:
						lines := firstLines(x.BeforeOutput, 3)
						fmt.Fprintf(w, "             %s %s: FAILS now: %s\n", cs.FailureIcon(), x.Host, safe(lines[0], secrets))
						for _, l := range lines[1:] {
							fmt.Fprintf(w, "               %s\n", safe(l, secrets))
						}
					}
				}
			}
			planField(w, "run", safe(it.Run, secrets))
			if it.After != "" {
				planField(w, "after", safe(it.After, secrets))
			}
			if it.Undo != "" {
				planField(w, "undo", safe(it.Undo, secrets))
			}
		}
	}
	fmt.Fprintln(w)
	for _, warn := range p.Warnings {
		fmt.Fprintf(w, "%s %s\n", cs.Yellow("warning:"), warn)
	}
	if p.Failing > 0 {
		fmt.Fprintf(w, "%s %d before check(s) fail now\n", cs.FailureIcon(), p.Failing)
	} else {
		fmt.Fprintf(w, "%s every before check that can run now passes\n", cs.SuccessIcon())
	}
}

// safe is text for a human: secrets redacted, then terminal sequences
// from hosts made visible instead of acted on.
func safe(s string, secrets []string) string {
	return hostout.Sanitize(Redact(s, secrets))
}

// planField prints one of a step's commands under its label; the lines
// of a multi-line command (a YAML block) after the first stay in its
// column, and the block's final newline adds no empty line.
func planField(w io.Writer, label, cmd string) {
	const indent = "             " // "     " + a label of 8
	lines := strings.Split(strings.TrimRight(cmd, "\n"), "\n")
	fmt.Fprintf(w, "     %-8s%s\n", label, lines[0])
	for _, l := range lines[1:] {
		if l == "" {
			fmt.Fprintln(w)
			continue
		}
		fmt.Fprintf(w, "%s%s\n", indent, l)
	}
}

// firstLines is a failing check's output for the plan: its first n
// non-blank lines (a command says what went wrong first; hoctl's own
// "Run '... --help' for usage." comes after the error), each cut as
// oneLine cuts, then how many lines more there are.
func firstLines(s string, n int) []string {
	var out []string
	more := 0
	for _, l := range strings.Split(s, "\n") {
		if strings.TrimSpace(l) == "" {
			continue
		}
		if len(out) == n {
			more++
			continue
		}
		out = append(out, oneLine(l))
	}
	if len(out) == 0 {
		return []string{""}
	}
	if more > 0 {
		word := "lines"
		if more == 1 {
			word = "line"
		}
		out = append(out, fmt.Sprintf("… %d more %s (--json shows them all)", more, word))
	}
	return out
}

func oneLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		s = s[i+1:]
	}
	if len(s) > 200 {
		s = s[:200] + "…"
	}
	return s
}

// plainReporter writes one line per event: for logs, pipes and NO_COLOR.
type plainReporter struct {
	io      *iostreams.IOStreams
	w       io.Writer
	cs      *iostreams.ColorScheme
	secrets []string
	mu      sync.Mutex
	start   map[int]time.Time
	total   int
	// resumable and retry: what RunEnd says to do after a failure.
	resumable bool
	retry     string

	lastProgress time.Time
}

func (r *plainReporter) Plan(p *Plan) { PrintPlan(r.w, r.cs, p, r.secrets) }

func (r *plainReporter) RunStart(id string, rb *Runbook, from int) {
	r.total = len(rb.Steps)
	r.start = map[int]time.Time{}
	r.resumable, r.retry = rb.Resumable, rb.Retry
	verb := "run"
	if from > 1 {
		verb = fmt.Sprintf("resuming at step %d", from)
	}
	fmt.Fprintf(r.w, "%s %s %s (%s)\n", r.cs.Bold("▶"), rb.Name, verb, id)
}

func (r *plainReporter) StepStart(i int, s *Step) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.start[i] = time.Now()
	fmt.Fprintf(r.w, "[%d/%d] %s (%s)\n", i, r.total, s.Title, strings.Join(s.hostNames(), ", "))
}

func (r *plainReporter) HostEvent(_ int, _ *Step, ev HostEvent) {
	if ev.Running {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if ev.Phase == "when" {
		fmt.Fprintf(r.w, "  %s %s skipped: %s\n", r.cs.Dim("·"), ev.Host, safe(oneLine(ev.Cmd), r.secrets))
		return
	}
	icon := r.cs.SuccessIcon()
	if !ev.OK {
		icon = r.cs.FailureIcon()
	}
	d := ""
	if ev.Output != nil {
		d = " " + r.cs.Dim(format.Duration(ev.Output.Duration))
	}
	attempt := ""
	if ev.Attempt > 1 {
		attempt = fmt.Sprintf(" (attempt %d)", ev.Attempt)
	}
	note := ""
	if ev.OK && ev.Output != nil && ev.Output.Note != "" {
		note = ": " + safe(oneLine(ev.Output.Note), r.secrets)
	}
	if interrupted(ev.Err) {
		// Said once on the host's line; the run's end says the rest.
		note = ": " + StatusInterrupted
	}
	fmt.Fprintf(r.w, "  %s %s %s%s%s%s\n", icon, ev.Host, ev.Phase, attempt, d, note)
	if !ev.OK && !interrupted(ev.Err) {
		for _, l := range tailLines(safe(errOutput(ev.Output, ev.Err), r.secrets), 8) {
			fmt.Fprintf(r.w, "      %s\n", l)
		}
	}
}

func (r *plainReporter) StepEnd(i int, s *Step, status string, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	d := round(time.Since(r.start[i]))
	if status == StatusOK {
		fmt.Fprintf(r.w, "%s [%d/%d] %s %s\n", r.cs.SuccessIcon(), i, r.total, s.Title, r.cs.Dim(format.Duration(d)))
		return
	}
	fmt.Fprintf(r.w, "%s [%d/%d] %s: %s %s\n", r.cs.FailureIcon(), i, r.total, s.Title, statusText(status), r.cs.Dim(format.Duration(d)))
}

func (r *plainReporter) RunEnd(id, status string, err error, d time.Duration) {
	if status == StatusOK {
		fmt.Fprintf(r.w, "%s done in %s (run %s)\n", r.cs.SuccessIcon(), round(d), id)
		return
	}
	if interrupted(err) {
		fmt.Fprintf(r.w, "%s %s (run %s)\n", r.cs.FailureIcon(), statusText(status), id)
	} else {
		fmt.Fprintf(r.w, "%s %s (run %s): %s\n", r.cs.FailureIcon(), statusText(status), id, safe(errString(err), r.secrets))
	}
	switch {
	case status == StatusNotConfirmed:
	case r.resumable:
		fmt.Fprintf(r.w, "  see: hoctl history %s; continue with: hoctl resume %s\n", id, id)
	case r.retry != "":
		fmt.Fprintf(r.w, "  see: hoctl history %s; this run cannot be resumed: %s\n", id, r.retry)
	default:
		fmt.Fprintf(r.w, "  see: hoctl history %s\n", id)
	}
}

func (r *plainReporter) Progress(_ int, host, msg string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if time.Since(r.lastProgress) < 2*time.Second {
		return
	}
	r.lastProgress = time.Now()
	fmt.Fprintf(r.w, "  … %s %s\n", host, msg)
}

func statusText(s string) string {
	switch s {
	case StatusRefused:
		return "refused (before check failed; nothing changed)"
	case StatusUnverified:
		return "changed but not verified (after check failed)"
	case "continued":
		return "failed (continuing: continue_on_error)"
	case StatusNotConfirmed:
		return "not confirmed"
	}
	return s
}

func round(d time.Duration) time.Duration {
	switch {
	case d > time.Second:
		return d.Round(100 * time.Millisecond)
	case d > time.Millisecond:
		return d.Round(time.Millisecond)
	}
	return d.Round(time.Microsecond)
}

func tailLines(s string, n int) []string {
	s = strings.TrimSpace(s)
	if s == "" {
		return nil
	}
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return lines
}

// jsonReporter emits one JSON object per event on stdout.
type jsonReporter struct {
	io      *iostreams.IOStreams
	secrets []string
	last    time.Time
}

// jsonEvent is a journal Record: live events and the journal share one
// schema (docs/json.md).
type jsonEvent = Record

// EventKind is the record's kind: a Record is every run event's one type.
func (r Record) EventKind() string { return r.Type }

func (r *jsonReporter) emit(ev jsonEvent) {
	ev.Time = time.Now().UTC()
	ev.Cmd = Redact(ev.Cmd, r.secrets)
	ev.Output = clip(Redact(ev.Output, r.secrets), MaxRecordOutput)
	ev.Error = Redact(ev.Error, r.secrets)
	_ = r.io.Emit(ev)
}

func (r *jsonReporter) Plan(p *Plan) {
	// Plans carry commands; redact them by round-tripping through text.
	cp := *p
	cp.Steps = make([]PlanStep, len(p.Steps))
	for i, s := range p.Steps {
		cs := s
		cs.Items = make([]PlanItem, len(s.Items))
		for k, it := range s.Items {
			it.Before, it.Run, it.After, it.Undo = Redact(it.Before, r.secrets), Redact(it.Run, r.secrets), Redact(it.After, r.secrets), Redact(it.Undo, r.secrets)
			it.BeforeOutput = Redact(it.BeforeOutput, r.secrets)
			cs.Items[k] = it
		}
		cp.Steps[i] = cs
	}
	r.emit(jsonEvent{Type: "plan", Plan: &cp})
}

func (r *jsonReporter) RunStart(id string, rb *Runbook, from int) {
	r.emit(jsonEvent{Type: "run_start", Run: id, Name: rb.Name, FromStep: from, Kind: rb.Kind, Retry: rb.Retry})
}

func (r *jsonReporter) StepStart(i int, s *Step) {
	r.emit(jsonEvent{Type: "step_start", Step: i, Title: s.Title, Hosts: s.hostNames()})
}

func (r *jsonReporter) HostEvent(i int, _ *Step, ev HostEvent) {
	if ev.Running {
		return
	}
	ok := ev.OK
	je := jsonEvent{Type: "check", Step: i, Host: ev.Host, Phase: ev.Phase, Cmd: ev.Cmd, OK: &ok, Error: errString(ev.Err)}
	if ev.Phase == "run" || ev.Phase == "undo" {
		// As journaled: an action or undo record, no phase.
		je.Type, je.Phase = ev.Phase, ""
		if ev.Phase == "run" {
			je.Type = "action"
		}
	}
	if ev.Output != nil {
		if !ev.Output.NoExit {
			code := ev.Output.ExitCode
			je.ExitCode = &code
		}
		je.Duration = ms(ev.Output.Duration)
		// Redacted (in emit) before it is clipped.
		je.Output = strings.TrimSpace(ev.Output.Stdout + "\n" + ev.Output.Stderr)
	}
	markInterrupted(&je, ev.Err)
	r.emit(je)
}

func (r *jsonReporter) StepEnd(i int, s *Step, status string, err error) {
	r.emit(jsonEvent{Type: "step_end", Step: i, Title: s.Title, Status: status, Error: errString(err)})
}

func (r *jsonReporter) Progress(i int, host, msg string) {
	if time.Since(r.last) < time.Second {
		return
	}
	r.last = time.Now()
	r.emit(jsonEvent{Type: "progress", Step: i, Host: host, Output: msg})
}

func (r *jsonReporter) RunEnd(id, status string, err error, d time.Duration) {
	r.emit(jsonEvent{Type: "run_end", Run: id, Status: status, Error: errString(err), Duration: ms(d)})
}

type skipGroup struct {
	reason string
	hosts  []string
}

// skipGroups lists skipped hosts by reason, in order.
func skipGroups(skips []PlanSkip) []*skipGroup {
	var out []*skipGroup
	by := map[string]*skipGroup{}
	for _, sk := range skips {
		g := by[sk.Reason]
		if g == nil {
			g = &skipGroup{reason: sk.Reason}
			by[sk.Reason] = g
			out = append(out, g)
		}
		g.hosts = append(g.hosts, sk.Host)
	}
	return out
}
