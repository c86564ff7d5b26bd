package cli

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/hoctl/hoctl/pkg/iostreams"

	"github.com/hoctl/hoctl/pkg/replicate"
	"github.com/hoctl/hoctl/pkg/tasks"
)

// replicateAll is `hoctl replicate` with no arguments: every replication
// of the inventory, as `btrbk run` does. Each is its own journaled run
// with its own lock; runs that share no host go at once, the others wait
// for the wave before. One failure does not stop the others: a standby
// that is down must not leave every other standby stale too.
func replicateAll(ctx context.Context, opts *ReplicateOptions) error {
	start := time.Now()
	eng, closeFn, jobs, err := replicateAllJobs(ctx, opts)
	if err != nil {
		return err
	}
	defer closeFn()
	defer releaseAll(jobs)
	waves := replicate.Waves(jobs)
	p := newReplicationsPrinter(opts.IO, eng.Reporter)

	// One plan and one question for them all.
	failing, err := planEach(ctx, p, eng, jobs)
	if err != nil {
		return err
	}
	p.waves(jobs, waves)
	switch {
	case opts.DryRun && failing > 0:
		return &SilentError{Code: ExitRefused}
	case opts.DryRun:
		return nil
	case failing == len(jobs):
		return replicateSummary(p, jobs)
	case !opts.Yes:
		if err := confirmAll(ctx, eng, len(jobs)-failing); err != nil {
			return err
		}
	}

	// Each run reports on its own; the connections are shared.
	if err := replicate.RunAll(ctx, eng, waves, replicationReporter(opts.IO, waves)); err != nil {
		return err
	}
	for _, j := range jobs {
		tracePhases(opts.Trace, j.Ends.Name, j.Run.Phases(), time.Since(start))
	}
	return replicateSummary(p, jobs)
}

// releaseAll lets go of the host locks a job's plan took with --yes, for
// a job refused at its plan or never run.
func releaseAll(jobs []*replicate.Job) {
	for _, j := range jobs {
		j.Run.Release()
	}
}

// replicationReporter makes each run's reporter. When runs go at once
// (a wave of several), each run's lines come after its replication's
// name, as run puts a host's name before its output; one at a time, a
// run has the usual view.
func replicationReporter(ios *iostreams.IOStreams, waves [][]*replicate.Job) func(*replicate.Job) tasks.Reporter {
	width, atOnce := 0, false
	for _, w := range waves {
		n := 0
		for _, j := range w {
			width = max(width, len(j.Ends.Name))
			if j.Err == nil {
				n++
			}
		}
		atOnce = atOnce || n > 1
	}
	if !atOnce {
		return func(*replicate.Job) tasks.Reporter { return tasks.NewReporter(ios, nil) }
	}
	cs := ios.ColorScheme()
	return func(j *replicate.Job) tasks.Reporter {
		pad := strings.Repeat(" ", width-len(j.Ends.Name))
		return tasks.NewLineReporter(ios, nil, cs.Host(j.Ends.Name)+pad+" | ")
	}
}

// replicateAllJobs plans every replication of the inventory as a job of
// its own and sets the engine's locks for them; closeFn ends the
// engine's connections.
func replicateAllJobs(ctx context.Context, opts *ReplicateOptions) (eng *tasks.Engine, closeFn func(), jobs []*replicate.Job, err error) {
	inv, err := opts.Inventory(ctx)
	if err != nil {
		return nil, nil, nil, err
	}
	if err := replicate.RequireAny(inv); err != nil {
		return nil, nil, nil, err
	}
	if err := replicate.CheckTransport(opts.Transport); err != nil {
		return nil, nil, nil, err
	}
	eng, closeFn, err = opts.Engine(inv, nil)
	if err != nil {
		return nil, nil, nil, err
	}
	consulDir := replicate.NewConsulDirection(directionKV(opts.APIs, inv, eng))
	jobs, err = replicate.Plan(ctx, inv, consulDir.KV(), replicate.Options{Full: opts.Full, Transport: opts.Transport, Yes: opts.Yes, DryRun: opts.DryRun})
	if err != nil {
		closeFn()
		return nil, nil, nil, err
	}
	rbs := make([]*tasks.Runbook, len(jobs))
	for i, j := range jobs {
		withoutConsul(j.Runbook, consulDir)
		rbs[i] = j.Runbook
	}
	clusterLockOrHosts(eng, opts.IO.ErrOut, rbs...)
	return eng, closeFn, jobs, nil
}

// planEach shows each job's plan and marks the jobs whose before checks
// fail now (Err); it returns how many. Such a replication is shown and
// left out rather than started to be refused.
func planEach(ctx context.Context, pr replicationsPrinter, eng *tasks.Engine, jobs []*replicate.Job) (int, error) {
	failing := 0
	for _, j := range jobs {
		p, err := eng.Plan(ctx, j.Runbook, 1)
		if err != nil {
			return 0, fmt.Errorf("replication %s: %w", j.Ends.Name, err)
		}
		pr.plan(p)
		if err := p.Refusal(); err != nil {
			j.Err = err
			failing++
		}
	}
	return failing, nil
}

// confirmAll asks once for n replications.
func confirmAll(ctx context.Context, eng *tasks.Engine, n int) error {
	if eng.Confirm == nil {
		return &tasks.ConfirmError{Reason: tasks.NoTerminalToConfirm}
	}
	ok, err := eng.Confirm(ctx, fmt.Sprintf("Run %d replication(s)?", n))
	if err != nil {
		return err
	}
	if !ok {
		return &tasks.ConfirmError{Reason: "not confirmed: nothing was changed"}
	}
	return nil
}

// replicateSummary shows one result per replication and returns one
// exit code: 0 when all succeeded, the failures' code when they share
// one, and 1 (a step failed) when they differ.
func replicateSummary(p replicationsPrinter, jobs []*replicate.Job) error {
	code, failed := replicate.Outcome(jobs, ExitCode)
	if err := p.results(jobs, failed); err != nil {
		return err
	}
	if code == ExitOK {
		return nil
	}
	return &SilentError{Code: code}
}

func oneLine(err error) string { return firstLineOf(err.Error()) }

func firstLineOf(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	return s
}
