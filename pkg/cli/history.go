package cli

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/hoctl/hoctl/pkg/format"
	"github.com/hoctl/hoctl/pkg/hostout"
	"github.com/hoctl/hoctl/pkg/tasks"
)

// HistoryOptions are the inputs of `hoctl history`.
type HistoryOptions struct {
	F      *Factory
	RunID  string
	Limit  int
	Failed bool
	Kind   string
	Since  string

	limitSet bool
}

// historyTTYLimit is how many runs a terminal gets without -n/--max.
const historyTTYLimit = 20

var runKinds = []string{"runbook", "failover", "deploy", "replicate", "migrate-jobs"}

// NewCmdHistory lists journaled runs or shows one.
func NewCmdHistory(f *Factory, runF func(*HistoryOptions) error) *cobra.Command {
	opts := &HistoryOptions{F: f}
	cmd := &cobra.Command{
		Use:   "history [RUN-ID|last] [-n N] [--failed] [--kind K] [--since T]",
		Short: "List past runs from the journal, or show one in full",
		Long: `Without RUN-ID, list journaled runs, newest first: on a terminal the
newest 20 unless -n/--max says otherwise (-n 0: all), everything when
piped. (--limit, a count here but a TARGET everywhere else, still works as
-n for now, with a warning.) --failed keeps runs that did not end ok, --kind one kind of run
(runbook, failover, deploy, replicate, migrate-jobs), --since those
started within a duration (24h) or since a date (2026-11-30, or RFC 3339).

With RUN-ID, show that run in full: every check and command, with the
output of failures, and the hosts a failed step never ran. RUN-ID is
"last", or any part of an id that names one run: a prefix, or its random
suffix (hoctl history a68917); text several runs match lists them (exit 2).
See docs/runbooks.md.`,
		Args: rangeArgs(0, 1),
		RunE: func(c *cobra.Command, args []string) error {
			if len(args) == 1 {
				opts.RunID = args[0]
			}
			opts.limitSet = c.Flags().Changed("max") || c.Flags().Changed("limit")
			if c.Flags().Changed("max") && c.Flags().Changed("limit") {
				return usagef("-n/--max and --limit are the same count (--limit is its old name): give -n only")
			}
			if opts.Limit < 0 {
				return usagef("-n/--max %d: expected 0 (all) or more", opts.Limit)
			}
			if c.Flags().Changed("limit") {
				fmt.Fprintln(f.IO.ErrOut, "warning: history --limit is now -n/--max (--limit is a TARGET in deploy, runbook and resume); --limit will go")
			}
			if opts.Kind != "" && !slices.Contains(runKinds, opts.Kind) {
				return usagef("--kind %q: expected one of %s", opts.Kind, strings.Join(runKinds, ", "))
			}
			if opts.RunID != "" && (opts.limitSet || opts.Failed || opts.Kind != "" || opts.Since != "") {
				return usagef("-n/--max, --failed, --kind and --since select runs to list, not what to show of run %s", opts.RunID)
			}
			if runF != nil {
				return runF(opts)
			}
			return historyRun(opts)
		},
	}
	cmd.Flags().IntVarP(&opts.Limit, "max", "n", 0, "list at most N runs (default 20 on a terminal, all when piped; 0: all)")
	// --limit is a TARGET everywhere else (deploy, runbook, resume); here it
	// was the count. It maps to -n, with a warning on stderr (cobra's own
	// deprecation notice would go to stdout, into --json), and is out of
	// the help.
	cmd.Flags().IntVar(&opts.Limit, "limit", 0, "old name of -n/--max")
	_ = cmd.Flags().MarkHidden("limit")
	cmd.Flags().BoolVar(&opts.Failed, "failed", false, "only runs that did not end ok")
	cmd.Flags().StringVar(&opts.Kind, "kind", "", "only runs of this kind: "+strings.Join(runKinds, ", "))
	cmd.Flags().StringVar(&opts.Since, "since", "", "only runs started within this long (24h) or since this date (2026-11-30, RFC 3339)")
	return cmd
}

// parseSince reads --since: a duration back from now, a date (local
// midnight) or an RFC 3339 time.
func parseSince(s string, now time.Time) (time.Time, error) {
	if d, err := time.ParseDuration(s); err == nil && d >= 0 {
		return now.Add(-d), nil
	}
	if t, err := time.ParseInLocation("2006-01-02", s, time.Local); err == nil {
		return t, nil
	}
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	return time.Time{}, usagef("--since %q: expected a duration like 24h, a date like 2026-11-30, or an RFC 3339 time", s)
}

