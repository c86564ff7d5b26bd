package nomad

// Unit tests of what hoctl makes of Nomad's answers. What Nomad answers
// is checked against the real Nomad by the contract test (nomadtest, run
// by e2e on the lab's real cluster).

import (
	"errors"
	"strings"
	"testing"

	"github.com/hashicorp/nomad/api"
)

// A template's source moved, as Nomad v1.6 plans it: the edited Template
// object lists every field, the unchanged ones with type None. Only the
// change is shown.
func TestDiffSummaryShowsOnlyWhatChanged(t *testing.T) {
	none := func(name, v string) *api.FieldDiff { return &api.FieldDiff{Type: "None", Name: name, Old: v, New: v} }
	p := &api.JobPlanResponse{
		Diff: &api.JobDiff{Type: "Edited", ID: "web", TaskGroups: []*api.TaskGroupDiff{{Type: "Edited", Name: "g", Tasks: []*api.TaskDiff{
			{Type: "Edited", Name: "t", Fields: []*api.FieldDiff{none("Driver", "raw_exec")}, Objects: []*api.ObjectDiff{
				{Type: "Edited", Name: "Template", Fields: []*api.FieldDiff{
					none("ChangeMode", "restart"), none("DestPath", "local/app.conf"),
					{Type: "Edited", Name: "SourcePath", Old: "/data/compute/web/app.tpl", New: "/data/services/web/app.tpl"},
				}},
				{Type: "None", Name: "Resources", Fields: []*api.FieldDiff{none("CPU", "100")}},
				{Type: "Edited", Name: "Config", Objects: []*api.ObjectDiff{{Type: "Edited", Name: "volumes", Fields: []*api.FieldDiff{
					{Type: "Edited", Name: "volumes[0]", Old: "/data/compute/web:/srv", New: "/data/services/web:/srv"}}}}},
			}},
			{Type: "None", Name: "sidecar"},
			{Type: "Added", Name: "log", Fields: []*api.FieldDiff{{Type: "Added", Name: "Driver", New: "raw_exec"}}},
		}}}},
		Annotations: &api.PlanAnnotations{DesiredTGUpdates: map[string]*api.DesiredUpdates{"g": {DestructiveUpdate: 1}}},
	}
	want := `edited job "web"
  edited task g/t
    Template.SourcePath: "/data/compute/web/app.tpl" => "/data/services/web/app.tpl"
    Config.volumes.volumes[0]: "/data/compute/web:/srv" => "/data/services/web:/srv"
  added task g/log
  group g: 0 create, 1 destroy/create, 0 in place, 0 ignore`
	if got := DiffSummary(p); got != want {
		t.Fatalf("got\n%s\nwant\n%s", got, want)
	}
}

func yes(b bool) *bool { return &b }

// Nomad's verdict on a deployment, read: successful is done, failed names
// each unhealthy or failed allocation with its telling task event,
// running is neither.
func TestJudgeDeployment(t *testing.T) {
	d := &api.Deployment{ID: "2a2a86c9-9003-d384-c79f-9c20d1e3b039", Status: "running",
		TaskGroups: map[string]*api.DeploymentState{"g": {DesiredTotal: 2, HealthyAllocs: 1}}}
	allocs := []*api.AllocationListStub{
		{ID: "77df8e63-c125-4952-5661-4e994231329b", TaskGroup: "g", NodeName: "zippy", ClientStatus: "running",
			DeploymentStatus: &api.AllocDeploymentStatus{Healthy: yes(false)},
			TaskStates: map[string]*api.TaskState{"t": {Events: []*api.TaskEvent{
				{Type: "Received", DisplayMessage: "Task received by client"},
				{Type: "Alloc Unhealthy", DisplayMessage: "Task not running for min_healthy_time of 1s by healthy_deadline of 10s"},
				{Type: "Started", DisplayMessage: "Task started by client"}}}}},
		{ID: "0a0a0a0a-0000-0000-0000-000000000000", TaskGroup: "g", NodeName: "c2", ClientStatus: "running",
			DeploymentStatus: &api.AllocDeploymentStatus{Healthy: yes(true)}},
	}
	r := judgeDeployment("chk", d, allocs)
	if r.done || r.err != nil || r.state != "deployment 2a2a86c9 running: 1 of 2 allocations healthy" {
		t.Fatalf("running: %+v", r)
	}
	d.Status, d.StatusDescription = "failed", "Failed due to unhealthy allocations"
	d.TaskGroups["g"].UnhealthyAllocs = 1
	r = judgeDeployment("chk", d, allocs)
	if r.err == nil {
		t.Fatalf("failed: %+v", r)
	}
	want := "job chk: deployment 2a2a86c9 failed: Failed due to unhealthy allocations; allocations failed: " +
		"77df8e63 (group g on zippy): task t: Alloc Unhealthy: Task not running for min_healthy_time of 1s by healthy_deadline of 10s" +
		" (look deeper: nomad job status chk; nomad alloc status ID)"
	if r.err.Error() != want {
		t.Fatalf("got\n%s\nwant\n%s", r.err, want)
	}
	d.Status = "successful"
	if r := judgeDeployment("chk", d, allocs); !r.done || r.err != nil {
		t.Fatalf("successful: %+v", r)
	}
}

// Without a deployment (batch, system): the registered version's
// allocations, running or complete, are healthy; a failed one is named
// with its exit.
func TestJudgeAllocations(t *testing.T) {
	allocs := []*api.AllocationListStub{
		{ID: "aaaaaaaa-1", JobVersion: 3, DesiredStatus: "run", ClientStatus: "running", TaskGroup: "g"},
		{ID: "bbbbbbbb-1", JobVersion: 3, DesiredStatus: "run", ClientStatus: "pending", TaskGroup: "g"},
		{ID: "cccccccc-1", JobVersion: 2, DesiredStatus: "stop", ClientStatus: "failed", TaskGroup: "g"},
	}
	if r := judgeAllocations("b", 3, allocs); r.done || r.err != nil || r.state != "1 of 2 allocations of version 3 running" {
		t.Fatalf("pending: %+v", r)
	}
	allocs[1].ClientStatus = "failed"
	allocs[1].TaskStates = map[string]*api.TaskState{"t": {Events: []*api.TaskEvent{{Type: "Terminated", DisplayMessage: "Exit Code: 1"}, {Type: "Not Restarting", DisplayMessage: "Error was unrecoverable"}}}}
	r := judgeAllocations("b", 3, allocs)
	var ue *UnhealthyError
	if !errors.As(error(r.err), &ue) || len(ue.Allocs) != 1 || ue.Allocs[0].String() != "bbbbbbbb (group g): task t: Terminated: Exit Code: 1" {
		t.Fatalf("failed: %+v", r.err)
	}
	allocs[1].ClientStatus = "complete"
	if r := judgeAllocations("b", 3, allocs); !r.done {
		t.Fatalf("complete: %+v", r)
	}
}

func TestConflictErrorSaysWhatToDo(t *testing.T) {
	err := error(&ConflictError{Job: "web", Err: errors.New("Enforcing job modify index 85: job exists with conflicting job modify index: 97")})
	if !strings.Contains(err.Error(), "web changed since it was planned") || !strings.Contains(err.Error(), "nomad job history web") {
		t.Fatal(err)
	}
}
