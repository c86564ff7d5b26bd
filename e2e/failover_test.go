package e2e

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"
	"github.com/hoctl/hoctl/internal/lab"
	"github.com/hoctl/hoctl/pkg/consul"
	"github.com/hoctl/hoctl/pkg/failover"
	"github.com/hoctl/hoctl/pkg/httpapi"
	"github.com/hoctl/hoctl/pkg/inventory"
	"github.com/hoctl/hoctl/pkg/sshexec"
)

func nfsRunners(t *testing.T) (zippy, c1, c2 sshexec.Runner) {
	t.Helper()
	rs := labRunners(t, nfsLab, "zippy", "c1", "c2")
	return rs[0], rs[1], rs[2]
}

func owner(t *testing.T) string {
	t.Helper()
	v, _, _ := nfsConsul.Get(lab.NFSOwnerKey)
	return v
}

// serving lists the NFS lab's hosts whose nfs-server is active.
func serving(t *testing.T) []string {
	t.Helper()
	var out []string
	for _, h := range nfsLab.Hosts {
		if b, _ := os.ReadFile(filepath.Join(h.Dir, "state", "nfs-server")); strings.TrimSpace(string(b)) == "active" {
			out = append(out, h.Name)
		}
	}
	return out
}

// splitBrainWatch checks the failover's invariant every few milliseconds
// until the test ends: at most one host serves the export, and a serving
// host that is not the owner is only ever the previous owner, the old
// primary being fenced.
func splitBrainWatch(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	var mu sync.Mutex
	var violations []string
	wg.Add(1)
	go func() {
		defer wg.Done()
		last, prev := owner(t), ""
		for ctx.Err() == nil {
			s := serving(t)
			o := owner(t)
			if o != last {
				prev, last = last, o
			}
			bad := len(s) > 1 || len(s) == 1 && s[0] != o && s[0] != prev
			if bad {
				mu.Lock()
				violations = append(violations, "serving "+strings.Join(s, ",")+" with owner "+o)
				mu.Unlock()
			}
			time.Sleep(5 * time.Millisecond)
		}
	}()
	t.Cleanup(func() {
		cancel()
		wg.Wait()
		if len(violations) > 0 {
			t.Errorf("split-brain invariant broken %d times, first: %s", len(violations), violations[0])
		}
	})
}

// nfsStart puts the NFS lab in its day-to-day state: zippy owns and
// serves /persist/services, c1 holds replicated copies, the clients
// (c1, c2) mount zippy's export.
func nfsStart(t *testing.T) (zippy, c1, c2 sshexec.Runner, env []string) {
	t.Helper()
	zippy, c1, c2 = nfsRunners(t)
	env = stateEnv(t)
	clean := func() {
		for _, h := range nfsLab.Hosts {
			_ = os.RemoveAll(filepath.Join(h.Dir, "state"))
		}
		// A fence left by the last test's failover lasts, as on a real
		// host, until reboot: lift it as the reboot would.
		for _, r := range []sshexec.Runner{zippy, c1} {
			_, _ = r.Run(context.Background(), sshexec.Cmd{Script: "rm -rf /run/systemd/system"})
		}
		_, _ = zippy.Run(context.Background(), sshexec.Cmd{Script: "btrfs subvolume delete -c /persist/services* >/dev/null 2>&1; btrfs subvolume sync /persist"})
		_, _ = c1.Run(context.Background(), sshexec.Cmd{Script: "btrfs subvolume delete -c /persist/services-standby/services* /persist/services* >/dev/null 2>&1; btrfs subvolume sync /persist"})
		// The direction a failover recorded on the hosts.
		for _, r := range []sshexec.Runner{zippy, c1} {
			_, _ = r.Run(context.Background(), sshexec.Cmd{Script: "rm -f /persist/.hoctl-replicate-* /persist/services-standby/.hoctl-replicate-*"})
		}
		c := mustClient(t)
		_, _ = c.KV().DeleteTree("hoctl/", nil)
		for _, n := range []string{"zippy", "c1"} {
			_, _ = c.Catalog().Deregister(&api.CatalogDeregistration{Node: n}, nil)
		}
		nfsConsul.SetNodeDown("zippy", false)
	}
	clean()
	t.Cleanup(clean)
	must(t, c1, "mkdir -p /persist/services-standby")
	must(t, zippy, "btrfs subvolume create /persist/services >/dev/null && cd /persist/services && mkdir -p gitea && echo one > gitea/app.ini && head -c 2000000 /dev/urandom > blob")
	if _, err := (&consul.Cluster{Client: mustClient(t)}).CAS(context.Background(), lab.NFSOwnerKey, "zippy", 0); err != nil {
		t.Fatal(err)
	}
	must(t, zippy, "systemctl start nfs-server")
	if r := hoctlEnv(t, nfsLab.Inventory, env, "--yes", "replicate", "zippy", "c1"); r.code != 0 {
		t.Fatalf("replicate: %d\n%s", r.code, r.stderr)
	}
	for _, c := range []sshexec.Runner{c1, c2} {
		must(t, c, "systemctl restart data-services.mount && cat /data/services/gitea/app.ini")
	}
	return zippy, c1, c2, env
}

