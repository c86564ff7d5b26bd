package guard

import (
	"context"
	"errors"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// Scenarios on the simulation's fake clock and scripted Consul
// (sim_test.go), with systemctl taking no time: every time asserted is
// exact, and none depends on the machine's speed.

const key = "hoctl/nfs/data-services/owner"

func scenario(stored bool, end time.Duration, phases []phase, writes ...keyWrite) *world {
	s := schedule{stored: stored, end: end, phases: phases, c1Start: never, indexReset: never,
		writes: append([]keyWrite{{at: 0, owner: "zippy", mod: 10, by: "initial"}}, writes...)}
	return s.world(nil, 1)
}

func logged(w *world, part string) bool {
	return slices.ContainsFunc(w.logs, func(l string) bool { return strings.Contains(l, part) })
}

// Issue #19 finding 4a: Consul fails fast for 14.5 s after the last
// confirmation, then hangs (a partition). The unit stops at the
// confirmation's send time + 15 s exactly, not when a request sent at
// the lease's end gives up 8 s later.
func TestGuardPartitionStopsAtTheLeaseEnd(t *testing.T) {
	w := scenario(true, 60*time.Second, []phase{{0, mOK}, {10 * time.Second, mFail}, {24500 * time.Millisecond, mHang}})
	w.run()
	if w.viol != "" {
		t.Fatal(w.viol)
	}
	last := w.deadline - simLease
	if want := []string{"stop " + w.deadline.String()}; !slices.Equal(w.unitLog, want) {
		t.Fatalf("unit: %q, want %q (the last confirmation was sent at %s)\n%s", w.unitLog, want, last, strings.Join(w.trace, "\n"))
	}
}

// Finding 4b: the key names another host, and asking again before
// fencing fails, again and again: the lease still ends on time.
func TestGuardFailedRecheckKeepsTheLease(t *testing.T) {
	w := scenario(true, 60*time.Second, []phase{{0, mOK}, {3 * time.Second, mBlockingOnly}},
		keyWrite{at: 3 * time.Second, owner: "c1", mod: 11, by: "a KV writer"})
	w.run()
	if w.viol != "" {
		t.Fatal(w.viol)
	}
	if want := []string{"stop " + w.deadline.String()}; !slices.Equal(w.unitLog, want) {
		t.Fatalf("unit: %q, want %q\n%s", w.unitLog, want, strings.Join(w.trace, "\n"))
	}
	if w.deadline > 3*time.Second+simLease {
		t.Fatalf("confirmed after the key moved: deadline %s", w.deadline)
	}
}

// Finding 4c: a guard started with nothing stored, against a Consul
// that hangs, stops the running unit StartGrace (1000 ms) after its
// start; with a stored lease that has run out, at once: before it sends
// its first request.
func TestGuardStartedWithoutConfirmationStopsAtOnce(t *testing.T) {
	if DefaultStartGrace != 1000*time.Millisecond {
		t.Fatalf("StartGrace %s: docs/failover.md states 1000 ms", DefaultStartGrace)
	}
	w := scenario(false, 10*time.Second, []phase{{0, mHang}})
	w.run()
	if want := []string{"stop 1s"}; !slices.Equal(w.unitLog, want) || w.viol != "" {
		t.Fatalf("nothing stored: unit %q, want %q; %s", w.unitLog, want, w.viol)
	}

	w = scenario(true, 10*time.Second, []phase{{0, mOK}})
	w.stored.LeaseEnd = w.t0.Add(-time.Second)
	var readsAtStop int
	w.opMax = 0
	g := w.newGuard()
	g.Units = stopCounter{simUnits{w}, func() { readsAtStop = w.reads }}
	w.guardStarted()
	send, _ := g.tick(context.Background())
	if want := []string{"stop 0s"}; !slices.Equal(w.unitLog, want) || readsAtStop != 0 || send == nil {
		t.Fatalf("stored lease ran out: unit %q (want %q), %d reads before the stop", w.unitLog, want, readsAtStop)
	}

	w = scenario(true, 10*time.Second, []phase{{0, mHang}})
	w.stored.LeaseEnd = w.t0.Add(300 * time.Millisecond)
	w.run()
	if want := []string{"stop 300ms"}; !slices.Equal(w.unitLog, want) {
		t.Fatalf("stored lease ends in 300 ms: unit %q, want %q", w.unitLog, want)
	}
}

type stopCounter struct {
	simUnits
	f func()
}

func (s stopCounter) Stop(ctx context.Context, unit string) error {
	s.f()
	return s.simUnits.Stop(ctx, unit)
}

// Finding 6: after a lease stop, an answer naming this host starts the
// unit again only at the ModifyIndex last confirmed. A key written
// since (by anyone with KV write) does not start it.
func TestGuardLeaseStopRestartsOnlyAtTheConfirmedIndex(t *testing.T) {
	phases := []phase{{0, mOK}, {time.Second, mFail}, {20 * time.Second, mOK}}
	w := scenario(true, 40*time.Second, phases)
	w.run()
	if len(w.unitLog) != 2 || !strings.HasPrefix(w.unitLog[0], "stop 15.") || !strings.HasPrefix(w.unitLog[1], "start 20.") || w.viol != "" {
		t.Fatalf("key unchanged: unit %q, want a stop at 15s and a start at 20s; %s", w.unitLog, w.viol)
	}

	w = scenario(true, 40*time.Second, phases, keyWrite{at: 18 * time.Second, owner: "zippy", mod: 11, by: "a KV writer"})
	w.run()
	if len(w.unitLog) != 1 || !strings.HasPrefix(w.unitLog[0], "stop 15") || w.viol != "" {
		t.Fatalf("key written since: unit %q, want only the stop at 15s; %s", w.unitLog, w.viol)
	}
	if !logged(w, "at ModifyIndex 11 and it was 10 at the lease stop: the key was written since") {
		t.Errorf("the journal does not say why it does not start:\n%s", strings.Join(w.logs, "\n"))
	}
}

// Issue #22 item 9: an hour of Consul down is a handful of lines, not
// one or two a second, whatever the errors say (refused while the agent
// restarts, no leader while it runs, in turn).
func TestGuardQuietWhileConsulDown(t *testing.T) {
	phases := []phase{{0, mOK}}
	for at := time.Second; at < time.Hour; at += 2 * time.Second {
		phases = append(phases, phase{at, []mode{mFail, mLeader}[len(phases)%2]})
	}
	w := scenario(true, time.Hour, phases)
	w.run()
	if w.reads < 1000 {
		t.Fatalf("only %d reads in an hour", w.reads)
	}
	if len(w.logs) > 20 {
		t.Fatalf("%d lines for %d failed reads in an hour:\n%s", len(w.logs), w.reads, strings.Join(w.logs[:20], "\n"))
	}
	if !logged(w, "still cannot read "+key) || !logged(w, "stopping nfs-server.service") {
		t.Errorf("no summary or no stop in:\n%s", strings.Join(w.logs, "\n"))
	}
	w = scenario(true, 30*time.Second, []phase{{0, mFail}, {10 * time.Second, mOK}})
	w.run()
	if !logged(w, "Consul answers again, after") {
		t.Errorf("the end of the outage is not said:\n%s", strings.Join(w.logs, "\n"))
	}
}

// An answer that waited in a frozen host's socket renews the lease only
// to when it was asked: read 40 s late, it stops the unit at once.
func TestGuardLateAnswerRenewsOnlyToItsSendTime(t *testing.T) {
	w := scenario(true, 60*time.Second, []phase{{0, mOK}})
	// The host frozen: no timer of the guard's fires either.
	w.noFuse = true
	g := w.newGuard()
	w.guardStarted()
	ctx := context.Background()
	req, _ := g.tick(ctx)
	w.advance(40 * time.Second)
	g.answered(ctx, req, Reading{Owner: "zippy", Found: true, Index: 1010, ModifyIndex: 10}, nil)
	if want := []string{"stop 40s"}; !slices.Equal(w.unitLog, want) {
		t.Fatalf("unit %q, want %q", w.unitLog, want)
	}
}

// The key names another host: asked again without blocking (never on an
// old answer), then fenced; a fresh answer naming this host stops it.
func TestGuardKeyNamesAnotherFencesAfterAskingAgain(t *testing.T) {
	w := scenario(true, 20*time.Second, []phase{{0, mOK}}, keyWrite{at: 2 * time.Second, owner: "c1", mod: 11, by: "failover"})
	w.run()
	if len(w.unitLog) != 1 || !strings.HasPrefix(w.unitLog[0], "fence 2") {
		t.Fatalf("unit %q, want a fence just after 2s", w.unitLog)
	}
	if !logged(w, `names "c1": fencing and stopping nfs-server.service`) {
		t.Errorf("the journal does not say what it did:\n%s", strings.Join(w.logs, "\n"))
	}

	w = scenario(true, 20*time.Second, []phase{{0, mOK}})
	g := w.newGuard()
	ctx := context.Background()
	req, _ := g.tick(ctx)
	g.answered(ctx, req, Reading{Owner: "c1", Found: true, Index: 9, ModifyIndex: 9}, nil)
	re, _ := g.tick(ctx)
	if re == nil || re.index != 0 || re.wait != 0 {
		t.Fatalf("the re-check must not block: %+v", re)
	}
	g.answered(ctx, re, Reading{Owner: "zippy", Found: true, Index: 11, ModifyIndex: 11}, nil)
	if len(w.unitLog) != 0 {
		t.Fatalf("acted on a stale answer: %q", w.unitLog)
	}
}

// A deleted key fences (the unit's own start check refuses it too); a
// standby whose unit does not run is left alone (fencing it would race
// a failover about to start it); a unit systemctl cannot answer about is
// taken as running; a dry run changes nothing and says what it would do.
func TestGuardOtherCases(t *testing.T) {
	w := scenario(true, 10*time.Second, []phase{{0, mOK}}, keyWrite{at: time.Second, owner: "", mod: 11, by: "a KV writer"})
	w.run()
	if len(w.unitLog) != 1 || !strings.HasPrefix(w.unitLog[0], "fence") || !logged(w, "owner key "+key+" is not set") {
		t.Errorf("deleted key: unit %q", w.unitLog)
	}

	s := schedule{end: 60 * time.Second, phases: []phase{{0, mOK}}, c1Start: never, indexReset: never, unit0: stopped,
		writes: []keyWrite{{at: 0, owner: "c1", mod: 10}}}
	w = s.world(nil, 1)
	w.run()
	if len(w.unitLog) != 0 {
		t.Errorf("standby: unit %q", w.unitLog)
	}

	s.unitErr, s.unit0 = true, active
	w = s.world(nil, 1)
	w.run()
	if len(w.unitLog) == 0 || !strings.HasPrefix(w.unitLog[0], "fence") || !logged(w, "taken as running") {
		t.Errorf("unknown unit state: unit %q", w.unitLog)
	}

	s.unitErr, s.dryRun = false, true
	w = s.world(nil, 1)
	w.run()
	if len(w.unitLog) != 0 || !logged(w, "dry run: would act: owner key") {
		t.Errorf("dry run: unit %q, logs %q", w.unitLog, w.logs)
	}
}

// Consul's rule: an index that goes backwards starts over from 0; an
// index of 0 is never sent back (the query would not block).
func TestGuardIndexHandling(t *testing.T) {
	w := scenario(true, time.Minute, []phase{{0, mOK}})
	g := w.newGuard()
	ctx := context.Background()
	var asked []uint64
	for _, idx := range []uint64{20, 5, 0, 1} {
		req, _ := g.tick(ctx)
		asked = append(asked, req.index)
		g.answered(ctx, req, Reading{Owner: "zippy", Found: true, Index: idx, ModifyIndex: 10}, nil)
	}
	if want := []uint64{0, 20, 0, 1}; !slices.Equal(asked, want) {
		t.Fatalf("asked %v, want %v", asked, want)
	}
}

// Run itself, on the real clock: a request that hangs and ignores its
// context does not hold the stop, which the lease's timer fires; Run
// ends with its context. (Only a ceiling: nothing here is timed.)
func TestRunStopsOnTheTimerWhateverTheRequest(t *testing.T) {
	release := make(chan struct{})
	defer close(release)
	c := &hangingConsul{release: release}
	u := &recordingUnits{running: true}
	g := New(Config{Key: "k", Unit: "nfs-server.service", Host: "zippy", Lease: 300 * time.Millisecond, StartGrace: 200 * time.Millisecond, Request: time.Hour}, c, u, nil, nil)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- g.Run(ctx) }()
	deadline := time.Now().Add(30 * time.Second)
	for u.did() == "" && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if d := u.did(); d != "stop nfs-server.service" {
		t.Fatalf("did %q, want a stop while the request hangs", d)
	}
}

