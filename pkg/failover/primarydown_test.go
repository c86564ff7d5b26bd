package failover

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hoctl/hoctl/pkg/inventory"
	"github.com/hoctl/hoctl/pkg/sshexec"
	"github.com/hoctl/hoctl/pkg/tasks"
)

// passingConsul owns the key for owner and reports passing as Consul's
// passing instances of the service.
type passingConsul struct {
	mu      sync.Mutex
	owner   string
	passing []string
}

func (c *passingConsul) Leader(context.Context) (string, error) { return "c1", nil }
func (c *passingConsul) Passing(context.Context, string) ([]string, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.passing...), nil
}
func (c *passingConsul) Get(context.Context, string) (string, uint64, bool, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.owner, 1, true, nil
}
func (c *passingConsul) CAS(_ context.Context, _, v string, _ uint64) (bool, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.owner = v
	return true, nil
}

// okRunner runs nothing and says every command succeeded.
type okRunner struct{ name string }

func (r okRunner) Name() string { return r.name }
func (r okRunner) Run(context.Context, sshexec.Cmd) (*sshexec.Result, error) {
	return &sshexec.Result{}, nil
}

const downInv = `hosts: {zippy: {}, c1: {}}
consul: {address: "http://127.0.0.1:8500"}
replication:
  services:
    source: {host: zippy, subvolume: /persist/services}
    target: {host: c1, dir: /persist/services-standby}
nfs:
  data-services: {export: /data/services, subvolume: /persist/services, replication: services, primary: zippy, standbys: [c1]}
`

func downRun(t *testing.T, c *passingConsul) (*tasks.Runbook, *Run) {
	t.Helper()
	return downRunbook(t, c, 0)
}

// downRunbook is a --primary-down failover zippy → c1 of downInv against
// c, waiting leaseWait before the start (0: the protocol's).
func downRunbook(t *testing.T, c Consul, leaseWait time.Duration) (*tasks.Runbook, *Run) {
	t.Helper()
	inv, err := inventory.Parse("i.yaml", []byte(downInv))
	if err != nil {
		t.Fatal(err)
	}
	rb, r, err := Runbook(context.Background(), inv, func(context.Context) (Consul, error) { return c, nil },
		Options{Service: "data-services", To: "c1", PrimaryDown: true, LeaseWait: leaseWait})
	if err != nil {
		t.Fatal(err)
	}
	return rb, r
}

// fn is what a step's operation runs (every failover operation
// without a command is a tasks.Func).
func fn(op tasks.Op) func(context.Context, *tasks.Env, *inventory.Host) (string, error) {
	return op.(*tasks.Func).Fn
}

func stepTitled(t *testing.T, rb *tasks.Runbook, prefix string) *tasks.Step {
	t.Helper()
	for _, s := range rb.Steps {
		if strings.HasPrefix(s.Title, prefix) {
			return s
		}
	}
	t.Fatalf("no step %q", prefix)
	return nil
}

// With --primary-down, Consul still seeing the old primary passing (its
// gossip has not noticed it go yet) does not hold the run up: the owner
// key moves, and Consul's detection runs during the lease wait, whose
// after check wants it done. The old primary is given DownProbe to
// answer over SSH, not its whole connect timeout.
func TestPrimaryDownDoesNotWaitForConsulToSeeItGo(t *testing.T) {
	c := &passingConsul{owner: "zippy", passing: []string{"zippy"}}
	rb, r := downRun(t, c)
	var probeLeft time.Duration
	env := &tasks.Env{Inventory: r.Inv, Connect: func(ctx context.Context, h *inventory.Host) (sshexec.Runner, error) {
		if h.Name == "zippy" {
			d, ok := ctx.Deadline()
			if !ok {
				probeLeft = -1
			} else {
				probeLeft = time.Until(d)
			}
			return nil, errors.New("zippy: dial: i/o timeout (test)")
		}
		return nil, errors.New("c1: no copy here (test)")
	}}
	_, err := r.assess(context.Background(), env, nil)
	if err == nil || !strings.Contains(err.Error(), "c1: no copy here") {
		t.Errorf("assess: %v; want it past the old primary's checks, at the copy on c1", err)
	}
	if probeLeft < 0 || probeLeft > DownProbe {
		t.Errorf("the old primary's probe had %v left (-1: no deadline); want at most %v", probeLeft, DownProbe)
	}

	fence := stepTitled(t, rb, "fence zippy")
	if _, err := fn(fence.Action)(context.Background(), env, nil); err != nil {
		t.Fatal(err)
	}
	if fence.After != nil {
		if _, err := fn(fence.After)(context.Background(), env, nil); err != nil {
			t.Errorf("the fence's after check, Consul still seeing zippy passing: %v", err)
		}
	}
	wait := stepTitled(t, rb, "wait out zippy's guard lease")
	if wait.After == nil {
		t.Fatal("the lease wait checks nothing after it")
	}
	if _, err := fn(wait.After)(context.Background(), env, nil); err == nil {
		t.Error("the lease wait's after check passes while Consul sees zippy passing")
	}
	if wait.Retries == 0 {
		t.Error("the lease wait's after check is not retried: Consul's gossip gets no time")
	}
	c.passing = nil
	if _, err := fn(wait.After)(context.Background(), env, nil); err != nil {
		t.Errorf("zippy gone from Consul: %v", err)
	}
}

