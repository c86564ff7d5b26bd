package failover

import (
	"context"
	"slices"
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

// standInSync replaces the final sync's steps (replicate's runbook,
// tested in pkg/replicate) by stand-ins.
func standInSync(rb *tasks.Runbook) {
	for _, s := range rb.Steps {
		if strings.HasPrefix(s.Title, "final sync:") {
			standIn(s)
		}
	}
}

// A planned failover whose fence step stopped after its compare-and-set
// moved the owner key (here the stop of the old primary failed; a Ctrl-C
// or a crash there is the same) is resumed: the fence's before check
// takes the key naming the new primary as the cut fence's own write, and
// the fence does what is left, the stop of the old primary, before
// anything starts on the new one. The key is not written again.
func TestResumeFinishesAFenceCutAfterItsCompareAndSet(t *testing.T) {
	inv := parseInv(t, resolveInv)
	svc := inv.NFS["data-services"]
	c := &cluster{kv: map[string]string{svc.OwnerKey: "zippy"}, index: map[string]uint64{svc.OwnerKey: 7}, active: map[string]bool{"zippy": true}}
	stopFails := true
	answer := c.answer(t)
	w := newResumeWorld(t, func(host string, cmd sshexec.Cmd) sshexectest.Reply {
		if host == "zippy" && strings.Contains(cmd.Line(), "systemctl stop") && stopFails {
			c.log("zippy stop failed")
			return sshexectest.Reply{Code: 255, Stderr: "Connection to zippy closed by remote host."}
		}
		return answer(host, cmd)
	})
	consulFn := func(context.Context) (Consul, error) { return c, nil }
	rb, err := Resolve(context.Background(), w.inv, consulFn, Options{To: "c1", ConsulWait: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	standInSync(rb)
	id, err := w.eng.Run(context.Background(), rb, tasks.RunOptions{})
	if err == nil || c.kv[svc.OwnerKey] != "c1" || !c.active["zippy"] {
		t.Fatalf("the first run: %v, owner %s, zippy active %v; want the fence cut after the key moved", err, c.kv[svc.OwnerKey], c.active["zippy"])
	}

	// Resumed while the stop still fails: nothing starts on c1.
	c.timeline = nil
	if err := w.resume(t, id, consulFn, standInSync); err == nil || c.active["c1"] || !c.active["zippy"] {
		t.Fatalf("resumed with zippy's stop failing: %v, c1 active %v; want the fence's error, nothing started:\n%s", err, c.active["c1"], strings.Join(c.timeline, "\n"))
	}
	if slices.Contains(c.timeline, "c1 start") {
		t.Fatalf("c1 started while zippy was not stopped: %v", c.timeline)
	}

	stopFails = false
	c.timeline = nil
	if err := w.resume(t, id, consulFn, standInSync); err != nil {
		t.Fatalf("resume: %v\n%s", err, strings.Join(c.timeline, "\n"))
	}
	want := []string{"zippy fence", "c1 promote", "c1 start"}
	var got []string
	for _, ev := range c.timeline {
		switch {
		case ev == "consul "+svc.OwnerKey+"=c1":
			t.Fatalf("the resumed run wrote the owner key again: %v", c.timeline)
		case slices.Contains(want, ev) && !slices.Contains(got, ev):
			got = append(got, ev)
		}
	}
	if !slices.Equal(got, want) {
		t.Fatalf("the resumed run ran\n  %s\nwant, in order, %v", strings.Join(c.timeline, "\n  "), want)
	}
	if c.active["zippy"] || !c.active["c1"] {
		t.Fatalf("after the resume: zippy active %v, c1 active %v", c.active["zippy"], c.active["c1"])
	}
}

// A fence whose compare-and-set found the key moved by someone else took
// its arming back and said so: a resume of it is not a cut fence, and a
// key naming the new primary then is someone else's, which the fence's
// before check refuses.
func TestFenceCutOnlyWhenTheFenceBeganAndDidNotDisarm(t *testing.T) {
	ok, failed := true, false
	for _, tc := range []struct {
		name string
		recs []tasks.Record
		want bool
	}{
		{"killed in its action", []tasks.Record{{Type: "check", Step: 6, Phase: "before", OK: &ok}}, true},
		{"its stop failed", []tasks.Record{{Type: "check", Step: 6, Phase: "before", OK: &ok},
			{Type: "action", Step: 6, OK: &failed, Error: "zippy: stopping nfs-server.service: exit 255"}}, true},
		{"before check refused", []tasks.Record{{Type: "check", Step: 6, Phase: "before", OK: &failed}}, false},
		{"never began", []tasks.Record{{Type: "check", Step: 5, Phase: "before", OK: &ok}}, false},
		{"disarmed", []tasks.Record{{Type: "check", Step: 6, Phase: "before", OK: &ok},
			{Type: "action", Step: 6, OK: &failed, Error: "owner key k changed while it was being moved: someone else is at work (" + disarmedMark + " zippy was removed: it serves on, and may start again)"}}, false},
	} {
		if got := fenceCut(tc.recs, 6); got != tc.want {
			t.Errorf("%s: fenceCut = %v, want %v", tc.name, got, tc.want)
		}
	}
}