func historyRun(opts *HistoryOptions) error {
	f := opts.F
	dir := tasks.StateDir(f.Getenv)
	if opts.RunID != "" {
		return showRun(f, dir, opts.RunID)
	}
	filter := tasks.RunFilter{Limit: opts.Limit, Failed: opts.Failed, Kind: opts.Kind}
	if !opts.limitSet && f.IO.IsStdoutTTY() && !f.IO.JSON {
		filter.Limit = historyTTYLimit
	}
	if opts.Since != "" {
		t, err := parseSince(opts.Since, time.Now())
		if err != nil {
			return err
		}
		filter.Since = t
	}
	runs, more, err := tasks.ListRuns(dir, filter)
	if err != nil {
		return err
	}
	if f.IO.JSON {
		for _, r := range runs {
			if err := f.IO.Emit(runEntry{r}); err != nil {
				return err
			}
		}
		return nil
	}
	if len(runs) == 0 {
		if filter == (tasks.RunFilter{Limit: filter.Limit}) {
			fmt.Fprintf(f.IO.ErrOut, "no runs journaled yet in %s\n", dir)
		} else {
			fmt.Fprintln(f.IO.ErrOut, "no run matches")
		}
		return nil
	}
	cs := f.IO.OutColorScheme()
	var table [][]string
	for _, r := range runs {
		failed := "-"
		if r.FailedStep > 0 {
			failed = fmt.Sprintf("%d %s", r.FailedStep, r.FailedTitle)
		}
		table = append(table, []string{r.ID, safe(r.Command), r.Start.Local().Format(format.TimeFormat), colorStatus(cs, r.Status), safe(failed)})
	}
	if _, err = fmt.Fprint(f.IO.Out, cs.Table("", false, []string{"RUN", "COMMAND", "START", "STATUS", "FAILED STEP"}, table)); err != nil {
		return err
	}
	if more {
		fmt.Fprintf(f.IO.ErrOut, "the newest %d shown; older ones: -n N (0: all)\n", filter.Limit)
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
			if err := f.IO.Emit(r); err != nil {
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
		safe(s.Command), safe(s.Name), safe(s.Operator), s.Start.Local().Format(format.TimeFormat), colorStatus(cs, s.Status))
	if s.Error != "" {
		fmt.Fprintf(w, "  error      %s\n", safe(s.Error))
	}
	fmt.Fprintf(w, "  inventory  %s (sha256 %s)\n", s.InventoryPath, short(s.InventoryHash))
	// Hosts a step named but never acted on (a serial step stopped by
	// max_fail, a refused or interrupted step) are said to be not run, as
	// the live view says.
	var stepHosts []string
	acted := map[string]bool{}
	for _, r := range recs {
		switch r.Type {
		case "resume":
			fmt.Fprintf(w, "\n%s resumed at step %d by %s (pid %d)\n", r.Time.Local().Format(format.TimeFormat), r.FromStep, r.Operator, r.PID)
		case "step_start":
			stepHosts, acted = r.Hosts, map[string]bool{}
			fmt.Fprintf(w, "\n%s %d. %s  [%s]\n", r.Time.Local().Format(time.TimeOnly), r.Step, cs.Bold(safe(r.Title)), strings.Join(r.Hosts, ", "))
		case "check", "action", "undo":
			if r.Type == "action" {
				acted[r.Host] = true
			}
			phase := r.Phase
			if r.Type != "check" {
				phase = map[string]string{"action": "run", "undo": "undo"}[r.Type]
			}
			mark := cs.Green("ok")
			switch {
			case r.Status == tasks.StatusInterrupted:
				mark = cs.Yellow("INTERRUPTED") // stopped by Ctrl-C: exit 130
			case r.OK != nil && !*r.OK:
				mark = cs.Red("FAILED")
			}
			code := ""
			if r.ExitCode != nil {
				code = fmt.Sprintf(" exit %d", *r.ExitCode)
			}
			fmt.Fprintf(w, "    %-6s %-8s %s%s %.0fms  %s\n", phase, r.Host, mark, code, r.Duration, safe(r.Cmd))
			if r.OK != nil && !*r.OK && r.Output != "" {
				// Hosts' output: escape sequences shown, not acted on.
				for _, l := range strings.Split(safe(strings.TrimSpace(r.Output)), "\n") {
					fmt.Fprintf(w, "             | %s\n", l)
				}
			}
		case "step_end":
			var notRun []string
			for _, h := range stepHosts {
				if !acted[h] {
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
	return nil
}

// safe is journal text for the terminal; --json prints the bytes.
func safe(s string) string { return hostout.Sanitize(s) }

func short(h string) string {
	if len(h) > 12 {
		return h[:12]
	}
	return h
}
