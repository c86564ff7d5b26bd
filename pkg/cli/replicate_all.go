package cli

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/hoctl/hoctl/pkg/hostout"
	"github.com/hoctl/hoctl/pkg/replicate"
	"github.com/hoctl/hoctl/pkg/tasks"
)

// replicateAll is `hoctl replicate` with no arguments: every replication
// of the inventory, as `btrbk run` does. Each is its own journaled run
// with its own lock; runs that share no host go at once, the others wait
// for the wave before. One failure does not stop the others: a standby
// that is down must not leave every other standby stale too.
func replicateAll(ctx context.Context, opts *ReplicateOptions) error {
	f := opts.F
	inv, err := f.Inventory(ctx)
	if err != nil {
		return err
	}
	if len(inv.Replication) == 0 {
		return usagef("the inventory has no replication section: nothing to replicate (docs/inventory.md#replication)")
	}
	if err := checkTransport(opts.Transport); err != nil {
		return err
	}
	eng, closeFn, err := f.Engine(inv, nil)
	if err != nil {
		return err
	}
	defer closeFn()

	names := make([]string, 0, len(inv.Replication))
	for n := range inv.Replication {
		names = append(names, n)
	}
	sort.Strings(names)
	jobs := make([]*replicationJob, 0, len(names))
	for _, n := range names {
		ends, err := recordedDirection(ctx, f, inv, eng, replicate.EndsOf(inv.Replication[n]), false)
		if err != nil {
			return fmt.Errorf("replication %s: %w", n, err)
		}
		j := &replicationJob{ends: ends}
		j.rb, j.run = replicate.Runbook(inv, ends, replicate.Options{Full: opts.Full, Transport: opts.Transport})
		j.rb.Retry = replicateRetry
		jobs = append(jobs, j)
	}
	waves := replicationWaves(jobs)

	// One plan and one question for them all; a replication whose before
	// checks fail now is shown and left out rather than started to be
	// refused.
	failing := 0
	for _, j := range jobs {
		p, err := eng.Plan(ctx, j.rb, 1)
		if err != nil {
			return fmt.Errorf("replication %s: %w", j.ends.Name, err)
		}
		if f.IO.JSON {
			eng.Reporter.Plan(p)
		} else {
			tasks.PrintPlan(f.IO.Out, f.IO.OutColorScheme(), p, nil)
		}
		if err := p.Refusal(); err != nil {
			j.err = err
			failing++
		}
	}
	if !f.IO.JSON {
		fmt.Fprintf(f.IO.ErrOut, "%d replication(s) in %d wave(s): %s\n", len(jobs), len(waves), describeWaves(waves))
	}
	if f.DryRun {
		if failing > 0 {
			return &SilentError{Code: ExitRefused}
		}
		return nil
	}
	if failing == len(jobs) {
		return replicateSummary(f, jobs)
	}
	if !f.Yes {
		if eng.Confirm == nil {
			return &tasks.ConfirmError{Reason: "refusing to change anything without --yes: no terminal to confirm on"}
		}
		ok, err := eng.Confirm(ctx, fmt.Sprintf("Run %d replication(s)?", len(jobs)-failing))
		if err != nil {
			return err
		}
		if !ok {
			return &tasks.ConfirmError{Reason: "not confirmed: nothing was changed"}
		}
	}

	for _, wave := range waves {
		var wg sync.WaitGroup
		for _, j := range wave {
			if j.err != nil {
				continue
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				// Each run reports on its own; the connections are shared.
				e := *eng
				e.Yes = true
				e.Reporter = tasks.NewReporter(f.IO, nil)
				start := time.Now()
				_, j.err = e.Run(ctx, j.rb, tasks.RunOptions{SkipPlan: true})
				j.run.Release()
				j.took = time.Since(start)
			}()
		}
		wg.Wait()
		if ctx.Err() != nil {
			return ctx.Err()
		}
	}
	return replicateSummary(f, jobs)
}

