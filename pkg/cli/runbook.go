package cli

import (
	"context"
	"errors"
	"strings"

	"github.com/hoctl/hoctl/pkg/iostreams"
	"github.com/hoctl/hoctl/pkg/tasks"
	"github.com/spf13/cobra"
)

// RunbookOptions are the inputs of `hoctl runbook plan|run`.
type RunbookOptions struct {
	F    *Factory
	File string
	Vars map[string]string
	// Limit narrows every step's hosts (--limit TARGET).
	Limit string
	Plan  bool // plan only
}

// NewCmdRunbook groups plan and run.
func NewCmdRunbook(f *Factory, runF func(*RunbookOptions) error) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "runbook",
		Short: "Plan or run an operator runbook (YAML)",
		Long: `A runbook is an ordered list of steps, each with hosts, a check before,
the command, a check after and an optional undo. See docs/runbooks.md.`,
	}
	for _, plan := range []bool{true, false} {
		opts := &RunbookOptions{F: f, Plan: plan}
		var vars []string
		use, short := "run FILE", "Show the plan, confirm, then run the runbook step by step"
		if plan {
			use, short = "plan FILE", "Run the before checks and print every step's commands; change nothing"
		}
		sub := &cobra.Command{
			Use:   use,
			Short: short,
			Args:  rangeArgs(1, 1),
			RunE: func(c *cobra.Command, args []string) error {
				opts.File = args[0]
				var err error
				if opts.Vars, err = parseVars(vars); err != nil {
					return err
				}
				if runF != nil {
					return runF(opts)
				}
				return runbookRun(c.Context(), opts)
			},
		}
		sub.Flags().StringArrayVar(&vars, "var", nil, "set a runbook variable (k=v), repeatable")
		sub.Flags().StringVar(&opts.Limit, "limit", "", "narrow every step's hosts to those TARGET selects (e.g. 'cattle,!c2'); a step left with no host is an error")
		if !plan {
			honoursDryRun(f, sub, "run the before checks and print the plan (as runbook plan); change nothing")
			honoursYes(f, sub)
		}
		cmd.AddCommand(sub)
	}
	return cmd
}

func parseVars(kvs []string) (map[string]string, error) {
	out := map[string]string{}
	for _, kv := range kvs {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return nil, usagef("--var %q: expected name=value", kv)
		}
		out[k] = v
	}
	return out, nil
}

func runbookRun(ctx context.Context, opts *RunbookOptions) error {
	f := opts.F
	inv, err := f.Inventory(ctx)
	if err != nil {
		return err
	}
	rb, err := tasks.LoadRunbookFile(ctx, opts.File, inv, tasks.LoadOptions{Vars: opts.Vars, Getenv: f.Getenv, Limit: opts.Limit})
	if err != nil {
		return err
	}
	eng, closeFn, err := f.Engine(inv, rb.Secrets)
	if err != nil {
		return err
	}
	defer closeFn()
	if opts.Plan || f.DryRun {
		return planOnly(ctx, f.IO, eng, rb, 1)
	}
	_, err = eng.Run(ctx, rb, tasks.RunOptions{})
	return quiet(err)
}

// planOnly prints the plan (or emits it as JSON) and exits 3 when a before
// check that could run fails now.
func planOnly(ctx context.Context, io *iostreams.IOStreams, eng *tasks.Engine, rb *tasks.Runbook, from int) error {
	p, err := eng.Plan(ctx, rb, from)
	if err != nil {
		return err
	}
	if io.JSON {
		eng.Reporter.Plan(p)
	} else {
		tasks.PrintPlan(io.Out, io.OutColorScheme(), p, rb.Secrets)
	}
	if p.Failing > 0 {
		return &SilentError{Code: ExitRefused}
	}
	return nil
}

// quiet keeps the exit code of a run's error but drops its message when
// the reporter has already shown it (the run started); errors from before
// the start (no confirmation, a held lock) are returned for main to print.
func quiet(err error) error {
	switch {
	case err == nil:
		return nil
	case refusedAtStep(err), errors.As(err, new(*tasks.StepError)),
		errors.As(err, new(*tasks.UnverifiedError)), errors.Is(err, tasks.ErrLockLost):
		// Shown already: not printed again, but kept for --json's error
		// event and the exit code.
		var re *tasks.ReportedError
		if errors.As(err, &re) {
			return err
		}
		return &tasks.ReportedError{Err: err}
	}
	return err
}

// refusedAtStep is a before check that failed once the run started (the
// reporter showed it), not at the plan nor for a reason of no step.
func refusedAtStep(err error) bool {
	var re *tasks.RefusedError
	return errors.As(err, &re) && !re.AtPlan && re.Reason == ""
}