// TestFailoverPlannedAndBack: a planned failover to c1 loses nothing (a
// file written just before it is on c1), leaves one server, the owner key
// on c1, zippy fenced and the clients reading c1; failing back is then
// incremental and leaves zippy serving c1's writes.
func TestFailoverPlannedAndBack(t *testing.T) {
	zippy, c1, c2, env := nfsStart(t)
	splitBrainWatch(t)

	plan := hoctlEnv(t, nfsLab.Inventory, env, "--dry-run", "failover", "--to", "c1")
	if plan.code != 0 || !strings.Contains(plan.stdout, "fence zippy") || !strings.Contains(plan.stdout, "systemctl stop nfs-server.service") ||
		!strings.Contains(plan.stdout, "expected data loss: none") {
		t.Fatalf("dry run: exit %d\n%s%s", plan.code, plan.stdout, plan.stderr)
	}
	if owner(t) != "zippy" || strings.Join(serving(t), ",") != "zippy" {
		t.Fatal("the dry run changed something")
	}

	must(t, zippy, "echo 'written just before' > /persist/services/last-write")
	r := hoctlEnv(t, nfsLab.Inventory, env, "--yes", "failover", "--to", "c1")
	if r.code != 0 {
		t.Fatalf("failover: exit %d\n%s", r.code, r.stderr)
	}
	if got := must(t, c1, "cat /persist/services/last-write"); got != "written just before\n" {
		t.Fatalf("the last write is not on c1: %q", got)
	}
	if owner(t) != "c1" || strings.Join(serving(t), ",") != "c1" {
		t.Fatalf("owner %s, serving %v", owner(t), serving(t))
	}
	if out := must(t, zippy, "systemctl is-active nfs-server; exportfs -v; ls /persist/services/last-write"); !strings.HasPrefix(out, "inactive\n") || strings.Contains(out, "/data/services") {
		t.Fatalf("zippy not fenced:\n%s", out)
	}
	// zippy's unit refuses to start again: fenced, and, with the fence
	// lifted by hand, not the owner.
	fence := failover.FenceDropIn("nfs-server.service")
	if res, err := zippy.Run(context.Background(), sshexec.Cmd{Script: "systemctl unmask nfs-server; systemctl start nfs-server"}); err == nil {
		t.Fatalf("zippy's nfs-server started after the failover: %s", res.Stdout)
	} else if !strings.Contains(string(res.Stderr), "Assertion failed") {
		t.Fatalf("zippy refused for the wrong reason (want the fence): %s", res.Stderr)
	}
	must(t, zippy, "cp "+fence+" /root/fence.conf && rm "+fence)
	if res, err := zippy.Run(context.Background(), sshexec.Cmd{Script: "systemctl start nfs-server"}); err == nil {
		t.Fatalf("zippy's nfs-server started after the failover: %s", res.Stdout)
	} else if !strings.Contains(string(res.Stderr), "owner check") {
		t.Fatalf("zippy refused for the wrong reason (want the owner check): %s", res.Stderr)
	}
	must(t, zippy, "mv /root/fence.conf "+fence)
	for _, c := range []sshexec.Runner{c1, c2} {
		if got := must(t, c, "cat /data/services/last-write"); got != "written just before\n" {
			t.Fatalf("%s reads %q through its mount", c.Name(), got)
		}
	}

	// The recorded direction: --name now sends c1 → zippy, incrementally;
	// the old direction is refused.
	if r := hoctlEnv(t, nfsLab.Inventory, env, "--yes", "replicate", "zippy", "c1"); r.code != 3 || !strings.Contains(r.stderr, "runs c1 → zippy since a failover") {
		t.Fatalf("the old direction must be refused: exit %d\n%s", r.code, r.stderr)
	}
	must(t, c1, "echo 'written on c1' > /persist/services/on-c1")
	if r := hoctlEnv(t, nfsLab.Inventory, env, "--yes", "replicate", "--name", "services"); r.code != 0 || !strings.Contains(r.stderr, "c1 → zippy") ||
		!strings.Contains(r.stderr, "incremental from services@") {
		t.Fatalf("replicate --name after the failover: exit %d\n%s", r.code, r.stderr)
	}

	// Fail back: c1's writes travel incrementally to zippy.
	r = hoctlEnv(t, nfsLab.Inventory, env, "--yes", "failover", "--to", "zippy")
	if r.code != 0 {
		t.Fatalf("failback: exit %d\n%s", r.code, r.stderr)
	}
	if !strings.Contains(r.stderr, "incremental from services@") || strings.Contains(r.stderr, "full send") {
		t.Fatalf("the final sync back must be incremental:\n%s", r.stderr)
	}
	if got := must(t, zippy, "cat /persist/services/on-c1"); got != "written on c1\n" {
		t.Fatalf("c1's write is not on zippy: %q", got)
	}
	if owner(t) != "zippy" || strings.Join(serving(t), ",") != "zippy" {
		t.Fatalf("owner %s, serving %v", owner(t), serving(t))
	}
	if got := must(t, c2, "cat /data/services/on-c1"); got != "written on c1\n" {
		t.Fatalf("c2 reads %q", got)
	}
	if ls := must(t, zippy, "ls -d /persist/services.before-failover-*"); ls == "" {
		t.Fatal("zippy's stale data was not kept aside")
	}
}

