package nomad

// After a registration: is what it started healthy? Nomad answers with
// the registration's evaluation (could it place the allocations?) and, for
// a service job, the deployment it created, whose health is Nomad's own:
// tasks running for min_healthy_time and every service check passing
// (through Consul or Nomad's own checks), by healthy_deadline. hoctl waits
// for that verdict rather than judging allocations itself, so a job that
// runs but fails its checks is caught; a job without a deployment (batch,
// system) is judged by its allocations' client status.

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/hashicorp/nomad/api"
	"github.com/hoctl/hoctl/pkg/httpapi"
)

// Registration is one accepted register: the job, the modify index it
// now has, and the evaluation Nomad created for it.
type Registration struct {
	Job    string
	Index  uint64
	EvalID string
}

// AllocProblem is one allocation that did not become healthy, and why.
type AllocProblem struct {
	ID    string // short (8 characters), as the nomad CLI shows it
	Group string
	Node  string
	Why   string

	full string // the whole ID, to ask about it
}

func (p AllocProblem) String() string {
	s := p.ID + " (group " + p.Group
	if p.Node != "" {
		s += " on " + p.Node
	}
	s += ")"
	if p.Why != "" {
		s += ": " + p.Why
	}
	return s
}

// UnhealthyError is a registration whose allocations did not become
// healthy: the change happened, and it does not work.
type UnhealthyError struct {
	Job    string
	Reason string // "deployment 2a2a86c9 failed: ...", "not healthy within 2m0s (...)"
	Allocs []AllocProblem
}

func (e *UnhealthyError) Error() string {
	s := "job " + e.Job + ": " + e.Reason
	if len(e.Allocs) > 0 {
		parts := make([]string, len(e.Allocs))
		for i, a := range e.Allocs {
			parts[i] = a.String()
		}
		s += "; allocations failed: " + strings.Join(parts, "; ")
	}
	return s + fmt.Sprintf(" (look deeper: nomad job status %s; nomad alloc status ID)", e.Job)
}

// CheckReporter names the failing Consul checks of an allocation (Nomad
// does not know their output); nil when hoctl has no Consul to ask.
type CheckReporter func(ctx context.Context, node, allocID string) ([]string, error)

// rollout is where a registration stands: done (healthy), or a problem
// (e non-nil), or neither (still rolling out, state says how far).
type rollout struct {
	done  bool
	state string
	err   *UnhealthyError
}

// Rollout looks once at the registration's evaluation, deployment and
// allocations.
func (j *Jobs) Rollout(ctx context.Context, reg Registration) (done bool, state string, err error) {
	r, err := j.rollout(ctx, reg)
	if err != nil {
		return false, "", err
	}
	if r.err != nil {
		return false, r.state, r.err
	}
	return r.done, r.state, nil
}

func (j *Jobs) rollout(ctx context.Context, reg Registration) (rollout, error) {
	q := (&api.QueryOptions{}).WithContext(ctx)
	var eval *api.Evaluation
	if reg.EvalID != "" {
		e, _, err := j.Client.Evaluations().Info(reg.EvalID, q)
		if err != nil {
			return rollout{}, httpapi.Clean(err, "nomad: evaluation "+short(reg.EvalID)+" of "+reg.Job)
		}
		eval = e
	}
	if eval != nil {
		switch eval.Status {
		case "pending", "":
			return rollout{state: "waiting for the scheduler (evaluation " + short(eval.ID) + ")"}, nil
		case "failed", "canceled", "cancelled":
			return rollout{state: "evaluation " + eval.Status, err: &UnhealthyError{Job: reg.Job,
				Reason: fmt.Sprintf("evaluation %s %s: %s", short(eval.ID), eval.Status, eval.StatusDescription)}}, nil
		}
		if len(eval.FailedTGAllocs) > 0 {
			return rollout{state: "placement failed", err: &UnhealthyError{Job: reg.Job, Reason: "could not place: " + placementFailures(eval.FailedTGAllocs)}}, nil
		}
	}
	d, err := j.deployment(ctx, reg, eval)
	if err != nil {
		return rollout{}, err
	}
	if d != nil {
		allocs, _, err := j.Client.Deployments().Allocations(d.ID, q)
		if err != nil {
			return rollout{}, httpapi.Clean(err, "nomad: allocations of deployment "+short(d.ID))
		}
		r := judgeDeployment(reg.Job, d, allocs)
		if r.err != nil {
			j.explain(ctx, r.err)
		}
		return r, nil
	}
	// No deployment (a batch or system job, or nothing to place): the
	// allocations of the registered version, by client status.
	job, _, err := j.Client.Jobs().Info(reg.Job, q)
	if err != nil {
		return rollout{}, httpapi.Clean(err, "nomad: job "+reg.Job)
	}
	allocs, _, err := j.Client.Jobs().Allocations(reg.Job, false, q)
	if err != nil {
		return rollout{}, httpapi.Clean(err, "nomad: allocations of "+reg.Job)
	}
	var version uint64
	if job.Version != nil {
		version = *job.Version
	}
	r := judgeAllocations(reg.Job, version, allocs)
	if r.err != nil {
		j.explain(ctx, r.err)
	}
	return r, nil
}

