// Package taskstest helps test runbook kinds: what a run journals, read
// back as resume reads it, and a runbook's shape to compare two builds.
package taskstest

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/hoctl/hoctl/pkg/inventory"
	"github.com/hoctl/hoctl/pkg/tasks"
)

// Journaled is rb's run as resume reads it back from the journal: its
// run_start record through JSON, with the run failed at its first step.
func Journaled(t testing.TB, id string, rb *tasks.Runbook) *tasks.Summary {
	t.Helper()
	var titles []string
	for _, s := range rb.Steps {
		titles = append(titles, s.Title)
	}
	start := tasks.Record{Type: "run_start", Time: time.Now().UTC(), Run: id, Name: rb.Name, Kind: rb.Kind, Params: rb.Params, Retry: rb.Retry, Steps: titles}
	end := tasks.Record{Type: "run_end", Time: time.Now().UTC(), Run: id, Status: tasks.StatusFailed, Step: 1}
	var recs []tasks.Record
	for _, r := range []tasks.Record{start, end} {
		b, err := json.Marshal(r)
		if err != nil {
			t.Fatal(err)
		}
		var back tasks.Record
		if err := json.Unmarshal(b, &back); err != nil {
			t.Fatal(err)
		}
		recs = append(recs, back)
	}
	return tasks.Summarize(id, recs)
}

// Shape is what a runbook would do, line by line: its identity, and each
// step's title, hosts and every check and action as described for each
// host. Two runbooks with the same shape run the same commands.
func Shape(t testing.TB, rb *tasks.Runbook) []string {
	t.Helper()
	out := []string{fmt.Sprintf("name=%q lock=%q cluster=%v kind=%q resumable=%v retry=%q params=%v",
		rb.Name, rb.Lock, rb.ClusterLock, rb.Kind, rb.Resumable, rb.Retry, rb.Params)}
	for i, s := range rb.Steps {
		out = append(out, fmt.Sprintf("step %d %q serial=%d max_fail=%d timeout=%s retries=%d confirm=%v needs_previous=%v",
			i+1, s.Title, s.Serial, s.MaxFail, s.Timeout, s.Retries, s.Confirm, s.NeedsPrevious))
		hosts := s.Hosts
		if len(hosts) == 0 {
			hosts = []*inventory.Host{{Name: "local", Address: inventory.LocalAddress}}
		}
		for _, h := range hosts {
			for _, op := range []struct {
				name string
				op   tasks.Op
			}{{"before", s.Before}, {"action", s.Action}, {"after", s.After}, {"undo", s.Undo}} {
				if op.op == nil {
					continue
				}
				d, err := op.op.Describe(h)
				out = append(out, fmt.Sprintf("  %s %s: %s (err %v)", h.Name, op.name, d, err))
			}
		}
	}
	return out
}