// A hung primary is never taken as fenced: refused without
// --primary-down; with it, c1 serves, the plan states the data-loss
// window, and when zippy comes back its nfs-server refuses to start. A
// garbage half-received copy on c1 is passed over for the newest good one.
// No split-brain watch here: SIGSTOP freezes zippy's server state as
// "active", which --primary-down declares powered off; the test checks
// who serves once zippy is back instead.
func TestFailoverPrimaryHung(t *testing.T) {
	_, c1, _, env := nfsStart(t)
	good := strings.TrimPrefix(newest(t, c1, "/persist/services-standby"), "/persist/services-standby/")
	must(t, c1, "btrfs subvolume create /persist/services-standby/services@29990101T000000Z >/dev/null")
	if err := nfsLab.Hang("zippy"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = nfsLab.Resume("zippy") })
	nfsConsul.SetNodeDown("zippy", true) // what gossip would notice

	r := hoctlEnv(t, nfsLab.Inventory, env, "--yes", "failover", "--to", "c1")
	if r.code != 3 || !strings.Contains(r.stderr, "unreachable is not fenced") {
		t.Fatalf("a hung primary must be refused: exit %d\n%s", r.code, r.stderr)
	}
	if owner(t) != "zippy" {
		t.Fatal("the refused run moved the owner key")
	}
	r = hoctlEnv(t, nfsLab.Inventory, env, "--yes", "failover", "--to", "c1", "--primary-down")
	if r.code != 0 || !strings.Contains(r.stderr, "will promote "+good) || !strings.Contains(r.stderr, "expected data loss: everything written on zippy after") {
		t.Fatalf("--primary-down: exit %d (want the good copy %s promoted)\n%s", r.code, good, r.stderr)
	}
	if owner(t) != "c1" || !strings.Contains(strings.Join(serving(t), ","), "c1") {
		t.Fatalf("owner %s, serving %v", owner(t), serving(t))
	}

	if err := nfsLab.Resume("zippy"); err != nil {
		t.Fatal(err)
	}
	nfsConsul.SetNodeDown("zippy", false)
	// zippy comes back: its boot starts nfs-server, which refuses. (A new
	// connection: the one from before the hang may have been given up by
	// its keepalive while zippy was frozen.)
	zippy := labRunners(t, nfsLab, "zippy")[0]
	res, err := zippy.Run(context.Background(), sshexec.Cmd{Script: "systemctl restart nfs-server"})
	if err == nil || !strings.Contains(string(res.Stderr), "is 'c1', not zippy") {
		t.Fatalf("zippy's nfs-server must refuse to start when it comes back: %v %s", err, res.Stderr)
	}
	if s := strings.Join(serving(t), ","); s != "c1" {
		t.Fatalf("serving %s after zippy came back", s)
	}
}