// deployment is the one the registration created: the evaluation names
// it, or it tracks the registered job's modify index. nil when none.
func (j *Jobs) deployment(ctx context.Context, reg Registration, eval *api.Evaluation) (*api.Deployment, error) {
	q := (&api.QueryOptions{}).WithContext(ctx)
	if eval != nil && eval.DeploymentID != "" {
		d, _, err := j.Client.Deployments().Info(eval.DeploymentID, q)
		if err != nil {
			return nil, httpapi.Clean(err, "nomad: deployment "+short(eval.DeploymentID))
		}
		return d, nil
	}
	ds, _, err := j.Client.Jobs().Deployments(reg.Job, false, q)
	if err != nil {
		return nil, httpapi.Clean(err, "nomad: deployments of "+reg.Job)
	}
	for _, d := range ds {
		if d.JobSpecModifyIndex == reg.Index || d.JobModifyIndex == reg.Index {
			return d, nil
		}
	}
	return nil, nil
}

// judgeDeployment reads Nomad's verdict on a deployment.
func judgeDeployment(job string, d *api.Deployment, allocs []*api.AllocationListStub) rollout {
	var desired, healthy, unhealthy int
	for _, tg := range d.TaskGroups {
		desired += tg.DesiredTotal
		healthy += tg.HealthyAllocs
		unhealthy += tg.UnhealthyAllocs
	}
	state := fmt.Sprintf("deployment %s %s: %d of %d allocations healthy", short(d.ID), d.Status, healthy, desired)
	if unhealthy > 0 {
		state += fmt.Sprintf(", %d unhealthy", unhealthy)
	}
	switch d.Status {
	case api.DeploymentStatusSuccessful:
		return rollout{done: true, state: state}
	case api.DeploymentStatusFailed, api.DeploymentStatusCancelled:
		reason := fmt.Sprintf("deployment %s %s", short(d.ID), d.Status)
		if d.StatusDescription != "" {
			reason += ": " + d.StatusDescription
		}
		return rollout{state: state, err: &UnhealthyError{Job: job, Reason: reason, Allocs: problems(allocs)}}
	}
	return rollout{state: state}
}

// judgeAllocations judges the allocations of version when there is no
// deployment: running (or, for a batch job, complete) is healthy.
func judgeAllocations(job string, version uint64, allocs []*api.AllocationListStub) rollout {
	var mine []*api.AllocationListStub
	for _, a := range allocs {
		if a.JobVersion == version && a.DesiredStatus == "run" {
			mine = append(mine, a)
		}
	}
	var ok int
	for _, a := range mine {
		if a.ClientStatus == "running" || a.ClientStatus == "complete" {
			ok++
		}
	}
	state := fmt.Sprintf("%d of %d allocations of version %d running", ok, len(mine), version)
	if p := problems(mine); len(p) > 0 {
		return rollout{state: state, err: &UnhealthyError{Job: job, Reason: fmt.Sprintf("allocations of version %d failed", version), Allocs: p}}
	}
	return rollout{done: ok == len(mine), state: state}
}

