package cli

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"os/user"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/hashicorp/consul/api"
	"github.com/hoctl/hoctl/pkg/inventory"
	"github.com/hoctl/hoctl/pkg/tasks"
	"github.com/spf13/cobra"
)

// ResumeOptions are the inputs of `hoctl resume`.
type ResumeOptions struct {
	Invocation
	RunID    string
	Force    bool
	AllHosts bool
	// Limit narrows the rest of the run's steps (--limit TARGET); empty
	// keeps the limit the run was started with, if any.
	Limit string
}

// NewCmdResume continues a failed or interrupted run.
func NewCmdResume(f *Factory, runF func(*ResumeOptions) error) *cobra.Command {
	opts := &ResumeOptions{}
	cmd := &cobra.Command{
		Use:   "resume RUN-ID|last",
		Short: "Continue a failed or interrupted run from its first unfinished step",
		Long: `Continue run RUN-ID (see hoctl history; "last" is the newest run, and
any part of an id naming one run, a prefix or its random suffix, will do)
from its first unfinished step, after
running that step's before check again. Hosts that finished that step in
the run are left alone (--all-hosts redoes it on every host). Refuses a run
that finished, one still running or being resumed by another hoctl, one
whose inventory or runbook file changed since (unless --force), and runs
that resume cannot rebuild (replicate, migrate-jobs, deploy: it says what
to run instead). Without -i or $HOCTL_INVENTORY, the run's own inventory
is used.`,
		Args: rangeArgs(1, 1),
		RunE: func(c *cobra.Command, args []string) error {
			opts.RunID = args[0]
			opts.Invocation = f.Invocation()
			if runF != nil {
				return runF(opts)
			}
			return resumeRun(c.Context(), opts)
		},
	}
	cmd.Flags().BoolVar(&opts.Force, "force", false, "resume although the inventory or runbook changed")
	cmd.Flags().StringVar(&opts.Limit, "limit", "", "narrow the remaining steps' hosts to those TARGET selects (default: the run's own --limit)")
	cmd.Flags().BoolVar(&opts.AllHosts, "all-hosts", false, "redo the unfinished step on every host, also those that finished it")
	honoursDryRun(f, cmd, "run the remaining steps' before checks and print the plan; change nothing")
	honoursYes(f, cmd)
	return cmd
}

func resumeRun(ctx context.Context, opts *ResumeOptions) error {
	dir := tasks.StateDir(opts.Getenv)
	id, err := tasks.ResolveRunID(dir, opts.RunID)
	if err != nil {
		return err
	}
	// One resume of a run at a time, held from before the journal is read
	// until the run ends: a second one would run the same steps again.
	lock, err := tasks.AcquireLocal(dir, "run-"+id, tasks.LockHolder{PID: os.Getpid(), Run: id, Start: time.Now().UTC(), User: currentUser()})
	if err != nil {
		var le *tasks.LockedError
		if errors.As(err, &le) && le.Holder.PID != 0 {
			return tasks.Refusef("run %s is being resumed by pid %d (%s, since %s): wait for it, then see hoctl history %s",
				id, le.Holder.PID, le.Holder.User, le.Holder.Start.Local().Format(time.DateTime), id)
		}
		return err
	}
	defer func() { _ = lock.Release() }()
	s, build, err := resumable(dir, id)
	if err != nil {
		return err
	}
	if filepath.IsAbs(s.InventoryPath) {
		if _, err := os.Stat(s.InventoryPath); err == nil {
			opts.DefaultInventory(s.InventoryPath) // the run's own, from any directory
		}
	}
	inv, err := opts.Inventory(ctx)
	if err != nil {
		return err
	}
	if inv.Hash != s.InventoryHash && !opts.Force {
		return tasks.Refusef("the inventory changed since run %s started (%s): check it, then use --force", s.ID, inv.Path)
	}
	return rebuildAndRun(ctx, opts, inv, s, build)
}

