package guard

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hoctl/hoctl/pkg/failover"
)

// answer is one scripted reply of fakeConsul: a reading, an error, or a
// request that hangs until its context ends (a dead connection).
type answer struct {
	r    Reading
	err  error
	hang bool
	// took moves the fake clock while the request is out: a host frozen
	// with the request in flight.
	took time.Duration
}

type fakeConsul struct {
	t       *testing.T
	clock   *fakeClock
	answers []answer
	asked   []uint64 // the index of each request
}

func (c *fakeConsul) Owner(ctx context.Context, key string, index uint64, wait time.Duration) (Reading, error) {
	c.asked = append(c.asked, index)
	if len(c.answers) == 0 {
		c.t.Fatalf("unexpected request #%d for %s", len(c.asked), key)
	}
	a := c.answers[0]
	c.answers = c.answers[1:]
	if c.clock != nil {
		c.clock.advance(a.took)
	}
	if a.hang {
		<-ctx.Done()
		return Reading{}, ctx.Err()
	}
	return a.r, a.err
}

type fakeUnits struct {
	mu      sync.Mutex
	running bool
	err     error // from Running
	did     []string
}

func (u *fakeUnits) Running(context.Context, string) (bool, error) {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.running, u.err
}

func (u *fakeUnits) record(what string, running bool) error {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.did = append(u.did, what)
	u.running = running
	return nil
}

func (u *fakeUnits) Fence(_ context.Context, unit, reason string) error {
	return u.record("fence "+unit+": "+reason, false)
}
func (u *fakeUnits) Stop(_ context.Context, unit string) error { return u.record("stop "+unit, false) }
func (u *fakeUnits) Start(_ context.Context, unit string) error {
	return u.record("start "+unit, true)
}

type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func me(idx uint64) answer    { return answer{r: Reading{Owner: "zippy", Found: true, Index: idx}} }
func other(idx uint64) answer { return answer{r: Reading{Owner: "c1", Found: true, Index: idx}} }

func newTestGuard(t *testing.T, running bool, answers ...answer) (*Guard, *fakeConsul, *fakeUnits, *fakeClock, *[]string) {
	t.Helper()
	clock := &fakeClock{t: time.Unix(1_800_000_000, 0)}
	c := &fakeConsul{t: t, clock: clock, answers: answers}
	u := &fakeUnits{running: running}
	var logs []string
	g := New(Config{Key: "hoctl/nfs/data-services/owner", Unit: "nfs-server.service", Host: "zippy",
		Log: func(_ int, m string) { logs = append(logs, m) }, Now: clock.now}, c, u)
	return g, c, u, clock, &logs
}

func did(u *fakeUnits) string {
	u.mu.Lock()
	defer u.mu.Unlock()
	return strings.Join(u.did, "\n")
}

// The key names this host: nothing to do, and the next read blocks on
// the index Consul gave.
func TestGuardKeyNamesMe(t *testing.T) {
	g, c, u, _, _ := newTestGuard(t, true, me(7), me(7))
	for range 2 {
		if !g.Step(context.Background()) {
			t.Fatal("step failed")
		}
	}
	if d := did(u); d != "" {
		t.Fatalf("acted on its own host's key: %s", d)
	}
	if c.asked[0] != 0 || c.asked[1] != 7 {
		t.Fatalf("indexes asked %v, want [0 7]", c.asked)
	}
}

// The key names another host while the unit runs: asked again (never on
// an old answer), then fenced and stopped, saying why.
func TestGuardKeyNamesAnotherFencesAndStops(t *testing.T) {
	g, c, u, _, logs := newTestGuard(t, true, me(7), other(9), other(9))
	g.Step(context.Background())
	g.Step(context.Background())
	if d := did(u); d != `fence nfs-server.service: owner key hoctl/nfs/data-services/owner names "c1"` {
		t.Fatalf("did %q", d)
	}
	if c.asked[2] != 0 {
		t.Fatalf("the check before acting must not block: asked %v", c.asked)
	}
	if !strings.Contains(strings.Join(*logs, "\n"), `names "c1": fencing and stopping nfs-server.service`) {
		t.Errorf("the journal does not say what it did: %q", *logs)
	}
}

// An answer naming another host that a fresh read contradicts (the key
// came back to this host meanwhile) is not acted on.
func TestGuardStaleAnswerIsNotActedOn(t *testing.T) {
	g, _, u, _, _ := newTestGuard(t, true, other(9), me(11))
	g.Step(context.Background())
	if d := did(u); d != "" {
		t.Fatalf("acted on a stale answer: %s", d)
	}
}