type hangingConsul struct{ release chan struct{} }

func (c *hangingConsul) Owner(context.Context, string, uint64, time.Duration) (Reading, error) {
	<-c.release // ignores its context
	return Reading{}, errors.New("released")
}

type recordingUnits struct {
	mu      sync.Mutex
	running bool
	log     []string
}

func (u *recordingUnits) Running(context.Context, string) (bool, error) {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.running, nil
}

func (u *recordingUnits) rec(s string, running bool) error {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.log, u.running = append(u.log, s), running
	return nil
}

func (u *recordingUnits) did() string {
	u.mu.Lock()
	defer u.mu.Unlock()
	return strings.Join(u.log, "\n")
}

func (u *recordingUnits) Fence(_ context.Context, unit, _ string) error {
	return u.rec("fence "+unit, false)
}
func (u *recordingUnits) Stop(_ context.Context, unit string) error {
	return u.rec("stop "+unit, false)
}
func (u *recordingUnits) Activated(context.Context, string) (string, error) { return "1", nil }

func (u *recordingUnits) Start(_ context.Context, unit string) error {
	return u.rec("start "+unit, true)
}

// The stored lease survives a restart of the guard as CLOCK_BOOTTIME.
func TestFileStateRoundTrip(t *testing.T) {
	clock := NewBootClock()
	f := NewFileState(t.TempDir(), key, clock)
	if filepath.Base(f.Path) != "hoctl_nfs_data-services_owner.json" {
		t.Errorf("path %s", f.Path)
	}
	if _, ok, err := f.Load(); ok || err != nil {
		t.Fatalf("empty: %v %v", ok, err)
	}
	now := clock.Now()
	in := Stored{LeaseEnd: now.Add(10 * time.Second), Confirmed: now.Add(-5 * time.Second), ModifyIndex: 42, LeaseStopped: true}
	if err := f.Save(in); err != nil {
		t.Fatal(err)
	}
	out, ok, err := f.Load()
	if !ok || err != nil || out.ModifyIndex != 42 || !out.LeaseStopped {
		t.Fatalf("loaded %+v %v %v", out, ok, err)
	}
	if !out.LeaseEnd.Equal(in.LeaseEnd) || !out.Confirmed.Equal(in.Confirmed) {
		t.Errorf("lease end %s, confirmation %s: stored %s, %s", out.LeaseEnd, out.Confirmed, in.LeaseEnd, in.Confirmed)
	}
	if err := f.Save(Stored{LeaseEnd: now}); err != nil {
		t.Fatal(err)
	}
	if out, _, _ := f.Load(); !out.Confirmed.IsZero() {
		t.Errorf("never confirmed came back as %s", out.Confirmed)
	}
}