// resumable is run id as its journal says, with the builder of its kind;
// a run that finished, still runs, or is of a kind no package rebuilds
// is refused.
func resumable(dir, id string) (*tasks.Summary, tasks.Builder, error) {
	recs, err := tasks.ReadJournal(dir, id)
	if err != nil {
		return nil, nil, err
	}
	s := tasks.Summarize(id, recs)
	build, err := resumeBuilder(s)
	if err != nil {
		return nil, nil, err
	}
	return s, build, nil
}

// resumeBuilder is the builder that continues run s, or why s cannot be
// resumed. Completion offers only the runs it accepts.
func resumeBuilder(s *tasks.Summary) (tasks.Builder, error) {
	switch s.Status {
	case tasks.StatusOK:
		return nil, tasks.Refusef("run %s finished successfully: nothing to resume", s.ID)
	case tasks.StatusRunning:
		return nil, tasks.Refusef("run %s is still running (pid %d)", s.ID, s.PID)
	}
	build, err := tasks.Lookup(s.Kind)
	if err != nil {
		what := s.Retry
		if what == "" {
			what = "run its command again"
		}
		return nil, tasks.Refusef("run %s (%s) cannot be resumed: %s", s.ID, s.Command, what)
	}
	return build, nil
}

// rebuildAndRun rebuilds the run with its kind's builder and continues
// it. The engine is built once the runbook is, with the secrets it
// declares; Consul goes through its connections, so a step may ask for it
// only once the run starts.
func rebuildAndRun(ctx context.Context, opts *ResumeOptions, inv *inventory.Inventory, s *tasks.Summary, build tasks.Builder) error {
	var consulFn, apiFn func(context.Context) (*api.Client, error)
	if inv.Consul != nil {
		consulFn = func(ctx context.Context) (*api.Client, error) {
			if apiFn == nil {
				return nil, errors.New("resume: Consul asked for before the run's connections were made")
			}
			return apiFn(ctx)
		}
	}
	rb, err := build(ctx, &tasks.Rebuild{Run: s, Inventory: inv, Limit: opts.Limit, Force: opts.Force, Plan: opts.DryRun, Getenv: opts.Getenv, Consul: consulFn})
	if err != nil {
		return err
	}
	eng, closeFn, err := opts.Engine(inv, rb.Secrets)
	if err != nil {
		return err
	}
	defer closeFn()
	apiFn, _ = opts.APIs(inv, eng)
	return continueRun(ctx, opts, eng, rb, s)
}

// continueRun runs rb from the run's first unfinished step, leaving alone
// the hosts that finished that step (unless --all-hosts), as Ansible's
// retry files do.
func continueRun(ctx context.Context, opts *ResumeOptions, eng *tasks.Engine, rb *tasks.Runbook, s *tasks.Summary) error {
	from := s.NextStep()
	if from > len(rb.Steps) {
		return tasks.Refusef("run %s has no unfinished step", s.ID)
	}
	step := rb.Steps[from-1]
	if !opts.AllHosts {
		step.Done = s.HostsDone(from, step.After != nil)
		if len(step.Done) > 0 {
			fmt.Fprintf(opts.IO.ErrOut, "step %d already finished on %s in run %s: left alone (--all-hosts redoes it there)\n",
				from, strings.Join(slices.Sorted(maps.Keys(step.Done)), ", "), s.ID)
		}
	}
	if opts.DryRun {
		return planOnly(ctx, opts.IO, eng, rb, from)
	}
	fmt.Fprintf(opts.IO.ErrOut, "resuming run %s at step %d of %d: %s\n", s.ID, from, len(rb.Steps), step.Title)
	_, err := eng.Run(ctx, rb, tasks.RunOptions{ResumeID: s.ID, From: from})
	return quiet(err)
}

func currentUser() string {
	if u, err := user.Current(); err == nil {
		return u.Username
	}
	return os.Getenv("USER")
}
