package tasks

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/user"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/hoctl/hoctl/pkg/inventory"
	"github.com/hoctl/hoctl/pkg/sshexec"
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

// PlanItem is one host's view of one step in a plan.
type PlanItem struct {
	Host            string `json:"host"`
	Before          string `json:"before,omitempty"`
	BeforeChecked   bool   `json:"before_checked"`
	BeforeOK        bool   `json:"before_ok"`
	BeforeOutput    string `json:"before_output,omitempty"`
	Run             string `json:"run"`
	After           string `json:"after,omitempty"`
	Undo            string `json:"undo,omitempty"`
	NotCheckedWhy   string `json:"not_checked,omitempty"`
	BeforeUnreached bool   `json:"before_unreachable,omitempty"`

	beforeErr error
}

// PlanStep is one step of a plan.
type PlanStep struct {
	Index   int        `json:"step"`
	Title   string     `json:"title"`
	Confirm bool       `json:"confirm,omitempty"`
	Serial  int        `json:"serial,omitempty"`
	Items   []PlanItem `json:"hosts"`
	// Skipped are the hosts the step's when: leaves out.
	Skipped []PlanSkip `json:"skipped,omitempty"`
}

// PlanSkip is a host a step leaves out, and why.
type PlanSkip struct {
	Host   string `json:"host"`
	Reason string `json:"reason"`
}

// Plan is what a run would do, with its before checks run now.
type Plan struct {
	Name      string     `json:"name"`
	Steps     []PlanStep `json:"steps"`
	Failing   int        `json:"failing_checks"`
	FromStep  int        `json:"from_step"`
	HostCount int        `json:"hosts"`
	// Warnings are the runbook's (values pasted into commands unquoted).
	Warnings []string `json:"warnings,omitempty"`
}

// Plan runs every before check that does not need earlier steps' actions
// and returns the plan. Nothing changes on any host.
func (e *Engine) Plan(ctx context.Context, rb *Runbook, from int) (*Plan, error) {
	p := &Plan{Name: rb.Name, FromStep: from, Warnings: rb.Warnings}
	hostSet := map[string]bool{}
	for i := from; i <= len(rb.Steps); i++ {
		s := rb.Steps[i-1]
		ps := PlanStep{Index: i, Title: s.Title, Confirm: s.Confirm, Serial: s.Serial}
		for _, n := range s.skipped() {
			ps.Skipped = append(ps.Skipped, PlanSkip{Host: n, Reason: s.Skip[n]})
		}
		hosts := s.hosts()
		ps.Items = make([]PlanItem, len(hosts))
		var mu sync.Mutex
		sshexec.ForEach(ctx, e.parallel(), hosts, func(ctx context.Context, k int, h *inventory.Host) {
			it := PlanItem{Host: h.Name}
			it.Before, _ = describe(s.Before, h)
			switch {
			case s.Before == nil:
			case s.NeedsPrevious && i > from:
				it.NotCheckedWhy = "runs after the earlier steps"
			default:
				it.BeforeChecked = true
				out, err := s.Before.Run(ctx, e.Env, h, s.Timeout)
				it.BeforeOK = err == nil
				it.beforeErr = err
				if err != nil {
					it.BeforeOutput = strings.TrimSpace(errOutput(out, err))
					var ce *sshexec.ConnError
					it.BeforeUnreached = errors.As(err, &ce)
				}
			}
			// Described after the check ran: an action may depend on what
			// its check found (the parent a send will use).
			var err error
			if it.Run, err = describe(s.Action, h); err != nil {
				it.Run = "(" + err.Error() + ")"
			}
			it.After, _ = describe(s.After, h)
			it.Undo, _ = describe(s.Undo, h)
			mu.Lock()
			ps.Items[k] = it
			if it.BeforeChecked && !it.BeforeOK {
				p.Failing++
			}
			hostSet[h.Name] = true
			mu.Unlock()
		})
		p.Steps = append(p.Steps, ps)
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
	}
	p.HostCount = len(hostSet)
	return p, nil
}

// Refusal is the error of the first step whose before check fails now,
// or nil.
func (p *Plan) Refusal() error {
	for _, s := range p.Steps {
		var hosts []string
		var first error
		for _, it := range s.Items {
			if it.BeforeChecked && !it.BeforeOK {
				hosts = append(hosts, it.Host)
				if first == nil {
					first = it.beforeErr
					if it.BeforeOutput != "" {
						first = &planCheckError{msg: it.BeforeOutput, err: it.beforeErr}
					}
				}
			}
		}
		if first != nil {
			return &RefusedError{Step: s.Index, Title: s.Title, Hosts: hosts, Err: first, AtPlan: true}
		}
	}
	return nil
}