// Attack F1: after a lease stop, someone else starts the unit (an
// operator's systemctl start, a deploy starting multi-user.target's
// wants) while Consul still cannot be read: the guard asks systemd at
// every wake while the lease has run out, and stops it within Retry.
func TestGuardStopsAUnitStartedAfterTheLeaseRanOut(t *testing.T) {
	w := scenario(true, 30*time.Second, []phase{{0, mOK}, {time.Second, mFail}})
	w.others = []other{{at: 20 * time.Second, start: true}}
	w.run()
	if w.viol != "" || w.otherStarts != 1 {
		t.Fatalf("%s (%d starts by someone else)\n%s", w.viol, w.otherStarts, strings.Join(w.trace, "\n"))
	}
	if len(w.unitLog) != 2 || !strings.HasPrefix(w.unitLog[0], "stop 15") || !strings.HasPrefix(w.unitLog[1], "stop 2") {
		t.Fatalf("unit %q, want the lease stop at 15s and a stop within %s of 20s\n%s", w.unitLog, DefaultRetry, strings.Join(w.trace, "\n"))
	}
	if at, _ := time.ParseDuration(strings.TrimPrefix(w.unitLog[1], "stop ")); at > 20*time.Second+DefaultRetry {
		t.Fatalf("stopped at %s, started at 20s: more than %s", at, DefaultRetry)
	}
}

