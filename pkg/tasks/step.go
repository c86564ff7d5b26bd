package tasks

import (
	"context"
	"strings"
	"time"

	"github.com/hoctl/hoctl/pkg/inventory"
	"github.com/hoctl/hoctl/pkg/sshexec"
)

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
		refusal := e.beforeChecks(ctx, j, i, s, hosts)
		if ctx.Err() != nil {
			return StatusInterrupted, ctx.Err()
		}
		if refusal != nil {
			return StatusRefused, refusal
		}
	}
	outcomes := e.actInBatches(ctx, j, i, s, hosts)
	if ctx.Err() != nil {
		return StatusInterrupted, ctx.Err()
	}
	return stepOutcome(i, s, len(hosts), outcomes)
}

// beforeChecks runs the step's before check on every host at once: a
// *RefusedError naming the hosts where it failed, or nil.
func (e *Engine) beforeChecks(ctx context.Context, j *Journal, i int, s *Step, hosts []*inventory.Host) error {
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
	if first == nil {
		return nil
	}
	return &RefusedError{Step: i, Title: s.Title, Hosts: names, Err: first}
}

// actInBatches runs the action and after check on the hosts, serial at
// a time, and starts no new batch once more than MaxFail hosts failed.
func (e *Engine) actInBatches(ctx context.Context, j *Journal, i int, s *Step, hosts []*inventory.Host) []hostOutcome {
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
	return outcomes
}

// stepOutcome is the step's status and error from its hosts' outcomes
// (of hosts in all; the rest were not reached).
func stepOutcome(i int, s *Step, hosts int, outcomes []hostOutcome) (string, error) {
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
	notRun := hosts - len(outcomes)
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
		e.ran(j, i, s, phase, Record{Type: "check", Step: i, Host: h.Name, Phase: phase, Cmd: cmd, Attempt: attempt}, out, err)
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
	e.ran(j, i, s, "run", Record{Type: "action", Step: i, Host: h.Name, Cmd: cmd}, out, err)
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
	e.ran(j, i, s, "undo", Record{Type: "undo", Step: i, Host: h.Name, Cmd: cmd}, out, err)
}

// ran journals what one host's check, action or undo did (rec, its
// outcome filled in here) and reports it as the event of phase.
func (e *Engine) ran(j *Journal, i int, s *Step, phase string, rec Record, out *Output, err error) {
	ok := err == nil
	rec.OK, rec.Error = &ok, errString(err)
	fill(&rec, out)
	markInterrupted(&rec, err)
	_ = j.Write(rec)
	e.Reporter.HostEvent(i, s, HostEvent{Host: rec.Host, Phase: phase, Cmd: rec.Cmd, OK: ok, Output: out, Err: err, Attempt: rec.Attempt})
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
