package cli

import (
	"fmt"
	"strings"

	nomadapi "github.com/hashicorp/nomad/api"

	"github.com/hoctl/hoctl/pkg/iostreams"
	"github.com/hoctl/hoctl/pkg/jobs"
	"github.com/hoctl/hoctl/pkg/nomad"
)

// jobsPrinter shows migrate-jobs: each file's rewrite and reports, the
// totals, and Nomad's plan of a changed job. JSON gives job_file,
// jobs_summary and job_plan events; text gives the diffs on stdout
// (coloured on a terminal) and reports and totals on stderr.
type jobsPrinter interface {
	file(jf *jobs.File)
	summary(t jobsSummaryEvent)
	plan(jf *jobs.File, p *nomadapi.JobPlanResponse)
}

func newJobsPrinter(ios *iostreams.IOStreams) jobsPrinter {
	if ios.JSON {
		return jsonJobsPrinter{ios}
	}
	return textJobsPrinter{ios}
}

// printMigration shows every file, then the totals.
func printMigration(io *iostreams.IOStreams, files []*jobs.File) {
	p := newJobsPrinter(io)
	t := jobsSummaryEvent{Files: len(files)}
	for _, jf := range files {
		t.Rewrites += len(jf.Edits)
		t.Reports += len(jf.Mentions)
		if jf.Err != nil {
			t.ParseErrors++
		}
		if jf.Changed() {
			t.Changed++
		}
		p.file(jf)
	}
	p.summary(t)
}

type jsonJobsPrinter struct{ io *iostreams.IOStreams }

func (p jsonJobsPrinter) file(jf *jobs.File) {
	ev := jobFileEvent{File: jf.Path, Rewrites: len(jf.Edits), Mentions: len(jf.Mentions), Diff: jf.Diff()}
	if jf.Err != nil {
		ev.Error = jf.Err.Error()
	}
	for _, m := range jf.Mentions {
		ev.Reports = append(ev.Reports, fmt.Sprintf("%d:%d %s", m.Pos.Line, m.Pos.Column, m.Reason))
	}
	_ = p.io.Emit(ev)
}

func (p jsonJobsPrinter) summary(t jobsSummaryEvent) { _ = p.io.Emit(t) }

func (p jsonJobsPrinter) plan(jf *jobs.File, pl *nomadapi.JobPlanResponse) {
	_ = p.io.Emit(jobPlanEvent{File: jf.Path, Job: jf.Job, Diff: pl.Diff, JobModifyIndex: pl.JobModifyIndex})
}

type textJobsPrinter struct{ io *iostreams.IOStreams }

func (p textJobsPrinter) file(jf *jobs.File) {
	io := p.io
	cs, out := io.ColorScheme(), io.OutColorScheme()
	for _, line := range strings.SplitAfter(jf.Diff(), "\n") {
		switch {
		case strings.HasPrefix(line, "+++"), strings.HasPrefix(line, "---"):
			fmt.Fprint(io.Out, out.Bold(line))
		case strings.HasPrefix(line, "+"):
			fmt.Fprint(io.Out, out.Green(line))
		case strings.HasPrefix(line, "-"):
			fmt.Fprint(io.Out, out.Red(line))
		case strings.HasPrefix(line, "@@"):
			fmt.Fprint(io.Out, out.Cyan(line))
		default:
			fmt.Fprint(io.Out, line)
		}
	}
	if jf.Err != nil {
		fmt.Fprintf(io.ErrOut, "%s %s\n", cs.FailureIcon(), jf.Err)
	}
	for _, m := range jf.Mentions {
		fmt.Fprintf(io.ErrOut, "%s %s:%d:%d %s\n", cs.WarningIcon(), jf.Path, m.Pos.Line, m.Pos.Column, m.Reason)
	}
}

func (p textJobsPrinter) summary(t jobsSummaryEvent) {
	fmt.Fprint(p.io.ErrOut, "\n"+p.io.ColorScheme().Table("", false, []string{"FILES", "CHANGED", "REWRITES", "REPORTS", "PARSE ERRORS"},
		[][]string{{fmt.Sprint(t.Files), fmt.Sprint(t.Changed), fmt.Sprint(t.Rewrites), fmt.Sprint(t.Reports), fmt.Sprint(t.ParseErrors)}}))
}

func (p textJobsPrinter) plan(jf *jobs.File, pl *nomadapi.JobPlanResponse) {
	fmt.Fprintf(p.io.Out, "%s (%s):\n%s\n", jf.Job, jf.Path, nomad.DiffSummary(pl))
}