// Attack F2: a snapshot restore puts the key back at the ModifyIndex
// the guard confirmed before its lease stop, after a failover wrote it:
// the index going back drops the guard's start.
func TestGuardSnapshotRestoreDropsTheStart(t *testing.T) {
	w := scenario(true, 60*time.Second, []phase{{0, mOK}, {time.Second, mFail}, {20 * time.Second, mOK}},
		keyWrite{at: 5 * time.Second, owner: "c1", mod: 12, by: "failover --primary-down"},
		keyWrite{at: 8 * time.Second, owner: "zippy", mod: 10, by: "a snapshot restore"})
	w.indexReset = 8 * time.Second
	w.stored.Index = w.consulIndex(0)
	w.run()
	if len(w.unitLog) != 1 || !strings.HasPrefix(w.unitLog[0], "stop 15") {
		t.Fatalf("unit %q, want only the lease stop at 15s; %s\n%s", w.unitLog, w.viol, strings.Join(w.trace, "\n"))
	}
	if !logged(w, "to 10 (a snapshot restore)") {
		t.Errorf("the journal does not say why it does not start:\n%s", strings.Join(w.logs, "\n"))
	}
	if w.stored.Index != 10 {
		t.Errorf("stored index %d, want the index after the restore", w.stored.Index)
	}
}

