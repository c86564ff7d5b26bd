package cli

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/hoctl/hoctl/pkg/deploy"
	"github.com/hoctl/hoctl/pkg/inventory"
	"github.com/hoctl/hoctl/pkg/tasks"
	"github.com/hoctl/hoctl/pkg/yamlerr"
	"github.com/spf13/cobra"
)

// CheckOptions are the inputs of `hoctl check`.
type CheckOptions struct {
	F     *Factory
	Files []string // runbooks
}

// NewCmdCheck validates the inventory and runbooks without connecting.
func NewCmdCheck(f *Factory, runF func(*CheckOptions) error) *cobra.Command {
	opts := &CheckOptions{F: f}
	return &cobra.Command{
		Use:   "check [RUNBOOK...]",
		Short: "Validate the inventory and runbooks offline, for CI; connects to nothing",
		Long: `Check the inventory (-i, $HOCTL_INVENTORY or ./inventory.yaml) and each
RUNBOOK as 'runbook plan' would load them, without SSH, Consul or Nomad:
the schema, every cross-reference (hosts, groups, roles, replications,
jump hosts), every target expression, and every template rendered for
every host it runs on (runbook steps and deploy.command). Secrets are not
needed: a secret whose variable is unset is rendered as a placeholder.

Every problem is listed, in file order with file:line:column, and the exit
status is 2; with none, a one-line summary and exit 0. See docs/check.md.`,
		Example: `  hoctl check                                # the inventory alone
  hoctl check docs/runbooks/*.yaml           # and every runbook
  hoctl -i site/inventory.yaml check ops/*.yaml
  hoctl --json check ops/*.yaml              # one JSON object per problem`,
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Files = args
			if runF != nil {
				return runF(opts)
			}
			return checkRun(cmd.Context(), opts)
		},
	}
}

// checkPlaceholder stands in for a secret whose variable is not set: the
// check renders templates, it does not need the value.
const checkPlaceholder = "hoctl-check-placeholder"

func checkRun(ctx context.Context, opts *CheckOptions) error {
	f := opts.F
	var problems []checkProblem
	add := func(err error) {
		for _, e := range flattenProblems(err) {
			problems = append(problems, checkProblem{File: e.File, Line: e.Line, Column: e.Column, Field: e.Field, Msg: e.Msg})
		}
	}
	sum := checkSummary{Files: []string{}}
	inv, err := f.Inventory(ctx)
	if inv != nil {
		sum.Files = append(sum.Files, inv.Path)
		sum.Hosts = len(inv.Hosts)
	}
	if err != nil {
		add(err)
		// Runbooks name the inventory's hosts: without it they cannot
		// be checked, and guessing would only add noise.
		sum.Skipped = append(sum.Skipped, opts.Files...)
	} else {
		add(deploy.CheckCommand(ctx, inv))
		checkRunbooks(ctx, f, inv, opts.Files, &sum, add)
	}
	if err := ctx.Err(); err != nil {
		return err // interrupted while a file was read: not a problem of the files
	}
	sum.Problems, sum.OK = len(problems), len(problems) == 0
	if err := newCheckPrinter(f.IO).print(problems, sum); err != nil {
		return err
	}
	if !sum.OK {
		// Listed already; the JSON error event still says what failed.
		first := problems[0]
		firstErr := &yamlerr.Error{File: first.File, Line: first.Line, Column: first.Column, Field: first.Field, Msg: first.Msg}
		return &tasks.ReportedError{Err: &InputError{Err: fmt.Errorf("check found %d %s; the first: %s", sum.Problems,
			checkPlural(sum.Problems, "problem", "problems"), firstErr.Error())}}
	}
	return nil
}

// checkRunbooks loads each runbook file against the inventory, adding
// its problems, and counts the runbooks and steps that load.
func checkRunbooks(ctx context.Context, f *Factory, inv *inventory.Inventory, files []string, sum *checkSummary, add func(error)) {
	getenv := func(k string) string {
		if v := f.Getenv(k); v != "" {
			return v
		}
		return checkPlaceholder
	}
	for _, file := range files {
		sum.Files = append(sum.Files, file)
		rb, err := tasks.LoadRunbookFile(ctx, file, inv, tasks.LoadOptions{Getenv: getenv})
		if err != nil {
			add(err)
			continue
		}
		sum.Runbooks++
		sum.Steps += len(rb.Steps)
		for _, w := range rb.Warnings {
			sum.Warnings = append(sum.Warnings, file+": "+w)
		}
	}
}

// flattenProblems turns a load error into located problems; an error of
// another kind (unreadable file) keeps its text.
func flattenProblems(err error) yamlerr.Errors {
	if err == nil {
		return nil
	}
	var es yamlerr.Errors
	if errors.As(err, &es) {
		return es
	}
	var e *yamlerr.Error
	if errors.As(err, &e) {
		return yamlerr.Errors{e}
	}
	return yamlerr.Errors{{Msg: err.Error()}}
}

func checkPlural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

// missingInventory rewords "no such file" for the inventory: the absolute
// path tried, which setting named it, and how to name another.
func missingInventory(path, from string, err error) error {
	if _, statErr := os.Stat(path); !errors.Is(statErr, fs.ErrNotExist) {
		return err
	}
	abs, aerr := filepath.Abs(path)
	if aerr != nil {
		abs = path
	}
	return &inventory.Error{File: path, Msg: fmt.Sprintf("no inventory at %s (from %s); point hoctl at one with -i FILE or HOCTL_INVENTORY=FILE (see 'hoctl help inventory')", abs, from)}
}
