package cli

import (
	"fmt"

	"github.com/hoctl/hoctl/pkg/hostout"
	"github.com/hoctl/hoctl/pkg/iostreams"
	"github.com/hoctl/hoctl/pkg/replicate"
	"github.com/hoctl/hoctl/pkg/tasks"
)

// replicationsPrinter shows `replicate` of every replication: each
// job's plan, the waves, and one result per replication. JSON gives the
// plan events (through the engine's reporter) and replication events;
// text gives the plans on stdout, the waves and a line per replication
// with a total on stderr.
type replicationsPrinter interface {
	plan(p *tasks.Plan)
	waves(jobs []*replicate.Job, waves [][]*replicate.Job)
	results(jobs []*replicate.Job, failed int) error
}

func newReplicationsPrinter(ios *iostreams.IOStreams, rep tasks.Reporter) replicationsPrinter {
	if ios.JSON {
		return jsonReplicationsPrinter{io: ios, rep: rep}
	}
	return textReplicationsPrinter{ios}
}

type jsonReplicationsPrinter struct {
	io  *iostreams.IOStreams
	rep tasks.Reporter
}

func (p jsonReplicationsPrinter) plan(pl *tasks.Plan) { p.rep.Plan(pl) }

func (p jsonReplicationsPrinter) waves([]*replicate.Job, [][]*replicate.Job) {}

func (p jsonReplicationsPrinter) results(jobs []*replicate.Job, _ int) error {
	for _, j := range jobs {
		ev := replicationResult{Name: j.Ends.Name, Source: j.Ends.SourceHost, Target: j.Ends.TargetHost,
			OK: j.Err == nil, Code: ExitCode(j.Err), Summary: j.Run.Summary, Seconds: j.Took.Seconds()}
		if j.Err != nil {
			ev.Error = j.Err.Error()
		}
		if err := p.io.Emit(ev); err != nil {
			return err
		}
	}
	return nil
}

type textReplicationsPrinter struct{ io *iostreams.IOStreams }

func (p textReplicationsPrinter) plan(pl *tasks.Plan) {
	tasks.PrintPlan(p.io.Out, p.io.OutColorScheme(), pl, nil)
}

func (p textReplicationsPrinter) waves(jobs []*replicate.Job, waves [][]*replicate.Job) {
	fmt.Fprintf(p.io.ErrOut, "%d replication(s) in %d wave(s): %s\n", len(jobs), len(waves), replicate.DescribeWaves(waves))
}

// results writes a line per replication and the total; failed is how
// many did not succeed (replicate.Outcome's count).
func (p textReplicationsPrinter) results(jobs []*replicate.Job, failed int) error {
	io := p.io
	cs := io.ColorScheme()
	for _, j := range jobs {
		e := j.Ends
		if j.Err == nil {
			fmt.Fprintf(io.ErrOut, "%s %s %s → %s: %s\n", cs.SuccessIcon(), e.Name, e.SourceHost, e.TargetHost, hostout.Sanitize(j.Run.Summary))
			continue
		}
		fmt.Fprintf(io.ErrOut, "%s %s %s → %s: %s (exit %d)\n", cs.FailureIcon(), e.Name, e.SourceHost, e.TargetHost, hostout.Sanitize(oneLine(j.Err)), ExitCode(j.Err))
	}
	fmt.Fprintf(io.ErrOut, "%d of %d replication(s) done, %d failed\n", len(jobs)-failed, len(jobs), failed)
	return nil
}
