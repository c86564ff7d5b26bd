package cli

import (
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/hoctl/hoctl/pkg/format"
	"github.com/hoctl/hoctl/pkg/iostreams"
	"github.com/hoctl/hoctl/pkg/tasks"
)

// historyPrinter shows the journal: a list of runs (run events, or a
// table) and one run in full (its records as journaled, or every check
// and command with what it printed).
type historyPrinter interface {
	list(runs []*tasks.Summary, more bool, limit int, filtered bool, dir string) error
	run(id string, recs []tasks.Record) error
}

func newHistoryPrinter(ios *iostreams.IOStreams) historyPrinter {
	if ios.JSON {
		return jsonHistoryPrinter{ios}
	}
	return textHistoryPrinter{ios}
}

type jsonHistoryPrinter struct{ io *iostreams.IOStreams }

func (p jsonHistoryPrinter) list(runs []*tasks.Summary, _ bool, _ int, _ bool, _ string) error {
	for _, r := range runs {
		if err := p.io.Emit(runEntry{r}); err != nil {
			return err
		}
	}
	return nil
}

func (p jsonHistoryPrinter) run(_ string, recs []tasks.Record) error {
	for _, r := range recs {
		if err := p.io.Emit(r); err != nil {
			return err
		}
	}
	return nil
}

type textHistoryPrinter struct{ io *iostreams.IOStreams }

// list prints the runs as a table on stdout; an empty list, and a list
// cut at its limit, are said on stderr.
func (p textHistoryPrinter) list(runs []*tasks.Summary, more bool, limit int, filtered bool, dir string) error {
	io := p.io
	if len(runs) == 0 {
		if filtered {
			fmt.Fprintln(io.ErrOut, "no run matches")
		} else {
			fmt.Fprintf(io.ErrOut, "no runs journaled yet in %s\n", dir)
		}
		return nil
	}
	cs := io.OutColorScheme()
	var table [][]string
	for _, r := range runs {
		failed := "-"
		if r.FailedStep > 0 {
			failed = fmt.Sprintf("%d %s", r.FailedStep, r.FailedTitle)
		}
		table = append(table, []string{r.ID, safe(r.Command), r.Start.Local().Format(format.TimeFormat), colorStatus(cs, r.Status), safe(failed)})
	}
	if _, err := fmt.Fprint(io.Out, cs.Table("", false, []string{"RUN", "COMMAND", "START", "STATUS", "FAILED STEP"}, table)); err != nil {
		return err
	}
	if more {
		fmt.Fprintf(io.ErrOut, "the newest %d shown; older ones: -n N (0: all)\n", limit)
	}
	return nil
}

func (p textHistoryPrinter) run(id string, recs []tasks.Record) error {
	v := &runView{w: p.io.Out, cs: p.io.OutColorScheme()}
	v.header(id, tasks.Summarize(id, recs))
	for _, r := range recs {
		v.record(r)
	}
	return nil
}

func colorStatus(cs interface {
	Green(string) string
	Red(string) string
	Yellow(string) string
}, s string) string {
	switch s {
	case tasks.StatusOK:
		return cs.Green(s)
	case tasks.StatusRunning:
		return cs.Yellow(s)
	}
	return cs.Red(s)
}

// runView writes one run for people, record by record. Hosts a step
// named but never acted on (a serial step stopped by max_fail, a refused
// or interrupted step) are said to be not run, as the live view says.
type runView struct {
	w         io.Writer
	cs        *iostreams.ColorScheme
	stepHosts []string
	acted     map[string]bool
}

func (v *runView) header(id string, s *tasks.Summary) {
	w, cs := v.w, v.cs
	fmt.Fprintf(w, "%s %s\n", cs.Bold("run"), id)
	fmt.Fprintf(w, "  command    %s\n  runbook    %s\n  operator   %s\n  started    %s\n  result     %s\n",
		safe(s.Command), safe(s.Name), safe(s.Operator), s.Start.Local().Format(format.TimeFormat), colorStatus(cs, s.Status))
	if s.Error != "" {
		fmt.Fprintf(w, "  error      %s\n", safe(s.Error))
	}
	fmt.Fprintf(w, "  inventory  %s (sha256 %s)\n", s.InventoryPath, short(s.InventoryHash))
}

func (v *runView) record(r tasks.Record) {
	w, cs := v.w, v.cs
	switch r.Type {
	case "resume":
		fmt.Fprintf(w, "\n%s resumed at step %d by %s (pid %d)\n", r.Time.Local().Format(format.TimeFormat), r.FromStep, r.Operator, r.PID)
	case "step_start":
		v.stepHosts, v.acted = r.Hosts, map[string]bool{}
		fmt.Fprintf(w, "\n%s %d. %s  [%s]\n", r.Time.Local().Format(time.TimeOnly), r.Step, cs.Bold(safe(r.Title)), strings.Join(r.Hosts, ", "))
	case "check", "action", "undo":
		v.hostRecord(r)
	case "step_end":
		var notRun []string
		for _, h := range v.stepHosts {
			if !v.acted[h] {
				notRun = append(notRun, h)
			}
		}
		if len(notRun) > 0 && r.Status != tasks.StatusOK {
			fmt.Fprintf(w, "    %-6s %s\n", "", cs.Yellow("not run: "+strings.Join(notRun, ", ")))
		}
		fmt.Fprintf(w, "    → %s\n", colorStatus(cs, r.Status))
	case "run_end":
		fmt.Fprintf(w, "\n%s run ended: %s\n", r.Time.Local().Format(format.TimeFormat), colorStatus(cs, r.Status))
	}
}

// historyOKLines is how many lines of a successful action's output
// history shows from its head and from its tail: enough to see what it
// said, short enough that a long run stays readable (--json has it all).
const historyOKLines = 3

// hostRecord writes a check, action or undo on one host, with the output
// of a failure, and the head and tail of a successful action's.
func (v *runView) hostRecord(r tasks.Record) {
	w, cs := v.w, v.cs
	if r.Type == "action" {
		v.acted[r.Host] = true
	}
	phase := r.Phase
	if r.Type != "check" {
		phase = map[string]string{"action": "run", "undo": "undo"}[r.Type]
	}
	failed := r.OK != nil && !*r.OK
	mark := cs.Green("ok")
	switch {
	case r.Status == tasks.StatusInterrupted:
		mark = cs.Yellow("INTERRUPTED") // stopped by Ctrl-C: exit 130
	case failed:
		mark = cs.Red("FAILED")
	}
	code := ""
	if r.ExitCode != nil {
		code = fmt.Sprintf(" exit %d", *r.ExitCode)
	}
	fmt.Fprintf(w, "    %-6s %-8s %s%s %.0fms  %s\n", phase, r.Host, mark, code, r.Duration, safe(r.Cmd))
	if r.Output == "" || !failed && r.Type != "action" {
		return
	}
	// Hosts' output: escape sequences shown, not acted on.
	lines := strings.Split(safe(strings.TrimSpace(r.Output)), "\n")
	if !failed && len(lines) > 2*historyOKLines+1 {
		cut := len(lines) - 2*historyOKLines
		lines = append(append(lines[:historyOKLines:historyOKLines], fmt.Sprintf("… %d more lines …", cut)), lines[len(lines)-historyOKLines:]...)
	}
	for _, l := range lines {
		fmt.Fprintf(w, "             | %s\n", l)
	}
}
