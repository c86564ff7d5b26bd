package tasks

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/user"
	"path/filepath"
	"time"
)

// Engine runs runbooks.
type Engine struct {
	Env      *Env
	Reporter Reporter
	StateDir string
	Version  string
	Command  string // the hoctl command line, for the journal
	// Yes skips confirmations; Confirm asks otherwise (nil: cannot ask,
	// so a run needing a yes is refused).
	Yes     bool
	Confirm func(ctx context.Context, question string) (bool, error)
	// ClusterLock takes the cluster-wide lock for a runbook that wants
	// one; nil means none is configured, which such a runbook refuses.
	ClusterLock func(ctx context.Context, scope, holder string) (ClusterLock, error)
	// Parallel caps hosts acted on at once within a step.
	Parallel int
	Now      func() time.Time
}

// ClusterLock is a held cluster-wide lock.
type ClusterLock interface {
	// Lost is closed if the lock is lost (session invalidated).
	Lost() <-chan struct{}
	Release() error
}

// ErrLockLost stops a run whose cluster lock was lost.
var ErrLockLost = errors.New("cluster lock lost (session invalidated); stopped before the next step")

func (e *Engine) parallel() int {
	if e.Parallel > 0 {
		return e.Parallel
	}
	return 32
}

func (e *Engine) now() time.Time {
	if e.Now != nil {
		return e.Now()
	}
	return time.Now()
}

// RunOptions control one run.
type RunOptions struct {
	// Resume continues run ResumeID from step From (1-based) in its
	// existing journal; otherwise a new run starts at step 1.
	ResumeID string
	From     int
	// SkipPlan is set when the caller already showed the plan.
	SkipPlan bool
}

// NoTerminalToConfirm is why a run that needs a yes and has no terminal
// to ask on (cron, systemd, ssh without -t, a runbook step) stops.
const NoTerminalToConfirm = "refusing to change anything without --yes: no terminal to confirm on (use --yes where no one can answer: cron, systemd, a runbook step)"

// Run plans, confirms, locks, journals and runs rb. It returns the run id
// and the first error; errors are *RefusedError, *StepError,
// *UnverifiedError, *ConfirmError, *LockedError, ErrLockLost or a
// context error.
func (e *Engine) Run(ctx context.Context, rb *Runbook, o RunOptions) (string, error) {
	from := o.From
	if from < 1 {
		from = 1
	}
	if from > len(rb.Steps) {
		return o.ResumeID, fmt.Errorf("nothing to run: the runbook has %d steps", len(rb.Steps))
	}
	// Plan first: the operator sees every command and the state of every
	// check before deciding.
	plan, err := e.Plan(ctx, rb, from)
	if err != nil {
		return o.ResumeID, err
	}
	if !o.SkipPlan {
		e.Reporter.Plan(plan)
	}
	// A before check that fails now will refuse its step: say so and stop
	// here, before asking and before journaling a run that cannot go
	// through. (Checks that need earlier steps are not run by the plan.)
	if err := plan.Refusal(); err != nil {
		return o.ResumeID, err
	}
	if err := e.confirmRun(ctx, len(rb.Steps)-from+1, plan.HostCount); err != nil {
		return o.ResumeID, err
	}

	id := o.ResumeID
	if id == "" {
		id = NewRunID(e.now())
	}
	holder := LockHolder{PID: os.Getpid(), Run: id, Start: e.now().UTC(), User: operator()}
	if rb.Lock != "" {
		local, err := AcquireLocal(e.StateDir, rb.Lock, holder)
		if err != nil {
			return id, err
		}
		defer func() { _ = local.Release() }()
	}
	var cluster ClusterLock
	if rb.ClusterLock {
		if e.ClusterLock == nil {
			return id, errors.New("this runbook needs a cluster lock but the inventory configures no consul")
		}
		cluster, err = e.ClusterLock(ctx, rb.Lock, fmt.Sprintf("%s pid %d run %s", holder.User, holder.PID, id))
		if err != nil {
			return id, err
		}
		defer func() { _ = cluster.Release() }()
	}

	var j *Journal
	if o.ResumeID != "" {
		j, err = ReopenJournal(e.StateDir, id, rb.Secrets)
	} else {
		j, err = CreateJournal(e.StateDir, id, rb.Secrets)
	}
	if err != nil {
		return id, err
	}
	defer func() { _ = j.Close() }()
	if err := j.Write(e.startRecord(rb, o, id, holder, from)); err != nil {
		return id, err
	}
	e.Reporter.RunStart(id, rb, from)

	runStart := time.Now()
	failedStep, runErr := e.runSteps(ctx, j, rb, from, cluster)
	status := runStatus(ctx, runErr)
	end := Record{Type: "run_end", Status: status, Error: errString(runErr), Duration: ms(time.Since(runStart))}
	if failedStep > 0 {
		end.Step, end.Title = failedStep, rb.Steps[failedStep-1].Title
	}
	_ = j.Write(end)
	e.Reporter.RunEnd(id, status, runErr, time.Since(runStart))
	if runErr != nil {
		// The reporter has said how the run ended; main must not say it
		// again ("✗ interrupted" twice).
		runErr = &ReportedError{Err: runErr}
	}
	return id, runErr
}