// A standby whose newest copy is older than max_lag is refused when no
// final sync can run; nothing changes.
func TestFailoverStaleStandbyRefused(t *testing.T) {
	_, _, _, env := nfsStart(t)
	splitBrainWatch(t)
	if err := nfsLab.Kill("zippy"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := nfsLab.Restart(context.Background(), "zippy"); err != nil {
			t.Error(err)
		}
	})
	nfsConsul.SetNodeDown("zippy", true)
	inv := labInventory(t, nfsLab, "max_lag: 15m", "max_lag: 1s")
	time.Sleep(1500 * time.Millisecond)
	r := hoctlEnv(t, inv, env, "--yes", "failover", "--to", "c1", "--primary-down")
	if r.code != 3 || !strings.Contains(r.stderr, "max_lag 1s") || !strings.Contains(r.stderr, "--accept-lag") {
		t.Fatalf("a stale standby must be refused: exit %d\n%s", r.code, r.stderr)
	}
	if owner(t) != "zippy" {
		t.Fatal("the refused run moved the owner key")
	}
}

// kill -9 of hoctl right after the fencing step, then `hoctl resume`:
// the run finishes where it stopped, and the invariant holds throughout.
func TestFailoverKilledAfterFenceThenResumed(t *testing.T) {
	_, c1, _, env := nfsStart(t)
	splitBrainWatch(t)
	cmd, out := startRun(t, nfsLab.Inventory, env, "--yes", "failover", "--to", "c1")
	state := strings.TrimPrefix(env[0], "XDG_STATE_HOME=")
	var journal string
	deadline := time.Now().Add(60 * time.Second)
	for {
		files, _ := filepath.Glob(filepath.Join(state, "hoctl", "runs", "*.jsonl"))
		done := false
		for _, f := range files { // nfsStart's replication has a journal too
			if b, _ := os.ReadFile(f); strings.Contains(string(b), `"kind":"failover"`) && stepEnded(b, 3) {
				journal, done = f, true
			}
		}
		if done {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("step 3 never ended:\n%s", out)
		}
		time.Sleep(2 * time.Millisecond)
	}
	_ = cmd.Process.Signal(syscall.SIGKILL)
	_ = cmd.Wait()
	if owner(t) != "c1" {
		t.Fatalf("after step 3 the owner key must be c1, is %s", owner(t))
	}
	id := strings.TrimSuffix(filepath.Base(journal), ".jsonl")
	// The dead run's Consul session holds the cluster lock until its TTL
	// runs out: resume is refused (exit 3) until then.
	var r result
	for end := time.Now().Add(90 * time.Second); ; {
		r = hoctlEnv(t, nfsLab.Inventory, env, "--yes", "resume", id)
		if r.code != 3 || time.Now().After(end) {
			break
		}
		time.Sleep(time.Second)
	}
	if r.code != 0 || !strings.Contains(r.stderr, "resuming run "+id+" at step 4") {
		t.Fatalf("resume: exit %d\n%s", r.code, r.stderr)
	}
	if owner(t) != "c1" || strings.Join(serving(t), ",") != "c1" {
		t.Fatalf("owner %s, serving %v", owner(t), serving(t))
	}
	must(t, c1, "cat /data/services/gitea/app.ini")
}

func stepEnded(journal []byte, step int) bool {
	for _, line := range strings.Split(string(journal), "\n") {
		var rec struct {
			Type string `json:"event"`
			Step int    `json:"step"`
		}
		if json.Unmarshal([]byte(line), &rec) == nil && rec.Type == "step_end" && rec.Step == step {
			return true
		}
	}
	return false
}

// A second operator finds the cluster lock held: refused, nothing changed.
func TestFailoverLockedByAnotherOperator(t *testing.T) {
	_, _, _, env := nfsStart(t)
	splitBrainWatch(t)
	l, err := consul.Acquire(context.Background(), mustClient(t), "nfs-data-services", "alice pid 1 run R-alice", consul.LockOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = l.Release() }()
	r := hoctlEnv(t, nfsLab.Inventory, env, "--yes", "failover", "--to", "c1")
	if r.code != 3 || !strings.Contains(r.stderr, "alice") {
		t.Fatalf("exit %d\n%s", r.code, r.stderr)
	}
	if owner(t) != "zippy" || strings.Join(serving(t), ",") != "zippy" {
		t.Fatal("the refused run changed something")
	}
}