// problems are the allocations that failed, were lost, or that Nomad
// marked unhealthy, each with the task events that say why.
func problems(allocs []*api.AllocationListStub) []AllocProblem {
	var out []AllocProblem
	for _, a := range allocs {
		unhealthy := a.DeploymentStatus != nil && a.DeploymentStatus.Healthy != nil && !*a.DeploymentStatus.Healthy
		if !unhealthy && a.ClientStatus != "failed" && a.ClientStatus != "lost" {
			continue
		}
		out = append(out, AllocProblem{ID: short(a.ID), Group: a.TaskGroup, Node: a.NodeName, Why: taskWhy(a), full: a.ID})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// tellingEvents are the task events that explain a failure; the others
// (received, started, setup) say nothing about it.
var tellingEvents = map[string]bool{
	"Alloc Unhealthy": true, "Task hook failed": true, "Driver Failure": true, "Setup Failure": true,
	"Failed Validation": true, "Terminated": true, "Failed Artifact Download": true, "Template": true,
	"Killed": true, "Sibling Task Failed": true, "Disk Resources Exceeded": true,
}

// taskWhy is, per task, the latest telling event: "t: Terminated: Exit
// Code: 1", "t: Alloc Unhealthy: Task not running for min_healthy_time".
func taskWhy(a *api.AllocationListStub) string {
	names := make([]string, 0, len(a.TaskStates))
	for n := range a.TaskStates {
		names = append(names, n)
	}
	sort.Strings(names)
	var parts []string
	for _, n := range names {
		ts := a.TaskStates[n]
		for i := len(ts.Events) - 1; i >= 0; i-- {
			e := ts.Events[i]
			if !tellingEvents[e.Type] {
				continue
			}
			msg := e.DisplayMessage
			if msg == "" {
				msg = e.Message
			}
			parts = append(parts, fmt.Sprintf("task %s: %s: %s", n, e.Type, msg))
			break
		}
	}
	if len(parts) == 0 && a.ClientDescription != "" {
		parts = append(parts, a.ClientDescription)
	}
	return strings.Join(parts, "; ")
}

// explain adds each problem allocation's failing checks: Nomad's own
// (its checks endpoint) and, through Checks, Consul's. Best effort: the
// verdict stands without them.
func (j *Jobs) explain(ctx context.Context, e *UnhealthyError) {
	for i, p := range e.Allocs {
		if p.full == "" {
			continue
		}
		var checks []string
		if st, err := j.Client.Allocations().Checks(p.full, (&api.QueryOptions{}).WithContext(ctx)); err == nil {
			for _, c := range st {
				if c.Status != "success" {
					checks = append(checks, fmt.Sprintf("check %q of service %s %s: %s", c.Check, c.Service, c.Status, strings.TrimSpace(c.Output)))
				}
			}
		}
		if j.Checks != nil {
			if cs, err := j.Checks(ctx, p.Node, p.full); err == nil {
				checks = append(checks, cs...)
			}
		}
		sort.Strings(checks)
		if len(checks) > 0 {
			why := strings.Join(checks, "; ")
			if p.Why != "" {
				why = p.Why + "; " + why
			}
			e.Allocs[i].Why = why
		}
	}
}

func placementFailures(m map[string]*api.AllocationMetric) string {
	groups := make([]string, 0, len(m))
	for g := range m {
		groups = append(groups, g)
	}
	sort.Strings(groups)
	var parts []string
	for _, g := range groups {
		mt := m[g]
		var why []string
		for _, dim := range []map[string]int{mt.ConstraintFiltered, mt.DimensionExhausted, mt.ClassFiltered} {
			keys := make([]string, 0, len(dim))
			for k := range dim {
				keys = append(keys, k)
			}
			sort.Strings(keys)
			for _, k := range keys {
				why = append(why, fmt.Sprintf("%s filtered/exhausted %d nodes", k, dim[k]))
			}
		}
		if len(why) == 0 {
			why = append(why, fmt.Sprintf("%d of %d nodes evaluated, %d exhausted", mt.NodesEvaluated, mt.NodesInPool, mt.NodesExhausted))
		}
		parts = append(parts, "group "+g+": "+strings.Join(why, ", "))
	}
	return strings.Join(parts, "; ")
}

func short(id string) string {
	if len(id) > 8 {
		return id[:8]
	}
	return id
}

// WaitHealthy polls the registration's rollout until it is healthy, it
// fails, or timeout passes; either failure is an *UnhealthyError naming
// the allocations and why. progress gets each intermediate state.
func (j *Jobs) WaitHealthy(ctx context.Context, reg Registration, timeout time.Duration, progress func(string)) (string, error) {
	deadline := time.Now().Add(timeout)
	for {
		r, err := j.rollout(ctx, reg)
		if err != nil {
			return "", err
		}
		if r.err != nil {
			return r.state, r.err
		}
		if r.done {
			return r.state, nil
		}
		if progress != nil {
			progress(r.state)
		}
		if time.Now().After(deadline) {
			e := &UnhealthyError{Job: reg.Job, Reason: fmt.Sprintf("not healthy within %s (%s)", timeout, r.state)}
			e.Allocs = j.pending(ctx, reg)
			j.explain(ctx, e)
			return r.state, e
		}
		select {
		case <-ctx.Done():
			return r.state, ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// pending lists, when the wait ran out, the registration's allocations
// not yet healthy, with what their tasks last said.
func (j *Jobs) pending(ctx context.Context, reg Registration) []AllocProblem {
	allocs, _, err := j.Client.Jobs().Allocations(reg.Job, false, (&api.QueryOptions{}).WithContext(ctx))
	if err != nil {
		return nil
	}
	var out []AllocProblem
	for _, a := range allocs {
		if a.CreateIndex < reg.Index || a.DesiredStatus != "run" {
			continue
		}
		if a.DeploymentStatus != nil && a.DeploymentStatus.Healthy != nil && *a.DeploymentStatus.Healthy {
			continue
		}
		why := taskWhy(a)
		if why == "" {
			why = "client status " + a.ClientStatus + ", health not yet known"
		}
		out = append(out, AllocProblem{ID: short(a.ID), Group: a.TaskGroup, Node: a.NodeName, Why: why, full: a.ID})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}