// A deleted owner key: the unit's start check refuses it too.
func TestGuardKeyMissingFences(t *testing.T) {
	g, _, u, _, _ := newTestGuard(t, true, me(7), answer{r: Reading{Index: 9}}, answer{r: Reading{Index: 9}})
	g.Step(context.Background())
	g.Step(context.Background())
	if d := did(u); !strings.HasPrefix(d, "fence nfs-server.service: owner key hoctl/nfs/data-services/owner is not set") {
		t.Fatalf("did %q", d)
	}
}

// A standby whose unit does not run is left alone: fencing it would race
// a failover that is about to start it.
func TestGuardStandbyNotRunningIsLeftAlone(t *testing.T) {
	g, _, u, _, _ := newTestGuard(t, false, other(3), other(3))
	g.Step(context.Background())
	g.Step(context.Background())
	if d := did(u); d != "" {
		t.Fatalf("acted on a standby: %s", d)
	}
}

// Consul unreachable: the unit runs on until the lease (counted from the
// last confirmation) runs out, then stops, unfenced; when Consul names
// this host again the guard starts it again; when it names another, the
// stopped unit is fenced.
func TestGuardConsulUnreachablePastTheLease(t *testing.T) {
	down := errors.New("connect: connection refused")
	g, _, u, clock, _ := newTestGuard(t, true,
		me(7),
		answer{err: down, took: 5 * time.Second},
		answer{err: down, took: 11 * time.Second}, // 16 s since the confirmation: past the 15 s lease
		me(12),
		other(13), other(13))
	ctx := context.Background()
	g.Step(ctx)
	if g.Step(ctx) || did(u) != "" {
		t.Fatalf("within the lease: %q", did(u))
	}
	g.Step(ctx)
	if d := did(u); d != "stop nfs-server.service" {
		t.Fatalf("past the lease: did %q, want a stop", d)
	}
	clock.advance(time.Second)
	g.Step(ctx)
	if d := did(u); d != "stop nfs-server.service\nstart nfs-server.service" {
		t.Fatalf("confirmed again: did %q, want a start", d)
	}
	g.Step(ctx)
	if d := did(u); !strings.HasSuffix(d, "\nfence nfs-server.service: owner key hoctl/nfs/data-services/owner names \"c1\"") {
		t.Fatalf("then another owner: did %q", d)
	}
}

// The hung primary: frozen with a request in flight whose answer (the
// key still naming it) is read only after it thaws. The answer renews
// the lease only to when it was asked, so the unit stops at once.
func TestGuardLateAnswerRenewsOnlyToItsSendTime(t *testing.T) {
	g, _, u, _, _ := newTestGuard(t, true, me(7), answer{r: Reading{Owner: "zippy", Found: true, Index: 7}, took: 40 * time.Second})
	g.Step(context.Background())
	g.Step(context.Background())
	if d := did(u); d != "stop nfs-server.service" {
		t.Fatalf("did %q, want a stop: the answer was 40 s old", d)
	}
}

// A request that never returns (a dead connection after SIGCONT, a
// partitioned agent) is cut at the lease's end, not the request's own
// much longer bound, and the unit stops. The 30 s ceiling only catches
// a guard that waits for the request.
func TestGuardHungRequestIsCutAtTheLeaseEnd(t *testing.T) {
	var logs []string
	var mu sync.Mutex
	c := &fakeConsul{t: t, answers: []answer{me(7), {hang: true}}}
	u := &fakeUnits{running: true}
	g := New(Config{Key: "k", Unit: "nfs-server.service", Host: "zippy", Lease: 300 * time.Millisecond, Request: time.Hour,
		Log: func(_ int, m string) { mu.Lock(); logs = append(logs, m); mu.Unlock() }}, c, u)
	g.Step(context.Background())
	done := make(chan struct{})
	go func() { g.Step(context.Background()); close(done) }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("a hung request held the guard past its lease")
	}
	if d := did(u); d != "stop nfs-server.service" {
		t.Fatalf("did %q", d)
	}
}

// No answer yet (the guard just started, Consul is down) and a running
// unit: nothing ever confirmed it, so it stops.
func TestGuardNeverConfirmedStops(t *testing.T) {
	g, _, u, _, _ := newTestGuard(t, true, answer{err: errors.New("no route")})
	g.Step(context.Background())
	if d := did(u); d != "stop nfs-server.service" {
		t.Fatalf("did %q", d)
	}
}

