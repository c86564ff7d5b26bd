package cli

import (
	"fmt"
	"strings"
	"time"

	"github.com/hoctl/hoctl/pkg/iostreams"
	"github.com/hoctl/hoctl/pkg/tasks"
	"github.com/spf13/cobra"
)

// HistoryOptions are the inputs of `hoctl history`.
type HistoryOptions struct {
	F     *Factory
	RunID string
}

// NewCmdHistory lists journaled runs or shows one.
func NewCmdHistory(f *Factory, runF func(*HistoryOptions) error) *cobra.Command {
	opts := &HistoryOptions{F: f}
	return &cobra.Command{
		Use:   "history [RUN-ID]",
		Short: "List past runs from the journal, or show one in full",
		Args:  rangeArgs(0, 1),
		RunE: func(_ *cobra.Command, args []string) error {
			if len(args) == 1 {
				opts.RunID = args[0]
			}
			if runF != nil {
				return runF(opts)
			}
			return historyRun(opts)
		},
	}
}

func historyRun(opts *HistoryOptions) error {
	f := opts.F
	dir := tasks.StateDir(f.Getenv)
	if opts.RunID != "" {
		return showRun(f, dir, opts.RunID)
	}
	runs, err := tasks.History(dir)
	if err != nil {
		return err
	}
	if f.IO.JSON {
		for _, r := range runs {
			if err := f.IO.Event(r); err != nil {
				return err
			}
		}
		return nil
	}
	if len(runs) == 0 {
		fmt.Fprintf(f.IO.ErrOut, "no runs journaled yet in %s\n", dir)
		return nil
	}
	cs := f.IO.OutColorScheme()
	var table [][]string
	for _, r := range runs {
		failed := "-"
		if r.FailedStep > 0 {
			failed = fmt.Sprintf("%d %s", r.FailedStep, r.FailedTitle)
		}
		table = append(table, []string{r.ID, r.Command, r.Start.Local().Format(iostreams.TimeFormat), colorStatus(cs, r.Status), failed})
	}
	_, err = fmt.Fprint(f.IO.Out, cs.Table("", false, []string{"RUN", "COMMAND", "START", "RESULT", "FAILED STEP"}, table))
	return err
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

func showRun(f *Factory, dir, arg string) error {
	id, err := tasks.ResolveRunID(dir, arg)
	if err != nil {
		return err
	}
	recs, err := tasks.ReadJournal(dir, id)
	if err != nil {
		return err
	}
	if f.IO.JSON {
		for _, r := range recs {
			if err := f.IO.Event(r); err != nil {
				return err
			}
		}
		return nil
	}
	s := tasks.Summarize(id, recs)
	cs := f.IO.OutColorScheme()
	w := f.IO.Out
	fmt.Fprintf(w, "%s %s\n", cs.Bold("run"), id)
	fmt.Fprintf(w, "  command    %s\n  runbook    %s\n  operator   %s\n  started    %s\n  result     %s\n",
		s.Command, s.Name, s.Operator, s.Start.Local().Format(iostreams.TimeFormat), colorStatus(cs, s.Status))
	if s.Error != "" {
		fmt.Fprintf(w, "  error      %s\n", s.Error)
	}
	fmt.Fprintf(w, "  inventory  %s (sha256 %s)\n", s.InventoryPath, short(s.InventoryHash))
	for _, r := range recs {
		switch r.Type {
		case "resume":
			fmt.Fprintf(w, "\n%s resumed at step %d by %s (pid %d)\n", r.Time.Local().Format(iostreams.TimeFormat), r.FromStep, r.Operator, r.PID)
		case "step_start":
			fmt.Fprintf(w, "\n%s %d. %s  [%s]\n", r.Time.Local().Format(time.TimeOnly), r.Step, cs.Bold(r.Title), strings.Join(r.Hosts, ", "))
		case "check", "action", "undo":
			phase := r.Phase
			if r.Type != "check" {
				phase = map[string]string{"action": "run", "undo": "undo"}[r.Type]
			}
			mark := cs.Green("ok")
			if r.OK != nil && !*r.OK {
				mark = cs.Red("FAILED")
			}
			code := ""
			if r.ExitCode != nil {
				code = fmt.Sprintf(" exit %d", *r.ExitCode)
			}
			fmt.Fprintf(w, "    %-6s %-8s %s%s %.0fms  %s\n", phase, r.Host, mark, code, r.Duration, r.Cmd)
			if r.OK != nil && !*r.OK && r.Output != "" {
				for _, l := range strings.Split(strings.TrimSpace(r.Output), "\n") {
					fmt.Fprintf(w, "             | %s\n", l)
				}
			}
		case "step_end":
			fmt.Fprintf(w, "    → %s\n", colorStatus(cs, r.Status))
		case "run_end":
			fmt.Fprintf(w, "\n%s run ended: %s\n", r.Time.Local().Format(iostreams.TimeFormat), colorStatus(cs, r.Status))
		}
	}
	return nil
}

func short(h string) string {
	if len(h) > 12 {
		return h[:12]
	}
	return h
}