// confirmRun asks the operator whether to run, unless --yes.
func (e *Engine) confirmRun(ctx context.Context, steps, hosts int) error {
	if e.Yes {
		return nil
	}
	if e.Confirm == nil {
		return &ConfirmError{Reason: NoTerminalToConfirm}
	}
	ok, err := e.Confirm(ctx, fmt.Sprintf("Run %d step(s) on %d host(s)?", steps, hosts))
	if err != nil {
		return err
	}
	if !ok {
		return &ConfirmError{Reason: "not confirmed: nothing was changed"}
	}
	return nil
}

// startRecord is the journal's first record of a run or a resume: what
// resume needs to rebuild it, and who ran it where.
func (e *Engine) startRecord(rb *Runbook, o RunOptions, id string, holder LockHolder, from int) Record {
	start := Record{Run: id, Command: e.Command, Name: rb.Name, Operator: holder.User, Workstation: hostname(),
		PID: holder.PID, ProcStart: procStart(holder.PID), Version: e.Version, Inventory: absPath(e.Env.Inventory.Path), InventoryHash: e.Env.Inventory.Hash,
		Kind: rb.Kind, Params: copyMap(rb.Params), FromStep: from, Retry: rb.Retry}
	if o.ResumeID != "" {
		start.Type = "resume"
		return start
	}
	start.Type = "run_start"
	for _, s := range rb.Steps {
		start.Steps = append(start.Steps, s.Title)
	}
	return start
}

// runSteps runs the steps from from on, in order, and says which one
// stopped the run (0: none did) and why.
func (e *Engine) runSteps(ctx context.Context, j *Journal, rb *Runbook, from int, cluster ClusterLock) (failed int, err error) {
	for i := from; i <= len(rb.Steps); i++ {
		s := rb.Steps[i-1]
		if cluster != nil {
			select {
			case <-cluster.Lost():
				return i, ErrLockLost
			default:
			}
		}
		if ctx.Err() != nil {
			return i, ctx.Err()
		}
		if err := e.confirmStep(ctx, i, s); err != nil {
			return i, err
		}
		status, err := e.runStep(ctx, j, i, s)
		if err != nil && s.ContinueOnError && status != StatusInterrupted {
			status = "continued"
		}
		_ = j.Write(Record{Type: "step_end", Step: i, Title: s.Title, Status: status, Error: errString(err)})
		e.Reporter.StepEnd(i, s, status, err)
		if err != nil && status != "continued" {
			return i, err
		}
	}
	return 0, nil
}

// confirmStep asks before a step marked confirm, unless --yes.
func (e *Engine) confirmStep(ctx context.Context, i int, s *Step) error {
	if !s.Confirm || e.Yes {
		return nil
	}
	ok := false
	if e.Confirm != nil {
		var err error
		ok, err = e.Confirm(ctx, fmt.Sprintf("Step %d: %s — go ahead?", i, s.Title))
		if err != nil {
			return err
		}
	}
	if !ok {
		return &ConfirmError{Reason: fmt.Sprintf("step %d %q not confirmed: stopped before it", i, s.Title)}
	}
	return nil
}

// runStatus is the run's journaled status for the error that ended it.
func runStatus(ctx context.Context, runErr error) string {
	switch {
	case runErr == nil:
		return StatusOK
	case ctx.Err() != nil && errors.Is(runErr, ctx.Err()):
		// The run's own context, not a step's bounded wait (a host
		// not back within --wait also ends in DeadlineExceeded).
		return StatusInterrupted
	case errors.As(runErr, new(*RefusedError)):
		return StatusRefused
	case errors.As(runErr, new(*UnverifiedError)):
		return StatusUnverified
	case errors.As(runErr, new(*ConfirmError)):
		return StatusNotConfirmed
	default:
		return StatusFailed
	}
}

// absPath makes a journaled path usable from any directory (resume).
func absPath(p string) string {
	if p == "" {
		return p
	}
	if a, err := filepath.Abs(p); err == nil {
		return a
	}
	return p
}

// ReportedError is a run's error that the Reporter has already shown.
type ReportedError struct{ Err error }

func (e *ReportedError) Error() string { return e.Err.Error() }
func (e *ReportedError) Unwrap() error { return e.Err }

func copyMap(m map[string]string) map[string]string {
	if m == nil {
		return nil
	}
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	if interrupted(err) {
		return StatusInterrupted // Go's "context canceled" means nothing to an operator
	}
	return err.Error()
}

// interrupted reports whether err is work stopped by Ctrl-C (or SIGTERM).
func interrupted(err error) bool { return errors.Is(err, context.Canceled) }

// ExitInterrupted is the exit code journaled for a command Ctrl-C
// stopped, as hoctl itself exits (docs/exit-codes.md).
const ExitInterrupted = 130

// markInterrupted makes a host's record say that Ctrl-C stopped it: status
// interrupted and exit 130, not a failure with whatever exit code the
// cut-short output had (0 for a send).
func markInterrupted(r *Record, err error) {
	if interrupted(err) {
		code := ExitInterrupted
		r.ExitCode, r.Status = &code, StatusInterrupted
	}
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

func operator() string {
	if u, err := user.Current(); err == nil {
		return u.Username
	}
	return os.Getenv("USER")
}

func hostname() string {
	h, _ := os.Hostname()
	return h
}