// Attack F5: after a lease stop, someone else started the unit again
// and Consul confirms this host: the lease stop is over, so the
// operator's later stop stays a stop.
func TestGuardLeavesAnOperatorsStopAlone(t *testing.T) {
	w := scenario(true, 60*time.Second, []phase{{0, mOK}})
	w.stored.LeaseStopped = true // the unit was stopped on the lease, then started by hand
	g := w.newGuard()
	w.guardStarted()
	ctx := context.Background()
	zippy := Reading{Owner: "zippy", Found: true, Index: 1010, ModifyIndex: 10}
	req, _ := g.tick(ctx)
	g.answered(ctx, req, zippy, nil)
	w.unit = stopped // the operator's systemctl stop
	w.advance(time.Second)
	req, _ = g.tick(ctx)
	g.answered(ctx, req, zippy, nil)
	if len(w.unitLog) != 0 || w.stored.LeaseStopped {
		t.Fatalf("unit %q, stored lease stop %v: the guard undid the operator's stop", w.unitLog, w.stored.LeaseStopped)
	}
}

// F5's class: someone starts the unit and stops it again between two
// looks of the guard (every Retry while the lease has run out). The
// guard sees the start in systemd's record (Units.Activated), so its
// stop stays a stop.
func TestGuardSeesAStartItDidNotWatch(t *testing.T) {
	w := scenario(true, 40*time.Second, []phase{{0, mOK}, {time.Second, mFail}, {20 * time.Second, mOK}})
	w.others = []other{{at: 16300 * time.Millisecond, start: true}, {at: 16700 * time.Millisecond}}
	w.run()
	if w.viol != "" || w.otherStarts != 1 || len(w.unitLog) != 1 || !strings.HasPrefix(w.unitLog[0], "stop 15") {
		t.Fatalf("unit %q (want only the lease stop at 15s), %d starts by someone else; %s\n%s", w.unitLog, w.otherStarts, w.viol, strings.Join(w.trace, "\n"))
	}
	if !logged(w, "it was started again since the lease stop") {
		t.Errorf("the journal does not say why it does not start:\n%s", strings.Join(w.logs, "\n"))
	}
}

// systemd unloads an inactive unit nothing refers to: loaded again, its
// ActiveEnterTimestampMonotonic is 0, which is no start (seen on the
// real cluster: the guard then left its own lease stop standing).
func TestStartedSince(t *testing.T) {
	for _, c := range []struct {
		stop, now string
		want      bool
	}{{"123", "123", false}, {"123", "0", false}, {"123", "456", true}, {"", "5", true}, {"7", "7", false}} {
		if got := startedSince(c.stop, c.now); got != c.want {
			t.Errorf("startedSince(%q, %q) = %v", c.stop, c.now, got)
		}
	}
}

// Issue 19 finding 5: a guard that fences (the key names another host)
// ends its lease at once, so the unit's start check (--check-lease,
// which reads the stored lease) no longer passes on this host; and an
// answer naming another host ends it as well when the unit does not run.
func TestGuardFenceEndsTheLease(t *testing.T) {
	w := scenario(true, 20*time.Second, []phase{{0, mOK}}, keyWrite{at: 2 * time.Second, owner: "c1", mod: 11, by: "failover"})
	w.run()
	if len(w.unitLog) != 1 || !strings.HasPrefix(w.unitLog[0], "fence ") {
		t.Fatalf("unit %q, want one fence", w.unitLog)
	}
	fenced, err := time.ParseDuration(strings.TrimPrefix(w.unitLog[0], "fence "))
	if err != nil {
		t.Fatal(err)
	}
	if end := w.at(w.stored.LeaseEnd); end > fenced {
		t.Fatalf("stored lease ends at %s, after the fence at %s (the last confirmation was sent before 2s)", end, fenced)
	}

	w = scenario(true, 20*time.Second, []phase{{0, mOK}}, keyWrite{at: 2 * time.Second, owner: "c1", mod: 11, by: "failover"})
	w.unit = stopped
	w.run()
	if len(w.unitLog) != 0 {
		t.Fatalf("a unit that does not run: %q", w.unitLog)
	}
	if end := w.at(w.stored.LeaseEnd); end > 3*time.Second {
		t.Fatalf("a unit that does not run: stored lease ends at %s, after an answer named c1 at 2s", end)
	}
}

