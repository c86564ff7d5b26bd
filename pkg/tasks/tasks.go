// Package tasks runs hoctl's ordered steps: each step acts on hosts with an
// optional check before (must pass to start) and after (proves it worked),
// an optional undo, batching and failure thresholds. It plans (running the
// before checks for real, changing nothing), asks for confirmation,
// reports progress (live on a terminal, plain lines, or JSON events),
// journals every run step by step, resumes a failed run from its first
// unfinished step, and holds locks so two runs of the same scope exclude
// each other. Every mutating hoctl command is a Runbook run by it; operators
// write their own in YAML (see runbook.go).
package tasks

import (
	"context"
	"errors"
	"fmt"
	"github.com/hoctl/hoctl/pkg/exitcode"
	"strings"
	"time"

	"github.com/hoctl/hoctl/pkg/inventory"
	"github.com/hoctl/hoctl/pkg/sshexec"
)

// Runbook is an ordered list of steps and what identifies the run.
type Runbook struct {
	Name        string
	Description string
	// Lock is the scope two runs may not share (a local flock, and a
	// Consul lock when ClusterLock is set).
	Lock        string
	ClusterLock bool
	Steps       []*Step
	// Kind and Params let `hoctl resume` rebuild this runbook from the
	// journal: Kind names a registered builder, Params is its input.
	Kind   string
	Params map[string]string
	// Secrets are values never to be printed or journaled.
	Secrets []string
	// Resumable says `hoctl resume` can rebuild this runbook from its
	// journal; otherwise Retry says what to do after a failure instead.
	Resumable bool
	Retry     string
	// Warnings are problems that do not stop a run (a value pasted into
	// a command unquoted), shown with its plan.
	Warnings []string
}

// Step is one unit of work on a set of hosts.
type Step struct {
	Title  string
	Hosts  []*inventory.Host // none: the step runs once on this machine
	Before Op
	Action Op
	After  Op
	Undo   Op
	// Serial runs the hosts in batches of this size (0: all at once).
	Serial int
	// MaxFail is how many hosts may fail before the step fails.
	MaxFail int
	// Timeout bounds each command of the step (0: the host's default).
	Timeout time.Duration
	// Retries re-run a failing after check (for conditions that take time
	// to become true), RetryDelay apart.
	Retries    int
	RetryDelay time.Duration
	// Confirm asks the operator before this step (unless --yes).
	Confirm bool
	// ContinueOnError lets the runbook go on after this step fails.
	ContinueOnError bool
	// NeedsPrevious marks a before check that only makes sense once the
	// earlier steps have acted: a plan shows it but does not run it.
	NeedsPrevious bool
	// Done names hosts that already finished this step in the run being
	// resumed: the step leaves them alone (checks included).
	Done map[string]bool
	// Skip names hosts the step's when: leaves out, with why; plans,
	// the live view and the journal show them as skipped.
	Skip map[string]string
}

// Op is a check or an action on one host: a shell command or an API call.
type Op interface {
	// Describe is the exact command (or API call) for host h: what plans
	// show and journals record.
	Describe(h *inventory.Host) (string, error)
	// Run performs it. A non-nil error means the check failed or the
	// action did not succeed.
	Run(ctx context.Context, env *Env, h *inventory.Host, timeout time.Duration) (*Output, error)
}

// Output is what an Op printed.
type Output struct {
	Stdout   string
	Stderr   string
	ExitCode int
	// NoExit says a failed op ran no process whose status ExitCode could
	// be (an API call, a parse): the journal then records no exit code.
	NoExit   bool
	Duration time.Duration
	// Note is a one-line summary for the operator ("incremental from
	// services@…", "removed unfinished receives: …"), shown beside the
	// host's result; commands' own output is not.
	Note string
}

// Env is what ops need to act: the inventory and connections.
type Env struct {
	Inventory *inventory.Inventory
	Connect   func(ctx context.Context, h *inventory.Host) (sshexec.Runner, error)
	// Secrets are values redacted from every command's output as it
	// streams.
	Secrets []string
}

// LocalHost stands for this machine in steps without hosts.
var localHost = &inventory.Host{Name: "local", Address: inventory.LocalAddress}

// IsLocal reports whether h is the workstation pseudo-host.
func IsLocal(h *inventory.Host) bool { return h == localHost }

func (s *Step) hosts() []*inventory.Host {
	all := s.Hosts
	if len(all) == 0 {
		all = []*inventory.Host{localHost}
	}
	if len(s.Done) == 0 && len(s.Skip) == 0 {
		return all
	}
	out := []*inventory.Host{}
	for _, h := range all {
		if _, skip := s.Skip[h.Name]; !s.Done[h.Name] && !skip {
			out = append(out, h)
		}
	}
	return out
}

