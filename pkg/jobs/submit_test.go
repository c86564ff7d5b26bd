package jobs_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/hoctl/hoctl/pkg/jobs"
	"github.com/hoctl/hoctl/pkg/nomad"
	"github.com/hoctl/hoctl/pkg/nomad/nomadtest"
	"github.com/hoctl/hoctl/pkg/tasks"
)

const webJob = `job "web" {
  group "g" {
    task "t" {
      driver = "raw_exec"
      config {
        command = "/bin/sleep"
        args    = ["3600"]
      }
    }
  }
}
`

// run calls one op of the step as the engine would (no host: the step
// runs on this machine).
func run(t *testing.T, op tasks.Op) (string, error) {
	t.Helper()
	return op.(*tasks.Func).Fn(context.Background(), nil, nil)
}

func submitStep(f *nomadtest.Fake, src string) *tasks.Step {
	jf := &jobs.File{Path: "web.hcl", Job: "web", Src: []byte(src), Out: []byte(src)}
	return jobs.SubmitStep(jf, func(context.Context) (jobs.Nomad, error) { return f, nil }, time.Second, nil)
}

// The check index is the one of the plan the operator was shown: a job
// someone registers between that plan and the step is refused, even
// though the step's before check runs again (and notes the change).
func TestSubmitKeepsTheConfirmedPlansIndex(t *testing.T) {
	f := nomadtest.NewFake()
	s := submitStep(f, webJob)
	if out, err := run(t, s.Before); err != nil || !strings.Contains(out, `added job "web"`) {
		t.Fatalf("the plan shown: %q %v", out, err)
	}
	theirs := strings.Replace(webJob, "3600", "3599", 1)
	j, _ := f.Parse(context.Background(), theirs)
	if _, err := f.Register(context.Background(), j, 0, theirs); err != nil {
		t.Fatal(err)
	}
	if out, err := run(t, s.Before); err != nil || !strings.Contains(out, "the job changed since the plan shown") {
		t.Fatalf("the check when the step starts: %q %v", out, err)
	}
	_, err := run(t, s.Action)
	var ce *nomad.ConflictError
	if !errors.As(err, &ce) {
		t.Fatalf("want a conflict, got %v", err)
	}
	if src, _ := f.Source("web"); src != theirs {
		t.Fatalf("their job was overwritten: %q", src)
	}
}

// A job Nomad already runs as it is is not submitted; one that does not
// become healthy fails the after check with Nomad's verdict.
func TestSubmitSkipsWhatRunsAndReportsUnhealthy(t *testing.T) {
	f := nomadtest.NewFake()
	j, _ := f.Parse(context.Background(), webJob)
	if _, err := f.Register(context.Background(), j, 0, webJob); err != nil {
		t.Fatal(err)
	}
	s := submitStep(f, webJob)
	for _, op := range []tasks.Op{s.Before, s.Action} {
		if _, err := run(t, op); err != nil {
			t.Fatal(err)
		}
	}
	if out, _ := run(t, s.Action); out != "Nomad already runs this version: not submitted" {
		t.Fatalf("action: %q", out)
	}
	if out, err := run(t, s.After); err != nil || out != "nothing submitted" {
		t.Fatalf("after: %q %v", out, err)
	}

	f.SetFailing("web", true)
	moved := strings.Replace(webJob, "3600", "60", 1)
	s = submitStep(f, moved)
	for _, op := range []tasks.Op{s.Before, s.Action} {
		if out, err := run(t, op); err != nil {
			t.Fatalf("%q %v", out, err)
		}
	}
	_, err := run(t, s.After)
	var ue *nomad.UnhealthyError
	if !errors.As(err, &ue) || !strings.Contains(err.Error(), "job web: deployment fake failed") {
		t.Fatalf("after: %v", err)
	}
	if src, _ := f.Source("web"); src != moved {
		t.Fatal("the change was not registered")
	}
}