// mustClient is an official Consul client for the NFS lab's Consul.
func mustClient(t *testing.T) *api.Client {
	t.Helper()
	c, err := consul.NewClient(&inventory.API{Address: "http://" + nfsConsul.Addr}, nil, os.Getenv, httpapi.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// Bad input: exit 2 with the reason, and nothing asked of the hosts.
func TestFailoverBadInput(t *testing.T) {
	_, _, _, env := nfsStart(t)
	splitBrainWatch(t)
	for args, want := range map[string]string{
		"":                          "--to HOST is required",
		"--to c2":                   "c2 is neither the primary nor a standby",
		"--to zippy":                "zippy already owns data-services",
		"--to c9":                   "did you mean",
		"--to c1 --service nothing": `no nfs service "nothing"`,
	} {
		r := hoctlEnv(t, nfsLab.Inventory, env, append([]string{"--yes", "failover"}, strings.Fields(args)...)...)
		if r.code != 2 || !strings.Contains(r.stderr, want) {
			t.Errorf("failover %s: exit %d\n%s", args, r.code, r.stderr)
		}
	}
	if owner(t) != "zippy" || strings.Join(serving(t), ",") != "zippy" {
		t.Fatal("bad input changed something")
	}
}

// A client that cannot remount does not undo the failover: the run exits
// 5 naming it, the others are remounted, and resume finishes it once the
// client is fixed.
func TestFailoverClientFailureExits5ThenResumes(t *testing.T) {
	_, c1, c2, env := nfsStart(t)
	splitBrainWatch(t)
	must(t, c2, "systemctl mask data-services.mount")
	r := hoctlEnv(t, nfsLab.Inventory, env, "--yes", "failover", "--to", "c1")
	if r.code != 5 || !strings.Contains(r.stderr, "remount failed") || !strings.Contains(r.stderr, "not verified: after check failed on c2") {
		t.Fatalf("exit %d\n%s", r.code, r.stderr)
	}
	if owner(t) != "c1" || strings.Join(serving(t), ",") != "c1" {
		t.Fatalf("the failover must stand: owner %s, serving %v", owner(t), serving(t))
	}
	must(t, c1, "grep -q 'to c1' /data/services/.hoctl-failover")
	must(t, c2, "systemctl unmask data-services.mount")
	hist := hoctlEnv(t, nfsLab.Inventory, env, "history")
	var id string
	for _, l := range strings.Split(hist.stdout, "\n") {
		if strings.Contains(l, "failover") {
			id = strings.Fields(l)[0]
		}
	}
	r = hoctlEnv(t, nfsLab.Inventory, env, "--yes", "resume", id)
	if r.code != 0 {
		t.Fatalf("resume %s: exit %d\n%s\n%s", id, r.code, hist.stdout, r.stderr)
	}
	must(t, c2, "grep -q 'to c1' /data/services/.hoctl-failover")
}

// Failing back at once, with nothing received on zippy yet: the final
// sync back makes the copy, incrementally, and status sees zippy's own
// snapshots as its copy while it is the standby.
func TestFailoverBackRightAway(t *testing.T) {
	zippy, c1, _, env := nfsStart(t)
	splitBrainWatch(t)
	if r := hoctlEnv(t, nfsLab.Inventory, env, "--yes", "failover", "--to", "c1"); r.code != 0 {
		t.Fatalf("failover: exit %d\n%s", r.code, r.stderr)
	}
	if r := hoctlEnv(t, nfsLab.Inventory, env, "status"); !strings.Contains(r.stdout, "✓ nfs data-services standby zippy") {
		t.Fatalf("status after the failover:\n%s", r.stdout)
	}
	must(t, c1, "echo back > /persist/services/back")
	r := hoctlEnv(t, nfsLab.Inventory, env, "--yes", "failover", "--to", "zippy")
	if r.code != 0 || !strings.Contains(r.stderr, "incremental from services@") {
		t.Fatalf("failback: exit %d\n%s", r.code, r.stderr)
	}
	if got := must(t, zippy, "cat /persist/services/back"); got != "back\n" {
		t.Fatalf("zippy has %q", got)
	}
}
