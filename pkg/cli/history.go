package cli

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

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
output of failures and the head and tail of a successful command's, and
the hosts a failed step never ran. RUN-ID is "last", or any part of an id
that names one run: a prefix, or its random suffix (hoctl history
a68917); text several runs match lists them (exit 2).
See docs/runbooks.md.`,
		Args: rangeArgs(0, 1),
		RunE: func(c *cobra.Command, args []string) error {
			if len(args) == 1 {
				opts.RunID = args[0]
			}
			if err := opts.check(c); err != nil {
				return err
			}
			if runF != nil {
				return runF(opts)
			}
			return historyRun(opts)
		},
	}
	historyFlags(cmd, opts)
	return cmd
}

func historyFlags(cmd *cobra.Command, opts *HistoryOptions) {
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
}

// check refuses flags that contradict each other or the RUN-ID, and
// warns of --limit's old name.
func (opts *HistoryOptions) check(c *cobra.Command) error {
	opts.limitSet = c.Flags().Changed("max") || c.Flags().Changed("limit")
	if c.Flags().Changed("max") && c.Flags().Changed("limit") {
		return usagef("-n/--max and --limit are the same count (--limit is its old name): give -n only")
	}
	if opts.Limit < 0 {
		return usagef("-n/--max %d: expected 0 (all) or more", opts.Limit)
	}
	if c.Flags().Changed("limit") {
		fmt.Fprintln(opts.F.IO.ErrOut, "warning: history --limit is now -n/--max (--limit is a TARGET in deploy, runbook and resume); --limit will go")
	}
	if opts.Kind != "" && !slices.Contains(runKinds, opts.Kind) {
		return usagef("--kind %q: expected one of %s", opts.Kind, strings.Join(runKinds, ", "))
	}
	if opts.RunID != "" && (opts.limitSet || opts.Failed || opts.Kind != "" || opts.Since != "") {
		return usagef("-n/--max, --failed, --kind and --since select runs to list, not what to show of run %s", opts.RunID)
	}
	return nil
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
	p := newHistoryPrinter(f.IO)
	if opts.RunID != "" {
		id, err := tasks.ResolveRunID(dir, opts.RunID)
		if err != nil {
			return err
		}
		recs, err := tasks.ReadJournal(dir, id)
		if err != nil {
			return err
		}
		return p.run(id, recs)
	}
	filter, err := opts.filter()
	if err != nil {
		return err
	}
	runs, more, err := tasks.ListRuns(dir, filter)
	if err != nil {
		return err
	}
	return p.list(runs, more, filter.Limit, filter != (tasks.RunFilter{Limit: filter.Limit}), dir)
}

// filter is the runs the flags select; a terminal gets the newest
// historyTTYLimit unless -n says.
func (opts *HistoryOptions) filter() (tasks.RunFilter, error) {
	io := opts.F.IO
	filter := tasks.RunFilter{Limit: opts.Limit, Failed: opts.Failed, Kind: opts.Kind}
	if !opts.limitSet && io.IsStdoutTTY() && !io.JSON {
		filter.Limit = historyTTYLimit
	}
	if opts.Since != "" {
		t, err := parseSince(opts.Since, time.Now())
		if err != nil {
			return filter, err
		}
		filter.Since = t
	}
	return filter, nil
}

// safe is journal text for the terminal; --json prints the bytes.
func safe(s string) string { return hostout.Sanitize(s) }

func short(h string) string {
	if len(h) > 12 {
		return h[:12]
	}
	return h
}