// The lease wait counts from the moment the owner key's compare-and-set
// returned, not from the wait step's start: a key moved the whole wait
// ago leaves nothing to wait.
func TestPrimaryDownWaitCountsFromTheKeyMove(t *testing.T) {
	c := &passingConsul{owner: "zippy"}
	rb, r := downRun(t, c)
	env := &tasks.Env{Inventory: r.Inv}
	if _, err := fn(stepTitled(t, rb, "fence zippy").Action)(context.Background(), env, nil); err != nil {
		t.Fatal(err)
	}
	r.mu.Lock()
	if r.keyMoved.IsZero() {
		t.Fatal("the fence did not note when the key moved")
	}
	r.keyMoved = r.keyMoved.Add(-(GuardLease + GuardMargin))
	r.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), GuardLease/2)
	defer cancel()
	if _, err := fn(stepTitled(t, rb, "wait out zippy's guard lease").Action)(ctx, env, nil); err != nil {
		t.Errorf("the wait, the key moved %s ago: %v", GuardLease+GuardMargin, err)
	}
	// A resumed run does not know when the key moved: the whole wait.
	r2 := &Run{}
	now := time.Now()
	if got := r2.leaseWaitEnd(now); !got.Equal(now.Add(GuardLease + GuardMargin)) {
		t.Errorf("unknown key move: wait until %v, want %v", got, now.Add(GuardLease+GuardMargin))
	}
}

// With --primary-down the direction is recorded in Consul and on the new
// primary, and the old primary, which did not answer, is not asked again
// before the clients remount (that would cost them a connect timeout).
func TestPrimaryDownRecordsTheDirectionWithoutTheOldPrimary(t *testing.T) {
	c := &passingConsul{owner: "zippy"}
	rb, r := downRun(t, c)
	var asked []string
	env := &tasks.Env{Inventory: r.Inv, Connect: func(_ context.Context, h *inventory.Host) (sshexec.Runner, error) {
		asked = append(asked, h.Name)
		return okRunner{h.Name}, nil
	}}
	out, err := fn(stepTitled(t, rb, "record the direction").Action)(context.Background(), env, nil)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(asked, " ") != "c1" || !strings.Contains(out, "not recorded on zippy") {
		t.Errorf("connected to %v; said %q", asked, out)
	}
}

// The new primary's start forgets the clients its server recorded in an
// earlier term before the unit starts, so its grace period has none to
// wait for; run on a scratch copy of those dirs, it empties them and
// keeps the dirs.
func TestStartForgetsTheEarlierTermsClients(t *testing.T) {
	cmd := startCmd("nfs-server.service")
	forget, start := strings.Index(cmd, "v4recov"), strings.Index(cmd, "systemctl start")
	if forget < 0 || start < 0 || forget > start {
		t.Fatalf("the start does not forget the earlier term's clients before systemctl start:\n%s", cmd)
	}
	root := t.TempDir()
	shell(t, "mkdir -p "+root+"/v4recov/node0/'::ffff:127.0.0.1-(27:Libnfs pid:1 2)' "+root+"/v4old/node0 && touch "+root+"/v4old/node0/x")
	shell(t, forgetClientsCmd([]string{root + "/v4recov", root + "/v4old", root + "/absent"}))
	if got := shell(t, "cd "+root+" && find . | sort"); got != ".\n./v4old\n./v4recov\n" {
		t.Errorf("left:\n%s", got)
	}
}

// The final sync's inspection runs before the fence; a run resumed after
// the fence has not run it, so the snapshot's before check does it
// there (its locks and its parent), and a run that did it goes on.
func TestSnapshotAfterTheFenceNeedsTheInspection(t *testing.T) {
	inv, err := inventory.Parse("i.yaml", []byte(downInv))
	if err != nil {
		t.Fatal(err)
	}
	c := &passingConsul{owner: "zippy"}
	rb, r, err := Runbook(context.Background(), inv, func(context.Context) (Consul, error) { return c, nil },
		Options{Service: "data-services", To: "c1"})
	if err != nil {
		t.Fatal(err)
	}
	snap := stepTitled(t, rb, "final sync: snapshot")
	if snap.Before == nil || !snap.NeedsPrevious {
		t.Fatalf("the snapshot has no before check run in sequence: %+v", snap.Before)
	}
	var asked []string
	var mu sync.Mutex // the inspection connects to both hosts at once
	env := &tasks.Env{Inventory: inv, Connect: func(_ context.Context, h *inventory.Host) (sshexec.Runner, error) {
		mu.Lock()
		defer mu.Unlock()
		asked = append(asked, h.Name)
		return nil, errors.New(h.Name + ": unreachable (test)")
	}}
	_, err = fn(snap.Before)(context.Background(), env, inv.Host("zippy"))
	mu.Lock()
	n := len(asked)
	asked = nil
	mu.Unlock()
	if err == nil || n == 0 {
		t.Errorf("a resumed run's snapshot did not inspect: %v", err)
	}
	r.mu.Lock()
	r.inspected = true
	r.mu.Unlock()
	_, err = fn(snap.Before)(context.Background(), env, inv.Host("zippy"))
	mu.Lock()
	defer mu.Unlock()
	if err != nil || len(asked) != 0 {
		t.Errorf("inspected before the fence: %v, asked %v", err, asked)
	}
}