// When systemctl cannot say whether the unit runs, the guard acts as if
// it does.
func TestGuardUnknownUnitStateCountsAsRunning(t *testing.T) {
	g, _, u, _, _ := newTestGuard(t, false, other(3), other(3))
	u.err = errors.New("Failed to connect to bus")
	g.Step(context.Background())
	if d := did(u); !strings.HasPrefix(d, "fence ") {
		t.Fatalf("did %q", d)
	}
}

func TestGuardDryRunChangesNothing(t *testing.T) {
	g, _, u, _, logs := newTestGuard(t, true, other(3), other(3))
	g.DryRun = true
	g.Step(context.Background())
	if d := did(u); d != "" {
		t.Fatalf("dry run did %q", d)
	}
	if !strings.Contains(strings.Join(*logs, "\n"), "dry run: would act: owner key") {
		t.Fatalf("dry run does not say what it would do: %q", *logs)
	}
}

// Consul's rule: an index that goes backwards starts over from 0; an
// index of 0 is never sent back (the query would not block).
func TestGuardIndexHandling(t *testing.T) {
	g, c, _, _, _ := newTestGuard(t, true, me(20), me(5), answer{r: Reading{Owner: "zippy", Found: true, Index: 0}}, me(1))
	for range 4 {
		g.Step(context.Background())
	}
	if want := []uint64{0, 20, 0, 1}; len(c.asked) != 4 || c.asked[1] != want[1] || c.asked[2] != want[2] || c.asked[3] != want[3] {
		t.Fatalf("asked %v, want %v", c.asked, want)
	}
}

// Run ends without error when its context does (systemd's SIGTERM).
func TestGuardRunEndsWithItsContext(t *testing.T) {
	c := &fakeConsul{t: t, answers: []answer{me(1), {hang: true}}}
	g := New(Config{Key: "k", Unit: "u", Host: "zippy"}, c, &fakeUnits{running: true})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- g.Run(ctx) }()
	time.Sleep(50 * time.Millisecond)
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// The fence the guard writes is the failover's: its drop-in path (which
// hoctl failover back removes), asserting its own absence, reloaded
// before the stop. A hostile owner value cannot add a line to it.
func TestSystemdFenceWritesTheFailoverDropIn(t *testing.T) {
	root := t.TempDir()
	var calls []string
	s := &Systemd{Host: "zippy", Root: root, Exec: func(_ context.Context, args ...string) (string, error) {
		calls = append(calls, strings.Join(args, " "))
		return "", nil
	}}
	if err := s.Fence(context.Background(), "nfs-server.service", "owner key k names \"c1\n[Service]\nExecStartPre=/bin/evil\""); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(root, failover.FenceDropIn("nfs-server.service")))
	if err != nil {
		t.Fatal(err)
	}
	conf := string(b)
	if !strings.Contains(conf, "\n[Unit]\nAssertPathExists=!"+failover.FenceDropIn("nfs-server.service")+"\n") {
		t.Errorf("not the fence: %s", conf)
	}
	for _, l := range strings.Split(conf, "\n") {
		if strings.HasPrefix(l, "ExecStartPre") || strings.HasPrefix(l, "[Service]") {
			t.Errorf("the owner value added a line to the drop-in:\n%s", conf)
		}
	}
	if strings.Join(calls, ";") != "daemon-reload;stop nfs-server.service" {
		t.Errorf("systemctl calls %q, want the reload before the stop", calls)
	}
}

func TestSystemdRunning(t *testing.T) {
	for _, c := range []struct {
		out     string
		err     error
		running bool
		fails   bool
	}{
		{"active", nil, true, false},
		{"deactivating", errors.New("exit status 3"), true, false},
		{"inactive", errors.New("exit status 3"), false, false},
		{"failed", errors.New("exit status 3"), false, false},
		{"", errors.New("exit status 1"), false, true},
		{"Failed to connect to bus: No such file or directory", errors.New("exit status 1"), false, true},
	} {
		s := &Systemd{Exec: func(context.Context, ...string) (string, error) { return c.out, c.err }}
		running, err := s.Running(context.Background(), "u")
		if running != c.running || (err != nil) != c.fails {
			t.Errorf("is-active %q (%v): running %v err %v", c.out, c.err, running, err)
		}
	}
}