// replicationJob is one replication of a `replicate` with no arguments.
type replicationJob struct {
	ends replicate.Ends
	rb   *tasks.Runbook
	run  *replicate.Run
	err  error
	took time.Duration
}

// replicationWaves orders jobs into waves in which no two share a host,
// first fit in name order: a host never takes part in two replications at
// once (its disk and its link are the bottleneck, and its lock would
// refuse the second anyway).
func replicationWaves(jobs []*replicationJob) [][]*replicationJob {
	var waves [][]*replicationJob
	var busy []map[string]bool
	for _, j := range jobs {
		placed := false
		for i := range waves {
			if !busy[i][j.ends.SourceHost] && !busy[i][j.ends.TargetHost] {
				waves[i] = append(waves[i], j)
				busy[i][j.ends.SourceHost], busy[i][j.ends.TargetHost] = true, true
				placed = true
				break
			}
		}
		if !placed {
			waves = append(waves, []*replicationJob{j})
			busy = append(busy, map[string]bool{j.ends.SourceHost: true, j.ends.TargetHost: true})
		}
	}
	return waves
}

func describeWaves(waves [][]*replicationJob) string {
	parts := make([]string, len(waves))
	for i, w := range waves {
		names := make([]string, len(w))
		for k, j := range w {
			names[k] = fmt.Sprintf("%s (%s → %s)", j.ends.Name, j.ends.SourceHost, j.ends.TargetHost)
		}
		parts[i] = strings.Join(names, ", ")
	}
	return strings.Join(parts, "; then ")
}

// replicateSummary prints one line per replication and returns one exit
// code: 0 when all succeeded, the failures' code when they share one, and
// 1 (a step failed) when they differ.
func replicateSummary(f *Factory, jobs []*replicationJob) error {
	code := ExitOK
	failed := 0
	for _, j := range jobs {
		c := ExitCode(j.err)
		if c != ExitOK {
			failed++
			if code == ExitOK {
				code = c
			} else if code != c {
				code = ExitFailed
			}
		}
		if f.IO.JSON {
			ev := replicationResult{Event: "replication", Name: j.ends.Name, Source: j.ends.SourceHost, Target: j.ends.TargetHost,
				OK: j.err == nil, Code: c, Summary: j.run.Summary, Seconds: j.took.Seconds()}
			if j.err != nil {
				ev.Error = j.err.Error()
			}
			if err := f.IO.Event(ev); err != nil {
				return err
			}
			continue
		}
		cs := f.IO.ColorScheme()
		if j.err == nil {
			fmt.Fprintf(f.IO.ErrOut, "%s %s %s → %s: %s\n", cs.SuccessIcon(), j.ends.Name, j.ends.SourceHost, j.ends.TargetHost, hostout.Sanitize(j.run.Summary))
		} else {
			fmt.Fprintf(f.IO.ErrOut, "%s %s %s → %s: %s (exit %d)\n", cs.FailureIcon(), j.ends.Name, j.ends.SourceHost, j.ends.TargetHost, hostout.Sanitize(oneLine(j.err)), c)
		}
	}
	if !f.IO.JSON {
		fmt.Fprintf(f.IO.ErrOut, "%d of %d replication(s) done, %d failed\n", len(jobs)-failed, len(jobs), failed)
	}
	if code == ExitOK {
		return nil
	}
	return &SilentError{Code: code}
}

// replicationResult is the --json summary event of one replication.
type replicationResult struct {
	Event   string  `json:"event"`
	Name    string  `json:"name"`
	Source  string  `json:"source"`
	Target  string  `json:"target"`
	OK      bool    `json:"ok"`
	Code    int     `json:"exit_code"`
	Summary string  `json:"summary,omitempty"`
	Error   string  `json:"error,omitempty"`
	Seconds float64 `json:"seconds"`
}

func oneLine(err error) string { return firstLineOf(err.Error()) }

func firstLineOf(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	return s
}
