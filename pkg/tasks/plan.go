package tasks

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/hoctl/hoctl/pkg/inventory"
	"github.com/hoctl/hoctl/pkg/sshexec"
)

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
