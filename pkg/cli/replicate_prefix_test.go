package cli

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/hoctl/hoctl/pkg/inventory"
	"github.com/hoctl/hoctl/pkg/iostreams"
	"github.com/hoctl/hoctl/pkg/replicate"
	"github.com/hoctl/hoctl/pkg/tasks"
)

// Replications run at once each report under their name, as run puts a
// host's name before its lines: two runs' "[1/6] …" lines are otherwise
// the same words from two places. One at a time keeps the usual view.
func TestReplicationsAtOnceReportUnderTheirNames(t *testing.T) {
	ios, _, _, errOut := iostreams.Test()
	services, media := &replicate.Job{Ends: replicate.Ends{Name: "services"}}, &replicate.Job{Ends: replicate.Ends{Name: "media"}}
	reporter := replicationReporter(ios, [][]*replicate.Job{{services, media}})
	for _, j := range []*replicate.Job{services, media} {
		r := reporter(j)
		step := &tasks.Step{Title: "snapshot", Hosts: []*inventory.Host{{Name: "zippy"}}}
		r.RunStart("20261207T120000Z-"+j.Ends.Name, &tasks.Runbook{Name: "replicate " + j.Ends.Name, Steps: []*tasks.Step{step}}, 1)
		r.StepStart(1, step)
		r.HostEvent(1, step, tasks.HostEvent{Host: "zippy", Phase: "run", Err: errors.New("boom"), Output: &tasks.Output{Stderr: "no space left\n"}})
		r.StepEnd(1, step, tasks.StatusFailed, errors.New("boom"))
		r.RunEnd("20261207T120000Z-"+j.Ends.Name, tasks.StatusFailed, errors.New("boom"), time.Second)
	}
	lines := strings.Split(strings.TrimSuffix(errOut.String(), "\n"), "\n")
	if len(lines) < 10 {
		t.Fatalf("too few lines:\n%s", errOut)
	}
	for _, l := range lines {
		if !strings.HasPrefix(l, "services | ") && !strings.HasPrefix(l, "media    | ") {
			t.Errorf("line without its replication's name: %q", l)
		}
	}

	// One replication at a time: no prefix.
	ios, _, _, errOut = iostreams.Test()
	r := replicationReporter(ios, [][]*replicate.Job{{services}, {media}})(services)
	r.RunStart("20261207T120000Z-services", &tasks.Runbook{Name: "replicate services"}, 1)
	if got := errOut.String(); !strings.HasPrefix(got, "▶ replicate services run") {
		t.Errorf("a replication run alone is prefixed: %q", got)
	}
}