// skipped is the hosts when: leaves out, in the step's order.
func (s *Step) skipped() []string {
	if len(s.Skip) == 0 {
		return nil
	}
	all := s.Hosts
	if len(all) == 0 {
		all = []*inventory.Host{localHost}
	}
	var out []string
	for _, h := range all {
		if _, ok := s.Skip[h.Name]; ok && !s.Done[h.Name] {
			out = append(out, h.Name)
		}
	}
	return out
}

func (s *Step) hostNames() []string {
	var out []string
	for _, h := range s.hosts() {
		out = append(out, h.Name)
	}
	return out
}

// Errors mapped to exit codes by the CLI.

// RefusedError is a run that refused to start or to go on, and changed
// nothing by refusing (exit 3): a before check that failed (Step, Title,
// Hosts, Err), or, with Reason, what the cluster or the run itself is in
// (a run that already finished, a replication whose direction moved).
type RefusedError struct {
	Step  int
	Title string
	Hosts []string
	Err   error
	// AtPlan: the check failed when planned, so no run was started,
	// asked for or journaled.
	AtPlan bool
	// Reason is a refusal that is no step's: the whole message.
	Reason string
}

// Refusef is a refusal for a reason that is no step's.
func Refusef(format string, args ...any) error {
	return &RefusedError{Reason: fmt.Sprintf(format, args...)}
}

func (e *RefusedError) Error() string {
	if e.Reason != "" {
		return e.Reason
	}
	if e.AtPlan {
		return fmt.Sprintf("before check of step %d %q fails %s; nothing was run", e.Step, e.Title, onHosts(e.Hosts, e.Err))
	}
	return fmt.Sprintf("step %d %q refused to start: before check failed %s", e.Step, e.Title, onHosts(e.Hosts, e.Err))
}
func (e *RefusedError) Unwrap() error { return e.Err }

// ExitCode is exitcode.Refused: nothing was changed.
func (e *RefusedError) ExitCode() int { return exitcode.Refused }

// onHosts is "on HOSTS: ERR", naming a single host once when its error
// already starts with its name (as sshexec's errors do).
func onHosts(hosts []string, err error) string {
	if len(hosts) == 1 && err != nil {
		if msg := err.Error(); strings.HasPrefix(msg, hosts[0]+": ") || strings.HasPrefix(msg, hosts[0]+" (") {
			return "on " + msg
		}
	}
	return fmt.Sprintf("on %s: %v", strings.Join(hosts, ", "), err)
}

// StepError is a step whose action failed on more hosts than it allows
// (exit 1).
type StepError struct {
	Step  int
	Title string
	Hosts []string
	Err   error
	// NotRun hosts of a serial step were left alone once more than
	// MaxFail hosts had failed.
	NotRun, MaxFail int
}

func (e *StepError) Error() string {
	return fmt.Sprintf("step %d %q failed %s%s", e.Step, e.Title, onHosts(e.Hosts, e.Err), notRunText(e.NotRun, e.MaxFail))
}

func notRunText(notRun, maxFail int) string {
	if notRun == 0 {
		return ""
	}
	return fmt.Sprintf(" (%d more host(s) not run: more than max_fail %d failed)", notRun, maxFail)
}
func (e *StepError) Unwrap() error { return e.Err }

// UnverifiedError is a step whose action ran but whose after check failed:
// the change happened but is not verified (exit 5).
type UnverifiedError struct {
	Step            int
	Title           string
	Hosts           []string
	Err             error
	NotRun, MaxFail int
}

func (e *UnverifiedError) Error() string {
	return fmt.Sprintf("step %d %q changed but not verified: after check failed %s%s", e.Step, e.Title, onHosts(e.Hosts, e.Err), notRunText(e.NotRun, e.MaxFail))
}
func (e *UnverifiedError) Unwrap() error { return e.Err }

// ExitCode is exitcode.Unverified: the change happened.
func (e *UnverifiedError) ExitCode() int { return exitcode.Unverified }

// ErrNotConfirmed is an operator saying no, or no terminal to ask on.
var ErrNotConfirmed = errors.New("not confirmed")

// ConfirmError is a run that did not start (or go on) for want of a yes.
type ConfirmError struct{ Reason string }

func (e *ConfirmError) Error() string { return e.Reason }
func (e *ConfirmError) Unwrap() error { return ErrNotConfirmed }

// ExitCode is exitcode.NotConfirmed.
func (e *ConfirmError) ExitCode() int { return exitcode.NotConfirmed }
