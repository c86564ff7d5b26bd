package cli

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"strings"

	"github.com/hoctl/hoctl/pkg/failover"
	"github.com/hoctl/hoctl/pkg/inventory"
	"github.com/hoctl/hoctl/pkg/tasks"
	"github.com/spf13/cobra"
)

// ResumeOptions are the inputs of `hoctl resume`.
type ResumeOptions struct {
	F     *Factory
	RunID string
	Force bool
	// Limit narrows the rest of the run's steps (--limit TARGET); empty
	// keeps the limit the run was started with, if any.
	Limit string
}

// ResumeRefusedError is a run that resume will not continue.
type ResumeRefusedError struct{ Reason string }

func (e *ResumeRefusedError) Error() string { return e.Reason }

// NewCmdResume continues a failed or interrupted run.
func NewCmdResume(f *Factory, runF func(*ResumeOptions) error) *cobra.Command {
	opts := &ResumeOptions{F: f}
	cmd := &cobra.Command{
		Use:   "resume RUN-ID",
		Short: "Continue a failed or interrupted run from its first unfinished step",
		Long: `Continue run RUN-ID (see hoctl history) from its first unfinished step,
after running that step's before check again. Refuses a run that finished,
one whose inventory or runbook file changed since (unless --force), and one
still running.`,
		Args: rangeArgs(1, 1),
		RunE: func(c *cobra.Command, args []string) error {
			opts.RunID = args[0]
			if runF != nil {
				return runF(opts)
			}
			return resumeRun(c.Context(), opts)
		},
	}
	cmd.Flags().BoolVar(&opts.Force, "force", false, "resume although the inventory or runbook changed")
	cmd.Flags().StringVar(&opts.Limit, "limit", "", "narrow the remaining steps' hosts to those TARGET selects (default: the run's own --limit)")
	honoursDryRun(f, cmd, "run the remaining steps' before checks and print the plan; change nothing")
	honoursYes(f, cmd)
	return cmd
}

func resumeRun(ctx context.Context, opts *ResumeOptions) error {
	f := opts.F
	dir := tasks.StateDir(f.Getenv)
	recs, err := tasks.ReadJournal(dir, opts.RunID)
	if err != nil {
		return err
	}
	s := tasks.Summarize(opts.RunID, recs)
	switch s.Status {
	case tasks.StatusOK:
		return &ResumeRefusedError{Reason: fmt.Sprintf("run %s finished successfully: nothing to resume", s.ID)}
	case tasks.StatusRunning:
		return &ResumeRefusedError{Reason: fmt.Sprintf("run %s is still running (pid %d)", s.ID, s.PID)}
	}
	inv, err := f.Inventory()
	if err != nil {
		return err
	}
	if inv.Hash != s.InventoryHash && !opts.Force {
		return &ResumeRefusedError{Reason: fmt.Sprintf("the inventory changed since run %s started (%s): check it, then use --force", s.ID, inv.Path)}
	}
	if s.Kind == failover.KindFailover {
		if opts.Limit != "" {
			return usagef("--limit narrows runbook files; run %s is a failover, whose hosts are the service's", s.ID)
		}
		return resumeFailover(ctx, opts, inv, s)
	}
	if s.Kind != tasks.KindFile {
		return &ResumeRefusedError{Reason: fmt.Sprintf("run %s (%q) cannot be resumed by this hoctl", s.ID, s.Kind)}
	}
	file := s.Params["file"]
	data, err := os.ReadFile(file)
	if err != nil {
		return &ResumeRefusedError{Reason: fmt.Sprintf("runbook %s of run %s: %v", file, s.ID, err)}
	}
	sum := sha256.Sum256(data)
	if hex.EncodeToString(sum[:]) != s.Params["sha256"] && !opts.Force {
		return &ResumeRefusedError{Reason: fmt.Sprintf("runbook %s changed since run %s started: check it, then use --force", file, s.ID)}
	}
	vars := map[string]string{}
	for k, v := range s.Params {
		if name, ok := strings.CutPrefix(k, "var."); ok {
			vars[name] = v
		}
	}
	limit := opts.Limit
	if limit == "" {
		limit = s.Params["limit"]
	}
	rb, err := tasks.ParseRunbook(file, data, inv, tasks.LoadOptions{Vars: vars, Getenv: f.Getenv, Limit: limit})
	if err != nil {
		return err
	}
	from := s.NextStep()
	if from > len(rb.Steps) {
		return &ResumeRefusedError{Reason: fmt.Sprintf("run %s has no unfinished step", s.ID)}
	}
	eng, closeFn, err := f.Engine(inv, rb.Secrets)
	if err != nil {
		return err
	}
	defer closeFn()
	if f.DryRun {
		return planOnly(ctx, f, eng, rb, from)
	}
	fmt.Fprintf(f.IO.ErrOut, "resuming run %s at step %d of %d: %s\n", s.ID, from, len(rb.Steps), rb.Steps[from-1].Title)
	_, err = eng.Run(ctx, rb, tasks.RunOptions{ResumeID: s.ID, From: from})
	return quiet(err)
}

// resumeFailover rebuilds a failover with the run's own parameters: the
// old primary is the one the run recorded, not the owner key, which the
// run may already have moved.
func resumeFailover(ctx context.Context, opts *ResumeOptions, inv *inventory.Inventory, s *tasks.Summary) error {
	f := opts.F
	eng, closeFn, err := f.Engine(inv, nil)
	if err != nil {
		return err
	}
	defer closeFn()
	fo := &FailoverOptions{F: f, To: s.Params["to"], Service: s.Params["service"],
		PrimaryDown: s.Params["primary_down"] == "true", AcceptLag: s.Params["accept_lag"] == "true"}
	rb, err := failoverRunbook(ctx, f, inv, eng, fo, s.Params["from"], s.Params["token"])
	if err != nil {
		return err
	}
	from := s.NextStep()
	if from > len(rb.Steps) {
		return &ResumeRefusedError{Reason: fmt.Sprintf("run %s has no unfinished step", s.ID)}
	}
	if f.DryRun {
		return planOnly(ctx, f, eng, rb, from)
	}
	fmt.Fprintf(f.IO.ErrOut, "resuming run %s at step %d of %d: %s\n", s.ID, from, len(rb.Steps), rb.Steps[from-1].Title)
	_, err = eng.Run(ctx, rb, tasks.RunOptions{ResumeID: s.ID, From: from})
	return quiet(err)
}
