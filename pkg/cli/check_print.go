package cli

import (
	"fmt"
	"strings"

	"github.com/hoctl/hoctl/pkg/iostreams"
	"github.com/hoctl/hoctl/pkg/yamlerr"
)

// checkPrinter shows what check found: problem events and a
// check_summary, or each problem as file:line:col and a one-line verdict.
type checkPrinter interface {
	print(problems []checkProblem, sum checkSummary) error
}

func newCheckPrinter(ios *iostreams.IOStreams) checkPrinter {
	if ios.JSON {
		return jsonCheckPrinter{ios}
	}
	return textCheckPrinter{ios}
}

type jsonCheckPrinter struct{ io *iostreams.IOStreams }

func (p jsonCheckPrinter) print(problems []checkProblem, sum checkSummary) error {
	for _, pr := range problems {
		if err := p.io.Emit(pr); err != nil {
			return err
		}
	}
	return p.io.Emit(sum)
}

type textCheckPrinter struct{ io *iostreams.IOStreams }

func (p textCheckPrinter) print(problems []checkProblem, sum checkSummary) error {
	io := p.io
	for _, pr := range problems {
		e := yamlerr.Error{File: pr.File, Line: pr.Line, Column: pr.Column, Field: pr.Field, Msg: pr.Msg}
		if _, err := fmt.Fprintln(io.Out, e.Error()); err != nil {
			return err
		}
	}
	cs := io.ColorScheme()
	for _, w := range sum.Warnings {
		if _, err := fmt.Fprintf(io.ErrOut, "%s %s\n", cs.Yellow("warning:"), w); err != nil {
			return err
		}
	}
	if !sum.OK {
		msg := fmt.Sprintf("%s %d %s", cs.FailureIcon(), sum.Problems, checkPlural(sum.Problems, "problem", "problems"))
		if len(sum.Skipped) > 0 {
			msg += "; runbooks not checked until the inventory loads: " + strings.Join(sum.Skipped, ", ")
		}
		_, err := fmt.Fprintln(io.ErrOut, msg)
		return err
	}
	_, err := fmt.Fprintf(io.Out, "ok: %s (%d %s), %d %s (%d %s); nothing connected\n",
		sum.Files[0], sum.Hosts, checkPlural(sum.Hosts, "host", "hosts"),
		sum.Runbooks, checkPlural(sum.Runbooks, "runbook", "runbooks"), sum.Steps, checkPlural(sum.Steps, "step", "steps"))
	return err
}
