package failover

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/hoctl/hoctl/pkg/inventory"
	"github.com/hoctl/hoctl/pkg/iostreams"
	"github.com/hoctl/hoctl/pkg/sshexec"
	"github.com/hoctl/hoctl/pkg/sshexec/sshexectest"
	"github.com/hoctl/hoctl/pkg/tasks"
)

// resumeWorld runs failovers on the engine against fake hosts, with the
// journal where hoctl resume reads it (XDG_STATE_HOME).
type resumeWorld struct {
	inv   *inventory.Inventory
	hosts *sshexectest.Hosts
	state string
	eng   *tasks.Engine
}

func newResumeWorld(t *testing.T, answer func(host string, c sshexec.Cmd) sshexectest.Reply) *resumeWorld {
	inv := parseInv(t, resolveInv)
	w := &resumeWorld{inv: inv, hosts: &sshexectest.Hosts{Answer: answer}, state: t.TempDir()}
	ios, _, _, _ := iostreams.Test()
	w.eng = &tasks.Engine{Env: &tasks.Env{Inventory: inv, Connect: w.hosts.Connect}, Reporter: tasks.NewReporter(ios, nil),
		StateDir: tasks.StateDir(w.getenv), Yes: true, Command: "hoctl failover",
		ClusterLock: func(context.Context, string, string) (tasks.ClusterLock, error) { return heldLock{}, nil }}
	return w
}

func (w *resumeWorld) getenv(k string) string {
	if k == "XDG_STATE_HOME" {
		return w.state
	}
	return ""
}

// resume rebuilds run id from its journal as hoctl resume does, lets
// edit change the rebuilt steps, and runs it on from its first step not
// done.
func (w *resumeWorld) resume(t *testing.T, id string, consulFn func(context.Context) (Consul, error), edit func(*tasks.Runbook)) error {
	t.Helper()
	recs, err := tasks.ReadJournal(w.eng.StateDir, id)
	if err != nil {
		t.Fatal(err)
	}
	s := tasks.Summarize(id, recs)
	// As rebuild does, with the test's Consul for the inventory's.
	rb, err := rebuildWith(context.Background(), &tasks.Rebuild{Run: s, Inventory: w.inv, Getenv: w.getenv}, consulFn)
	if err != nil {
		t.Fatalf("rebuild: %v", err)
	}
	if edit != nil {
		edit(rb)
	}
	from := s.NextStep()
	_, err = w.eng.Run(context.Background(), rb, tasks.RunOptions{ResumeID: id, From: from})
	return err
}

// standIn replaces step s by one that does nothing, checks nothing.
func standIn(s *tasks.Step) {
	s.Before, s.After, s.Undo = nil, nil, nil
	s.Action = &tasks.Func{Desc: "stand-in", Fn: func(context.Context, *tasks.Env, *inventory.Host) (string, error) { return "", nil }}
}

// A failover whose final sync failed at its send (a network drop, a full
// target) is resumed at the send, the snapshot step done: the resumed
// send must send the snapshot that step took, not one named for the
// time of the resume, which no step took.
func TestResumedFinalSyncSendsTheSnapshotTheRunTook(t *testing.T) {
	failSend := true
	w := newResumeWorld(t, func(host string, c sshexec.Cmd) sshexectest.Reply {
		if host == "zippy" && strings.Contains(c.Line(), " send ") && failSend {
			return sshexectest.Reply{Code: 1, Stderr: "connection reset"}
		}
		return sshexectest.Reply{}
	})
	svc := w.inv.NFS["data-services"]
	c := &cluster{kv: map[string]string{svc.OwnerKey: "zippy"}, index: map[string]uint64{svc.OwnerKey: 7}, active: map[string]bool{"zippy": true}}
	consulFn := func(context.Context) (Consul, error) { return c, nil }
	taken := time.Date(2026, 11, 26, 9, 30, 0, 0, time.UTC)
	rb, err := Resolve(context.Background(), w.inv, consulFn, Options{To: "c1", ConsulWait: time.Second, Now: func() time.Time { return taken }})
	if err != nil {
		t.Fatal(err)
	}
	// Everything before the snapshot (the assessment, the inspection,
	// the fence) is tested elsewhere: here it passes.
	for _, s := range rb.Steps {
		if strings.HasPrefix(s.Title, "final sync: snapshot ") {
			s.Before = nil
			break
		}
		standIn(s)
	}
	id, err := w.eng.Run(context.Background(), rb, tasks.RunOptions{})
	if err == nil {
		t.Fatal("the run's send did not fail")
	}
	want := "services@20261126T093000Z"
	if !sentSnapshot(w.hosts, want) {
		t.Fatalf("the first run did not send %s:\n%s", want, strings.Join(w.hosts.Lines(), "\n"))
	}

	// Resumed a while later (the real clock is years past the run's).
	failSend = false
	w.hosts.Reset()
	_ = w.resume(t, id, consulFn, nil)
	var sends []string
	for _, l := range w.hosts.Lines() {
		if strings.HasPrefix(l, "zippy: ") && strings.Contains(l, " send ") {
			sends = append(sends, l)
		}
	}
	if len(sends) == 0 || !strings.Contains(sends[0], " "+want) {
		t.Fatalf("the resumed run sent\n  %s\nwant the snapshot the run took, %s; every command:\n  %s", strings.Join(sends, "\n  "), want, strings.Join(w.hosts.Lines(), "\n  "))
	}
	for _, l := range w.hosts.Lines() {
		if strings.Contains(l, " snapshot ") {
			t.Fatalf("the resumed run took a snapshot again: %s", l)
		}
	}
}

// sentSnapshot says whether the source was asked to send name.
func sentSnapshot(h *sshexectest.Hosts, name string) bool {
	for _, l := range h.Lines() {
		if strings.HasPrefix(l, "zippy: ") && strings.Contains(l, " send ") && strings.Contains(l, " "+name) {
			return true
		}
	}
	return false
}
