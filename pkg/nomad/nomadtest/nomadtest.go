// Package nomadtest is the contract of what migrate-jobs asks of Nomad:
// the assertions the real Nomad (run by e2e on the lab's cluster) must
// pass, and any fake of hoctl's Nomad access with it, as restic's backend
// tests hold every backend to one suite.
package nomadtest

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/hoctl/hoctl/pkg/jobs"
	"github.com/hoctl/hoctl/pkg/nomad"
)

// Jobs is migrate-jobs' access to Nomad (nomad.Jobs, or Fake).
type Jobs = jobs.Nomad

// Harness is a Jobs and what the contract needs around it.
type Harness struct {
	Jobs Jobs
	// Job is the HCL of a service job named name, healthy once running,
	// whose task runs `sleep secs`; Failing, one whose task exits 1 at
	// once, never restarted.
	Job     func(name string, secs int) string
	Failing func(name string) string
	// Prefix starts every job name the contract uses (the harness
	// purges them after).
	Prefix string
	// Wait bounds each wait for health.
	Wait time.Duration
}

// TestJobs holds a Jobs to the contract: parse, plan with a diff and the
// check index, register with it, Nomad's verdict on the rollout, and a
// register refused when the job changed since its plan.
func TestJobs(t *testing.T, h Harness) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	j := h.Jobs
	name := h.Prefix + "web"
	if _, err := j.Parse(ctx, "job \""+name+"\" {\n  group \"g\" {\n"); err == nil {
		t.Fatal("broken HCL must not parse")
	}
	job, err := j.Parse(ctx, h.Job(name, 3600))
	if err != nil || job.ID == nil || *job.ID != name {
		t.Fatalf("parse: %v %v", job, err)
	}
	p, err := j.Plan(ctx, job)
	if err != nil || p.Diff == nil || p.Diff.Type != "Added" || p.JobModifyIndex != 0 {
		t.Fatalf("plan of a new job: %+v %v", p, err)
	}
	reg, err := j.Register(ctx, job, p.JobModifyIndex, h.Job(name, 3600))
	if err != nil || reg.Index == 0 || reg.Job != name {
		t.Fatalf("register: %+v %v", reg, err)
	}
	if state, err := j.WaitHealthy(ctx, reg, h.Wait, nil); err != nil {
		t.Fatalf("a healthy job: %s %v", state, err)
	}
	if p, err := j.Plan(ctx, job); err != nil || p.Diff == nil || p.Diff.Type != "None" || p.JobModifyIndex != reg.Index {
		t.Fatalf("plan of what runs: %+v %v (registered at %d)", p, err, reg.Index)
	}

	// A change planned; someone else registers first: the register at
	// the planned index is refused, and the job stays theirs.
	moved, _ := j.Parse(ctx, h.Job(name, 3599))
	p, err = j.Plan(ctx, moved)
	if err != nil || p.Diff == nil || p.Diff.Type != "Edited" || !strings.Contains(nomad.DiffSummary(p), "edited task") {
		t.Fatalf("plan of a change: %+v %v", p, err)
	}
	theirs, _ := j.Parse(ctx, h.Job(name, 3598))
	if _, err := j.Register(ctx, theirs, p.JobModifyIndex, h.Job(name, 3598)); err != nil {
		t.Fatalf("their register: %v", err)
	}
	_, err = j.Register(ctx, moved, p.JobModifyIndex, h.Job(name, 3599))
	var ce *nomad.ConflictError
	if !errors.As(err, &ce) {
		t.Fatalf("register at a stale index: want a conflict, got %v", err)
	}
	if p, _ := j.Plan(ctx, theirs); p == nil || p.Diff == nil || p.Diff.Type != "None" {
		t.Fatalf("the refused register changed their job: %+v", p)
	}

	// A job whose task fails: the verdict names its allocation.
	bad := h.Prefix + "crashy"
	bj, err := j.Parse(ctx, h.Failing(bad))
	if err != nil {
		t.Fatal(err)
	}
	reg, err = j.Register(ctx, bj, 0, h.Failing(bad))
	if err != nil {
		t.Fatal(err)
	}
	_, err = j.WaitHealthy(ctx, reg, h.Wait, nil)
	var ue *nomad.UnhealthyError
	if !errors.As(err, &ue) || len(ue.Allocs) == 0 || ue.Allocs[0].Group != "g" || !strings.Contains(err.Error(), "allocations failed") {
		t.Fatalf("a failing job: want its allocations named, got %v", err)
	}
}
