package replicate

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/hoctl/hoctl/pkg/exitcode"
	"github.com/hoctl/hoctl/pkg/inventory"
	"github.com/hoctl/hoctl/pkg/tasks"
)

// Job is one replication of a run of every replication (`hoctl
// replicate` with no arguments, as `btrbk run`): its own runbook, lock
// and journaled run.
type Job struct {
	Ends    Ends
	Runbook *tasks.Runbook
	Run     *Run
	// Err is the job's outcome: a refusal at its plan (then it is not
	// run) or its run's error.
	Err  error
	Took time.Duration
}

// RequireAny refuses an inventory with no replication: nothing to run.
func RequireAny(inv *inventory.Inventory) error {
	if len(inv.Replication) == 0 {
		return exitcode.Usagef("the inventory has no replication section: nothing to replicate (docs/inventory.md#replication)")
	}
	return nil
}

// Plan is a job for every replication of the inventory, in name order,
// each in the direction Consul records (kv nil: none recorded).
func Plan(ctx context.Context, inv *inventory.Inventory, kv func(context.Context) (KV, error), o Options) ([]*Job, error) {
	var jobs []*Job
	for _, n := range slices.Sorted(maps.Keys(inv.Replication)) {
		ends, err := Directed(ctx, kv, EndsOf(inv.Replication[n]), false)
		if err != nil {
			return nil, fmt.Errorf("replication %s: %w", n, err)
		}
		j := &Job{Ends: ends}
		o := o
		o.Recorded = kv
		j.Runbook, j.Run = Runbook(inv, ends, o)
		j.Runbook.Retry = Retry
		jobs = append(jobs, j)
	}
	return jobs, nil
}

// Waves orders jobs into waves in which no two share a host, first fit
// in order: a host never takes part in two replications at once (its
// disk and its link are the bottleneck, and its lock would refuse the
// second anyway).
func Waves(jobs []*Job) [][]*Job {
	var waves [][]*Job
	var busy []map[string]bool
	for _, j := range jobs {
		placed := false
		for i := range waves {
			if !busy[i][j.Ends.SourceHost] && !busy[i][j.Ends.TargetHost] {
				waves[i] = append(waves[i], j)
				busy[i][j.Ends.SourceHost], busy[i][j.Ends.TargetHost] = true, true
				placed = true
				break
			}
		}
		if !placed {
			waves = append(waves, []*Job{j})
			busy = append(busy, map[string]bool{j.Ends.SourceHost: true, j.Ends.TargetHost: true})
		}
	}
	return waves
}

// DescribeWaves is the waves in one line: "a (zippy → c1), c; then b".
func DescribeWaves(waves [][]*Job) string {
	parts := make([]string, len(waves))
	for i, w := range waves {
		names := make([]string, len(w))
		for k, j := range w {
			names[k] = fmt.Sprintf("%s (%s → %s)", j.Ends.Name, j.Ends.SourceHost, j.Ends.TargetHost)
		}
		parts[i] = strings.Join(names, ", ")
	}
	return strings.Join(parts, "; then ")
}

// RunAll runs the waves one after the other, the jobs of a wave at once,
// each on eng's connections with a reporter of its own (reporter makes
// one for each job) and without asking again: the operator confirmed them all. A job
// refused at its plan (Err set) is left out; one failure does not stop
// the others, since a standby that is down must not leave every other
// standby stale too. Interrupted, it returns ctx's error once the wave
// running ends.
func RunAll(ctx context.Context, eng *tasks.Engine, waves [][]*Job, reporter func(*Job) tasks.Reporter) error {
	for _, wave := range waves {
		var wg sync.WaitGroup
		for _, j := range wave {
			if j.Err != nil {
				continue
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				e := *eng
				e.Yes = true
				e.Reporter = reporter(j)
				start := time.Now()
				_, j.Err = e.Run(ctx, j.Runbook, tasks.RunOptions{SkipPlan: true})
				j.Run.Release()
				j.Took = time.Since(start)
			}()
		}
		wg.Wait()
		if ctx.Err() != nil {
			return ctx.Err()
		}
	}
	return nil
}

// Outcome is one exit code for all the jobs, each job's from code: OK
// when all succeeded, the failures' code when they share one, and Failed
// (a step failed) when they differ; and how many failed.
func Outcome(jobs []*Job, code func(error) int) (exit, failed int) {
	exit = exitcode.OK
	for _, j := range jobs {
		c := code(j.Err)
		if c == exitcode.OK {
			continue
		}
		failed++
		if exit == exitcode.OK {
			exit = c
		} else if exit != c {
			exit = exitcode.Failed
		}
	}
	return exit, failed
}