// planCheckError is a failed before check as the plan shows it (its
// output), keeping the cause for the exit code.
type planCheckError struct {
	msg string
	err error
}

func (e *planCheckError) Error() string { return e.msg }
func (e *planCheckError) Unwrap() error { return e.err }

func describe(op Op, h *inventory.Host) (string, error) {
	if op == nil {
		return "", nil
	}
	return op.Describe(h)
}

func errOutput(out *Output, err error) string {
	var parts []string
	if out != nil {
		if s := strings.TrimSpace(out.Stderr); s != "" {
			parts = append(parts, s)
		} else if s := strings.TrimSpace(out.Stdout); s != "" {
			parts = append(parts, s)
		}
	}
	if err != nil && (len(parts) == 0 || !strings.Contains(err.Error(), parts[0])) {
		var ee *sshexec.ExitError
		if errors.As(err, &ee) {
			parts = append(parts, fmt.Sprintf("exit %d", ee.Code))
		} else {
			parts = append(parts, err.Error())
		}
	}
	return strings.Join(parts, ": ")
}

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
	if !e.Yes {
		if e.Confirm == nil {
			return o.ResumeID, &ConfirmError{Reason: NoTerminalToConfirm}
		}
		q := fmt.Sprintf("Run %d step(s) on %d host(s)?", len(rb.Steps)-from+1, plan.HostCount)
		ok, err := e.Confirm(ctx, q)
		if err != nil {
			return o.ResumeID, err
		}
		if !ok {
			return o.ResumeID, &ConfirmError{Reason: "not confirmed: nothing was changed"}
		}
	}

	id := o.ResumeID
	if id == "" {
		id = NewRunID(e.now())
	}
	holder := LockHolder{PID: os.Getpid(), Run: id, Start: e.now().UTC(), User: operator()}
	var local *LocalLock
	if rb.Lock != "" {
		local, err = AcquireLocal(e.StateDir, rb.Lock, holder)
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
	start := Record{Run: id, Command: e.Command, Name: rb.Name, Operator: holder.User, Workstation: hostname(),
		PID: holder.PID, ProcStart: procStart(holder.PID), Version: e.Version, Inventory: absPath(e.Env.Inventory.Path), InventoryHash: e.Env.Inventory.Hash,
		Kind: rb.Kind, Params: copyMap(rb.Params), FromStep: from, Retry: rb.Retry}
	if o.ResumeID != "" {
		start.Type = "resume"
	} else {
		start.Type = "run_start"
		for _, s := range rb.Steps {
			start.Steps = append(start.Steps, s.Title)
		}
	}
	if err := j.Write(start); err != nil {
		return id, err
	}
	e.Reporter.RunStart(id, rb, from)

	runStart := time.Now()
	var runErr error
	failedStep := 0
	for i := from; i <= len(rb.Steps); i++ {
		s := rb.Steps[i-1]
		if cluster != nil {
			select {
			case <-cluster.Lost():
				runErr, failedStep = ErrLockLost, i
			default:
			}
			if runErr != nil {
				break
			}
		}
		if ctx.Err() != nil {
			runErr, failedStep = ctx.Err(), i
			break
		}
		if s.Confirm && !e.Yes {
			ok := false
			if e.Confirm != nil {
				ok, err = e.Confirm(ctx, fmt.Sprintf("Step %d: %s — go ahead?", i, s.Title))
				if err != nil {
					runErr, failedStep = err, i
					break
				}
			}
			if !ok {
				runErr, failedStep = &ConfirmError{Reason: fmt.Sprintf("step %d %q not confirmed: stopped before it", i, s.Title)}, i
				break
			}
		}
		status, err := e.runStep(ctx, j, i, s)
		if err != nil && s.ContinueOnError && status != StatusInterrupted {
			status = "continued"
		}
		_ = j.Write(Record{Type: "step_end", Step: i, Title: s.Title, Status: status, Error: errString(err)})
		e.Reporter.StepEnd(i, s, status, err)
		if err != nil && status != "continued" {
			runErr, failedStep = err, i
			break
		}
	}
	status := StatusOK
	switch {
	case runErr == nil:
	case ctx.Err() != nil && errors.Is(runErr, ctx.Err()):
		// The run's own context, not a step's bounded wait (a host
		// not back within --wait also ends in DeadlineExceeded).
		status = StatusInterrupted
	case errors.As(runErr, new(*RefusedError)):
		status = StatusRefused
	case errors.As(runErr, new(*UnverifiedError)):
		status = StatusUnverified
	case errors.As(runErr, new(*ConfirmError)):
		status = StatusNotConfirmed
	default:
		status = StatusFailed
	}
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

type hostOutcome struct {
	host   *inventory.Host
	ran    bool // the action started
	status string
	err    error
}

// runStep runs one step: every host's before check first (if one fails the
// step refuses and nothing runs), then the action and after check per
// host, in batches, stopping new batches once more than MaxFail hosts
// failed.
func (e *Engine) runStep(ctx context.Context, j *Journal, i int, s *Step) (string, error) {
	hosts := s.hosts()
	_ = j.Write(Record{Type: "step_start", Step: i, Title: s.Title, Hosts: s.hostNames()})
	e.Reporter.StepStart(i, s)
	for _, n := range s.skipped() {
		// A when: that renders false: journaled as that check, passed,
		// with the host left out.
		ok := true
		_ = j.Write(Record{Type: "check", Step: i, Host: n, Phase: "when", Cmd: s.Skip[n], OK: &ok, Output: "skipped"})
		e.Reporter.HostEvent(i, s, HostEvent{Host: n, Phase: "when", Cmd: s.Skip[n], OK: true, Output: &Output{Stdout: "skipped", Note: "skipped"}})
	}

	if s.Before != nil {
		refused := make([]error, len(hosts))
		sshexec.ForEach(ctx, e.parallel(), hosts, func(ctx context.Context, k int, h *inventory.Host) {
			refused[k] = e.check(ctx, j, i, s, h, "before", s.Before, 0, 0)
		})
		var names []string
		var first error
		for k, err := range refused {
			if err != nil {
				names = append(names, hosts[k].Name)
				if first == nil {
					first = err
				}
			}
		}
		if ctx.Err() != nil {
			return StatusInterrupted, ctx.Err()
		}
		if first != nil {
			return StatusRefused, &RefusedError{Step: i, Title: s.Title, Hosts: names, Err: first}
		}
	}

	batch := s.Serial
	if batch <= 0 || batch > len(hosts) {
		batch = len(hosts)
	}
	var outcomes []hostOutcome
	failed := 0
	for start := 0; start < len(hosts); start += batch {
		if ctx.Err() != nil {
			break
		}
		if failed > s.MaxFail {
			break
		}
		end := min(start+batch, len(hosts))
		res := make([]hostOutcome, end-start)
		sshexec.ForEach(ctx, e.parallel(), hosts[start:end], func(ctx context.Context, k int, h *inventory.Host) {
			res[k] = e.act(ctx, j, i, s, h)
		})
		for _, r := range res {
			if r.err != nil {
				failed++
			}
		}
		outcomes = append(outcomes, res...)
	}
	if ctx.Err() != nil {
		return StatusInterrupted, ctx.Err()
	}
	var failedHosts, unverifiedHosts []string
	var firstFail, firstUnverified error
	for _, o := range outcomes {
		switch o.status {
		case StatusFailed:
			failedHosts = append(failedHosts, o.host.Name)
			if firstFail == nil {
				firstFail = o.err
			}
		case StatusUnverified:
			unverifiedHosts = append(unverifiedHosts, o.host.Name)
			if firstUnverified == nil {
				firstUnverified = o.err
			}
		}
	}
	notRun := len(hosts) - len(outcomes)
	if len(failedHosts)+len(unverifiedHosts) <= s.MaxFail && notRun == 0 {
		return StatusOK, nil
	}
	// Hosts a serial step did not reach once max_fail was exceeded are a
	// consequence, not the failure: the step failed the way its hosts
	// did, with or without serial (an after check alone: unverified).
	if len(failedHosts) > 0 {
		return StatusFailed, &StepError{Step: i, Title: s.Title, Hosts: append(failedHosts, unverifiedHosts...), Err: firstFail, NotRun: notRun, MaxFail: s.MaxFail}
	}
	return StatusUnverified, &UnverifiedError{Step: i, Title: s.Title, Hosts: unverifiedHosts, Err: firstUnverified, NotRun: notRun, MaxFail: s.MaxFail}
}

// check runs a before or after check, retrying an after check that waits
// for a condition.
func (e *Engine) check(ctx context.Context, j *Journal, i int, s *Step, h *inventory.Host, phase string, op Op, retries int, delay time.Duration) error {
	cmd, err := op.Describe(h)
	if err != nil {
		return err
	}
	for attempt := 1; ; attempt++ {
		e.Reporter.HostEvent(i, s, HostEvent{Host: h.Name, Phase: phase, Cmd: cmd, Running: true, Attempt: attempt})
		out, err := op.Run(e.showLines(ctx, i, h), e.Env, h, s.Timeout)
		ok := err == nil
		rec := Record{Type: "check", Step: i, Host: h.Name, Phase: phase, Cmd: cmd, OK: &ok, Attempt: attempt, Error: errString(err)}
		fill(&rec, out)
		markInterrupted(&rec, err)
		_ = j.Write(rec)
		e.Reporter.HostEvent(i, s, HostEvent{Host: h.Name, Phase: phase, Cmd: cmd, OK: ok, Output: out, Err: err, Attempt: attempt})
		if err == nil || attempt > retries || ctx.Err() != nil {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(delay):
		}
	}
}

func fill(r *Record, out *Output) {
	if out == nil {
		return
	}
	if !out.NoExit {
		code := out.ExitCode
		r.ExitCode = &code
	}
	r.Duration = ms(out.Duration)
	r.Output = strings.TrimSpace(out.Stdout + "\n" + out.Stderr)
}

func (e *Engine) act(ctx context.Context, j *Journal, i int, s *Step, h *inventory.Host) hostOutcome {
	o := hostOutcome{host: h, status: StatusOK}
	cmd, err := s.Action.Describe(h)
	if err != nil {
		o.status, o.err = StatusFailed, err
		return o
	}
	e.Reporter.HostEvent(i, s, HostEvent{Host: h.Name, Phase: "run", Cmd: cmd, Running: true})
	o.ran = true
	actx := context.WithValue(e.showLines(ctx, i, h), progressKey{}, func(msg string) { e.Reporter.Progress(i, h.Name, msg) })
	out, err := s.Action.Run(actx, e.Env, h, s.Timeout)
	ok := err == nil
	rec := Record{Type: "action", Step: i, Host: h.Name, Cmd: cmd, OK: &ok, Error: errString(err)}
	fill(&rec, out)
	markInterrupted(&rec, err)
	_ = j.Write(rec)
	e.Reporter.HostEvent(i, s, HostEvent{Host: h.Name, Phase: "run", Cmd: cmd, OK: ok, Output: out, Err: err})
	if err != nil {
		o.status, o.err = StatusFailed, err
		e.undo(ctx, j, i, s, h)
		return o
	}
	if s.After != nil {
		if err := e.check(ctx, j, i, s, h, "after", s.After, s.Retries, s.RetryDelay); err != nil {
			o.status, o.err = StatusUnverified, err
			if ctx.Err() == nil {
				e.undo(ctx, j, i, s, h)
			}
		}
	}
	return o
}

// UndoAfterInterrupt bounds the undo of an action that Ctrl-C cut short.
const UndoAfterInterrupt = 30 * time.Second

// undo reverts a step on a host where its action or after check failed.
func (e *Engine) undo(ctx context.Context, j *Journal, i int, s *Step, h *inventory.Host) {
	if s.Undo == nil {
		return
	}
	if ctx.Err() != nil {
		// Interrupted mid-action (Ctrl-C during a send): the undo the plan
		// promised runs now, on a context of its own bounded in time,
		// rather than leaving half a change for the next run to find. A
		// second Ctrl-C still kills hoctl outright.
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(context.WithoutCancel(ctx), UndoAfterInterrupt)
		defer cancel()
	}
	cmd, err := s.Undo.Describe(h)
	if err != nil {
		return
	}
	e.Reporter.HostEvent(i, s, HostEvent{Host: h.Name, Phase: "undo", Cmd: cmd, Running: true})
	out, err := s.Undo.Run(e.showLines(ctx, i, h), e.Env, h, s.Timeout)
	ok := err == nil
	rec := Record{Type: "undo", Step: i, Host: h.Name, Cmd: cmd, OK: &ok, Error: errString(err)}
	fill(&rec, out)
	markInterrupted(&rec, err)
	_ = j.Write(rec)
	e.Reporter.HostEvent(i, s, HostEvent{Host: h.Name, Phase: "undo", Cmd: cmd, OK: ok, Output: out, Err: err})
}

type progressKey struct{}

// ReportProgress shows msg ("120 MiB of 256 MiB (46%), …") as the
// progress of the action ctx belongs to, on the run's reporter; outside
// an action it does nothing. The reporter shows it at a sane rate.
func ReportProgress(ctx context.Context, msg string) {
	if f, ok := ctx.Value(progressKey{}).(func(string)); ok {
		f(msg)
	}
}

// lineReporter is a Reporter that shows the last line a host's running
// command printed (the live view on a terminal); the others show output
// only once a command ended, so their lines and events stay as they were.
type lineReporter interface {
	HostLine(i int, host, line string)
}

type lineKey struct{}

// showLines gives ctx, for an op of step i on h, where to send the last
// line its command prints, when the run's reporter shows them.
func (e *Engine) showLines(ctx context.Context, i int, h *inventory.Host) context.Context {
	lr, ok := e.Reporter.(lineReporter)
	if !ok {
		return ctx
	}
	return context.WithValue(ctx, lineKey{}, func(line string) { lr.HostLine(i, h.Name, line) })
}

// lineShower is where the op ctx belongs to sends its command's last
// output line, or nil.
func lineShower(ctx context.Context) func(string) {
	f, _ := ctx.Value(lineKey{}).(func(string))
	return f
}