// Finding 1: a start of the guard's own that has not been seen running
// (queued, or in its start checks) counts as running: the key naming
// another host fences it, and the lease's end stops it, but does not
// record a lease stop (the unit may have been stopped by someone else
// meanwhile, which no guard may undo).
func TestGuardQueuedStartCountsAsRunning(t *testing.T) {
	w := scenario(true, 20*time.Second, []phase{{0, mOK}})
	w.unit = stopped
	g := w.newGuard()
	ctx := context.Background()
	g.tick(ctx)
	g.inflight = nil
	g.leaseStopped, g.haveMod, g.mod, g.stopMark = true, true, 10, "0"
	req, _ := g.tick(ctx)
	g.answered(ctx, req, Reading{Owner: "zippy", Found: true, Index: 1010, ModifyIndex: 10}, nil)
	if !g.starting || len(w.unitLog) != 1 || !strings.HasPrefix(w.unitLog[0], "start ") {
		t.Fatalf("want a start: starting %v, unit %q", g.starting, w.unitLog)
	}
	w.unit = stopped // queued: systemd does not show it running yet
	req, _ = g.tick(ctx)
	g.answered(ctx, req, Reading{Owner: "c1", Found: true, Index: 1011, ModifyIndex: 11}, nil)
	req, _ = g.tick(ctx)
	g.answered(ctx, req, Reading{Owner: "c1", Found: true, Index: 1011, ModifyIndex: 11}, nil)
	if len(w.unitLog) != 2 || !strings.HasPrefix(w.unitLog[1], "fence ") || g.starting {
		t.Fatalf("a queued start and the key naming c1: unit %q (starting %v), want a fence", w.unitLog, g.starting)
	}

	w = scenario(true, 20*time.Second, []phase{{0, mOK}})
	g = w.newGuard()
	g.tick(ctx)
	g.inflight = nil
	w.unit, g.starting = stopped, true
	g.leaseEnd = g.Clock.Now()
	g.tick(ctx)
	if len(w.unitLog) != 1 || !strings.HasPrefix(w.unitLog[0], "stop ") || g.starting || g.leaseStopped {
		t.Fatalf("a queued start at the lease's end: unit %q, starting %v, lease stop recorded %v; want a stop, not recorded", w.unitLog, g.starting, g.leaseStopped)
	}
}

// Attack F1: the loop waits in a call that does not return (here a
// status read; on the real cluster a fence's daemon-reload), the lease
// ends meanwhile: the fuse stops the unit from its own goroutine, on
// the real clock, while the call still hangs.
func TestRunStopsAtTheLeaseEndWhileACallHangs(t *testing.T) {
	release := make(chan struct{})
	u := &hangingUnits{recordingUnits: &recordingUnits{running: true}, release: release}
	c := consulFunc(func(ctx context.Context) (Reading, error) {
		return Reading{Owner: "zippy", Found: true, Index: 5, ModifyIndex: 5}, nil
	})
	g := New(Config{Key: "k", Unit: "nfs-server.service", Host: "zippy", Lease: 300 * time.Millisecond, StartGrace: 200 * time.Millisecond, Request: time.Hour}, c, u, nil, nil)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- g.Run(ctx) }()
	deadline := time.Now().Add(30 * time.Second)
	for u.did() == "" && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	d := u.did()
	if !u.hung() {
		t.Errorf("the status read never hung: the test did not test the fuse")
	}
	close(release)
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(d, "stop nfs-server.service") {
		t.Fatalf("did %q, want a stop while the loop waits in its status read", d)
	}
}

type consulFunc func(ctx context.Context) (Reading, error)

func (f consulFunc) Owner(ctx context.Context, _ string, _ uint64, _ time.Duration) (Reading, error) {
	return f(ctx)
}

// hangingUnits: every status read after the first hangs until release.
type hangingUnits struct {
	*recordingUnits
	release chan struct{}
	mu      sync.Mutex
	reads   int
}

func (u *hangingUnits) Running(ctx context.Context, unit string) (bool, error) {
	u.mu.Lock()
	u.reads++
	n := u.reads
	u.mu.Unlock()
	if n > 1 {
		<-u.release
	}
	return u.recordingUnits.Running(ctx, unit)
}

func (u *hangingUnits) hung() bool {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.reads > 1
}
