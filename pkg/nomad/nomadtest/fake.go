package nomadtest

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/hashicorp/nomad/api"
	"github.com/hoctl/hoctl/pkg/nomad"
)

// Fake is an in-memory Jobs for unit tests: it parses a job's name,
// groups and tasks, plans by comparing sources, registers with Nomad's
// check-index rule, and judges health by the jobs marked failing.
// TestJobs holds it to the same contract as the real Nomad.
type Fake struct {
	mu      sync.Mutex
	index   uint64
	jobs    map[string]*fakeJob
	sources map[*api.Job]string
	failing map[string]bool
}

type fakeJob struct {
	source string
	index  uint64
	job    *api.Job
}

// NewFake returns an empty Fake.
func NewFake() *Fake {
	return &Fake{index: 10, jobs: map[string]*fakeJob{}, sources: map[*api.Job]string{}, failing: map[string]bool{}}
}

// Harness is the Fake's Harness, for TestJobs.
func (f *Fake) Harness() Harness {
	job := func(name, task string) string {
		return fmt.Sprintf("job %q {\n  group \"g\" {\n    task \"t\" {\n      driver = \"raw_exec\"\n      config {\n%s\n      }\n    }\n  }\n}\n", name, task)
	}
	return Harness{Jobs: f, Prefix: "fake-", Wait: time.Second,
		Job: func(name string, secs int) string {
			return job(name, fmt.Sprintf("        command = \"/bin/sleep\"\n        args    = [\"%d\"]", secs))
		},
		Failing: func(name string) string {
			f.SetFailing(name, true)
			return job(name, "        command = \"/bin/false\"")
		},
	}
}

// SetFailing makes the job's allocations fail (or not).
func (f *Fake) SetFailing(job string, failing bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.failing[job] = failing
}

// Parse reads the job's name, groups and tasks, as Nomad's parser would
// return them; broken HCL is an error.
func (f *Fake) Parse(_ context.Context, src string) (*api.Job, error) {
	file, diags := hclsyntax.ParseConfig([]byte(src), "job.hcl", hcl.InitialPos)
	if diags.HasErrors() {
		return nil, fmt.Errorf("nomad: parse: %s", diags.Error())
	}
	for _, b := range file.Body.(*hclsyntax.Body).Blocks {
		if b.Type != "job" || len(b.Labels) != 1 {
			continue
		}
		job := &api.Job{ID: &b.Labels[0], Name: &b.Labels[0]}
		for _, g := range b.Body.Blocks {
			if g.Type != "group" || len(g.Labels) != 1 {
				continue
			}
			tg := &api.TaskGroup{Name: &g.Labels[0]}
			for _, t := range g.Body.Blocks {
				if t.Type == "task" && len(t.Labels) == 1 {
					tg.Tasks = append(tg.Tasks, &api.Task{Name: t.Labels[0]})
				}
			}
			job.TaskGroups = append(job.TaskGroups, tg)
		}
		f.mu.Lock()
		f.sources[job] = src
		f.mu.Unlock()
		return job, nil
	}
	return nil, errors.New("nomad: parse: no job block")
}

// Plan compares the job's source with what runs: Added, None or Edited
// (every task of every group edited), at the running job's index.
func (f *Fake) Plan(_ context.Context, job *api.Job) (*api.JobPlanResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	cur := f.jobs[*job.ID]
	diff := &api.JobDiff{ID: *job.ID, Type: "Added"}
	p := &api.JobPlanResponse{Diff: diff}
	if cur != nil {
		p.JobModifyIndex = cur.index
		diff.Type = "None"
		if cur.source != f.sources[job] {
			diff.Type = "Edited"
		}
	}
	for _, tg := range job.TaskGroups {
		tgd := &api.TaskGroupDiff{Type: diff.Type, Name: *tg.Name}
		for _, t := range tg.Tasks {
			tgd.Tasks = append(tgd.Tasks, &api.TaskDiff{Type: diff.Type, Name: t.Name})
		}
		diff.TaskGroups = append(diff.TaskGroups, tgd)
	}
	return p, nil
}

// Register applies Nomad's check-index rule: the running job's index
// must be index (0: the job must not exist).
func (f *Fake) Register(_ context.Context, job *api.Job, index uint64, source string) (nomad.Registration, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	cur := f.jobs[*job.ID]
	switch {
	case index == 0 && cur != nil:
		return nomad.Registration{}, &nomad.ConflictError{Job: *job.ID, Err: errors.New("rpc error: Enforcing job modify index 0: job already exists")}
	case index != 0 && (cur == nil || cur.index != index):
		return nomad.Registration{}, &nomad.ConflictError{Job: *job.ID, Err: fmt.Errorf("rpc error: Enforcing job modify index %d: job exists with conflicting job modify index", index)}
	}
	f.index++
	f.jobs[*job.ID] = &fakeJob{source: source, index: f.index, job: job}
	return nomad.Registration{Job: *job.ID, Index: f.index, EvalID: fmt.Sprintf("fake-eval-%d", f.index)}, nil
}

// WaitHealthy is healthy at once, unless the job is marked failing.
func (f *Fake) WaitHealthy(_ context.Context, reg nomad.Registration, _ time.Duration, _ func(string)) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.failing[reg.Job] {
		return "", &nomad.UnhealthyError{Job: reg.Job, Reason: "deployment fake failed: Failed due to unhealthy allocations",
			Allocs: []nomad.AllocProblem{{ID: "fa11ed00", Group: "g", Why: "task t: Terminated: Exit Code: 1"}}}
	}
	return "deployment fake successful: 1 of 1 allocations healthy", nil
}

// Source is the HCL source the job was registered with, if it runs.
func (f *Fake) Source(job string) (string, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	j, ok := f.jobs[job]
	if !ok {
		return "", false
	}
	return strings.Clone(j.source), true
}
