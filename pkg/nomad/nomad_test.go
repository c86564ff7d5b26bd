package nomad

import (
	"context"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/hoctl/hoctl/internal/lab/nomadsim"
	"github.com/hoctl/hoctl/pkg/httpapi"
	"github.com/hoctl/hoctl/pkg/inventory"
)

const gitea = `job "gitea" {
  group "g" {
    task "gitea" {
      driver = "docker"
      config {
        image   = "gitea/gitea:1.22"
        volumes = ["/data/compute/gitea:/data"]
      }
    }
  }
}
`

func client(t *testing.T) (*Jobs, *nomadsim.Server) {
	t.Helper()
	s, err := nomadsim.Start("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	c, err := NewClient(&inventory.API{Address: "http://" + s.Addr}, nil, os.Getenv, httpapi.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return &Jobs{Client: c}, s
}

func submit(t *testing.T, j *Jobs, src string) (uint64, error) {
	t.Helper()
	ctx := context.Background()
	job, err := j.Parse(ctx, src)
	if err != nil {
		t.Fatal(err)
	}
	p, err := j.Plan(ctx, job)
	if err != nil {
		t.Fatal(err)
	}
	return j.Register(ctx, job, p.JobModifyIndex, src)
}

func TestParsePlanRegisterHealthy(t *testing.T) {
	j, s := client(t)
	ctx := context.Background()
	idx, err := submit(t, j, gitea)
	if err != nil {
		t.Fatal(err)
	}
	if src, _ := s.Submitted("gitea"); src != gitea {
		t.Fatal("the HCL source was not kept as the submission")
	}
	if _, err := j.WaitHealthy(ctx, "gitea", idx, 5*time.Second, nil); err != nil {
		t.Fatal(err)
	}
	moved := strings.Replace(gitea, "/data/compute", "/data/services", 1)
	job, _ := j.Parse(ctx, moved)
	p, err := j.Plan(ctx, job)
	if err != nil {
		t.Fatal(err)
	}
	if got := DiffSummary(p); !strings.Contains(got, "edited task g/gitea") || !strings.Contains(got, "/data/services/gitea:/data") || !strings.Contains(got, "1 destroy/create") {
		t.Fatalf("plan diff:\n%s", got)
	}
	// Someone else submits between our plan and our register: refused,
	// reported as a conflict, not retried.
	s.Bump("gitea")
	_, err = j.Register(ctx, job, p.JobModifyIndex, moved)
	var ce *ConflictError
	if !errors.As(err, &ce) || !strings.Contains(err.Error(), "conflicting job modify index") {
		t.Fatalf("want a conflict, got %v", err)
	}
	if src, _ := s.Submitted("gitea"); src != gitea {
		t.Fatal("a conflicting register changed the job")
	}
}

func TestUnhealthyAllocationsFailTheWait(t *testing.T) {
	j, _ := client(t)
	idx, err := submit(t, j, strings.Replace(gitea, "gitea/gitea:1.22", "crashloop:1", 1))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := j.WaitHealthy(context.Background(), "gitea", idx, 5*time.Second, nil); err == nil || !strings.Contains(err.Error(), "allocations failed") {
		t.Fatalf("want failed allocations, got %v", err)
	}
}
