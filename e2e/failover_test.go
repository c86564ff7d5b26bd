package e2e

// The NFS failover end to end on the real cluster (machines_test.go):
// Consul's owner key, sessions and health checks are real Consul's,
// nfs-server.service is nfs-ganesha under real systemd, "down" is a
// machine really frozen (lab.Hang) or killed (lab.Kill), and a second
// operator holds a real Consul lock. The clients' mounts (c1-c3) are the
// lab's one simulated part (internal/lab/nfsclient.go): a real mount unit
// whose data is read over NFSv4 from the server Consul names. Who serves
// is read over NFSv4 (nfsCat) and from systemd on both NFS hosts.

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
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

var (
	nfsServers = []string{"zippy", "c1"}    // nfs-server.service
	nfsClients = []string{"c1", "c2", "c3"} // data-services.mount
	quorum     = []string{"c1", "c2", "c3"} // Consul and Nomad servers
	clusterAll = []string{"zippy", "c1", "c2", "c3"}
)

// consulAt is an official Consul client on host's agent.
func consulAt(l *lab.Lab, host string) *api.Client {
	c, err := consul.NewClient(&inventory.API{Address: fmt.Sprintf("http://%s:%d", l.Host(host).Addr, lab.ConsulPort)}, nil, os.Getenv,
		httpapi.Options{Timeout: 5 * time.Second})
	if err != nil {
		panic(err) // a constant, valid address
	}
	return c
}

// realOwner reads the owner key from the first quorum agent that answers
// (a test may have killed one).
func realOwner(l *lab.Lab) (string, error) {
	var last error
	for _, h := range quorum {
		p, _, err := consulAt(l, h).KV().Get(lab.NFSOwnerKey, nil)
		if err == nil {
			if p == nil {
				return "", nil
			}
			return string(p.Value), nil
		}
		last = err
	}
	return "", last
}

func owner(t *testing.T, l *lab.Lab) string {
	t.Helper()
	o, err := realOwner(l)
	if err != nil {
		t.Fatalf("reading the owner key: %v", err)
	}
	return o
}

// listening lists the NFS hosts whose port 2049 accepts: a stricter
// test than serving (ganesha listens before it serves), cheap enough to
// poll. A frozen host's listening socket still accepts (the kernel
// does), so tests that hang one do not watch this way.
func listening(l *lab.Lab) []string {
	var out []string
	for _, h := range nfsServers {
		c, err := net.DialTimeout("tcp", net.JoinHostPort(l.Host(h).Addr, "2049"), 300*time.Millisecond)
		if err == nil {
			_ = c.Close()
			out = append(out, h)
		}
	}
	return out
}

// serving lists the NFS hosts that serve the export over NFSv4 now, each
// confirmed by systemd (nfs-server active there).
func serving(t *testing.T, l *lab.Lab) []string {
	t.Helper()
	var out []string
	for _, h := range nfsServers {
		_, catErr := nfsCat(l, h, "hello")
		active, _ := inMachine(l, h, "systemctl is-active nfs-server") // "" when the machine is down
		switch {
		case catErr == nil && strings.TrimSpace(active) == "active":
			out = append(out, h)
		case catErr == nil:
			t.Errorf("%s serves over NFSv4 while systemd says nfs-server is %s", h, strings.TrimSpace(active))
			out = append(out, h)
		}
	}
	return out
}

// splitBrainWatch checks the failover's invariant until the test ends:
// at most one host listens on the NFS port, and one that is not the
// owner is only ever the previous owner (the old primary being fenced).
func splitBrainWatch(t *testing.T, l *lab.Lab) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	var mu sync.Mutex
	var violations []string
	checks := 0
	wg.Add(1)
	go func() {
		defer wg.Done()
		last, _ := realOwner(l)
		prev := ""
		for ctx.Err() == nil {
			s := listening(l)
			if o, err := realOwner(l); err == nil && o != last {
				prev, last = last, o
			}
			bad := len(s) > 1 || len(s) == 1 && s[0] != last && s[0] != prev
			mu.Lock()
			checks++
			if bad {
				violations = append(violations, fmt.Sprintf("listening %s with owner %s (before: %s)", strings.Join(s, ","), last, prev))
			}
			mu.Unlock()
			time.Sleep(20 * time.Millisecond)
		}
	}()
	t.Cleanup(func() {
		cancel()
		wg.Wait()
		if len(violations) > 0 {
			t.Errorf("split-brain invariant broken %d times in %d checks, first: %s", len(violations), checks, violations[0])
		}
		t.Logf("split-brain watch: %d checks", checks)
	})
}

// forgetNFSClients empties ganesha's record of the NFSv4 clients of its
// earlier terms on a host (what a failover's start does on the new
// primary): a server with none to wait for ends its grace at once.
const forgetNFSClients = "find /var/lib/nfs/ganesha -mindepth 2 -delete 2>/dev/null || true"

// nfsBaseline puts the NFS service back as the lab started it, whatever
// a test did: zippy owns and serves a fresh /persist/services (with the
// lab's hello file), c1 has an empty standby dir, no fence, no recorded
// direction, every client mounted from zippy. Then it checks the whole
// cluster is as the lab left it (cluster as found, machines_test.go).
func nfsBaseline(t *testing.T, l *lab.Lab) {
	t.Helper()
	fence := failover.FenceDropIn("nfs-server.service")
	wipe := `systemctl stop nfs-server; rm -f ` + fence + `; systemctl daemon-reload; systemctl reset-failed
for s in /persist/services-standby/services@* /persist/services-snapshots/services@* /persist/services@* /persist/services.before-failover-* /persist/services; do
  if [ -e "$s" ]; then btrfs subvolume delete -c "$s" >/dev/null || exit 1; fi
done
rm -f /persist/.hoctl-replicate-* /persist/services-standby/.hoctl-replicate-* /persist/services-snapshots/.hoctl-replicate-*
` + forgetNFSClients + `
mkdir -p /persist/services-snapshots`
	for _, h := range nfsServers {
		script := wipe
		if h == "c1" {
			script += "\nmkdir -p /persist/services-standby"
		}
		if out, err := inMachine(l, h, script); err != nil {
			t.Errorf("%s: resetting the NFS service: %v\n%s", h, err, out)
		}
	}
	waitFor(t, 60*time.Second, "a Consul leader", func() error {
		c := consulAt(l, "c1")
		if _, err := c.KV().DeleteTree("hoctl/replication/", nil); err != nil {
			return err
		}
		_, err := c.KV().Put(&api.KVPair{Key: lab.NFSOwnerKey, Value: []byte("zippy")}, nil)
		return err
	})
	if out, err := inMachine(l, "zippy", "btrfs subvolume create /persist/services >/dev/null && echo hello from zippy > /persist/services/hello"); err != nil {
		t.Errorf("zippy: its subvolume again: %v\n%s", err, out)
	}
	// nfs-server's start checks its guard's lease: after a test that cut
	// zippy off, its Consul agent and guard take a moment to confirm the
	// owner key again, and the start is refused until they have. Seen
	// once after such a test: the start passed, and then no instance
	// passed its check for two minutes. The start now waits for zippy's
	// agent to read the key first (not reproduced alone, so not proven).
	zippyReadsOwner(t, l, "zippy")
	// Serving means the export answers, not only the unit running: seen
	// once after the lease-stop test (a start the guard stopped during
	// its ExecStartPre), ganesha ran without the export (NFS4ERR_NOENT
	// for /data/services). Such a start is stopped, its bind mount
	// undone, said with its mounts, and tried again; any other refusal
	// (the grace period after a start) is waited out.
	waitFor(t, 90*time.Second, "zippy serving again", func() error {
		// A guard that read the moved key before the reset put it back
		// may fence zippy after the wipe removed the fence (its stop
		// first, then the drop-in): lift such a late fence again.
		lift := "if [ -e " + fence + " ]; then rm -f " + fence + " && systemctl daemon-reload; fi; "
		if out, err := inMachine(l, "zippy", lift+"systemctl is-active -q nfs-server || { systemctl reset-failed nfs-server; systemctl start nfs-server; }"); err != nil {
			return fmt.Errorf("%v: %s", err, out)
		}
		out, err := nfsCat(l, "zippy", "hello")
		if err != nil && strings.Contains(out, "NFS4ERR_NOENT") {
			mounts, _ := inMachine(l, "zippy", "findmnt -n -o TARGET,SOURCE /persist/services; true")
			t.Logf("zippy's nfs-server runs without its export (%q; /persist/services mounts: %q): starting it again", out, mounts)
			_, _ = inMachine(l, "zippy", "systemctl stop nfs-server; if mountpoint -q /persist/services; then umount /persist/services; fi")
		}
		if err != nil {
			return fmt.Errorf("%v: %s", err, out)
		}
		return nil
	})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := l.MountNFSClients(ctx); err != nil {
		t.Errorf("remounting the clients: %v", err)
	}
	for _, h := range clusterAll {
		_, _ = inMachine(l, h, "systemctl reset-failed")
	}
	clusterAsFound(t, l)
}

// clusterAsFound checks what every test on the real cluster must leave
// behind: the cluster as the lab started it (clusterHealthy: zippy the
// owner and the one passing instance, every client mounted from it), and
// of what hoctl did, no fence, no cluster lock held; zippy alone serving
// its export over NFSv4, every client reading it.
func clusterAsFound(t *testing.T, l *lab.Lab) {
	t.Helper()
	clusterHealthy(t, l)
	if got, err := nfsCat(l, "zippy", "hello"); err != nil || got != "hello from zippy\n" {
		t.Errorf("zippy does not serve its export: %v %q", err, got)
	}
	if _, err := nfsCat(l, "c1", "hello"); err == nil {
		t.Error("c1 serves the export")
	}
	fence := failover.FenceDropIn("nfs-server.service")
	for _, h := range clusterAll {
		if out, _ := inMachine(l, h, "ls "+fence+" 2>/dev/null; true"); out != "" {
			t.Errorf("%s is still fenced: %s", h, out)
		}
	}
	for _, h := range nfsClients {
		if out, _ := inMachine(l, h, "cat /data/services/hello"); out != "hello from zippy" {
			t.Errorf("%s's mount reads %q", h, out)
		}
	}
	// A run that ended while Consul could not release its lock leaves it
	// to the session's TTL.
	waitFor(t, 90*time.Second, "no cluster lock held", func() error {
		locks, _, err := consulAt(l, "c2").KV().List(consul.LockPrefix, nil)
		if err != nil {
			return err
		}
		for _, p := range locks {
			if p.Session != "" {
				return fmt.Errorf("cluster lock %s still held by %s", p.Key, p.Value)
			}
		}
		return nil
	})
}

// nfsStart is the day-to-day state every failover test starts from:
// zippy owns and serves /persist/services with some data, c1 holds a
// replicated copy, the clients read zippy's export. The test's clean-up
// (registered first, so it runs last) puts the cluster back.
func nfsStart(t *testing.T) (*lab.Lab, []string) {
	t.Helper()
	l := realCluster(t)
	t.Cleanup(func() { nfsBaseline(t, l) })
	nfsBaseline(t, l)
	if t.Failed() {
		t.FailNow()
	}
	env := stateEnv(t)
	mustInMachine(t, l, "zippy", "cd /persist/services && mkdir -p gitea && echo one > gitea/app.ini && head -c 2000000 /dev/urandom > blob")
	if r := hoctlEnv(t, l.Inventory, env, "--yes", "replicate", "zippy", "c1"); r.code != 0 {
		t.Fatalf("replicate: exit %d\n%s", r.code, r.stderr)
	}
	return l, env
}

// consulSeesDown waits until Consul's gossip has noticed that host's
// agent is gone (its serfHealth check critical): what --primary-down
// wants to see before it trusts the operator's word.
func consulSeesDown(t *testing.T, l *lab.Lab, host string) {
	t.Helper()
	waitFor(t, 60*time.Second, "Consul to see "+host+" failed", func() error {
		checks, _, err := consulAt(l, "c2").Health().Node(host, nil)
		if err != nil {
			return err
		}
		for _, c := range checks {
			if c.CheckID == "serfHealth" && c.Status == api.HealthCritical {
				return nil
			}
		}
		return fmt.Errorf("%s's serfHealth still passing", host)
	})
	if t.Failed() {
		t.FailNow()
	}
}

// restartMachine boots a killed (or frozen) host again and waits for it
// to be back in Consul and Nomad, for the clean-up after it.
func restartMachine(t *testing.T, l *lab.Lab, host string) {
	t.Helper()
	_ = l.Resume(host)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := l.Restart(ctx, host); err != nil {
		t.Errorf("restarting %s: %v", host, err)
		return
	}
	waitFor(t, 90*time.Second, host+" back in Consul", func() error {
		checks, _, err := consulAt(l, "c2").Health().Node(host, nil)
		if err != nil {
			return err
		}
		for _, c := range checks {
			if c.CheckID == "serfHealth" && c.Status == api.HealthPassing {
				return nil
			}
		}
		return fmt.Errorf("%s's serfHealth not passing", host)
	})
}

// TestFailoverPlannedAndBack: a planned failover to c1 loses nothing (a
// file written just before it is on c1, read over NFSv4 from c1 and by
// every client through its remounted share), leaves one server, the
// owner key on c1, and zippy's nfs-server refused by real systemd: by
// the fence, and with the fence lifted by hand, by its own owner check.
// The recorded direction then refuses zippy → c1; failing back is
// incremental, keeps zippy's stale data aside and fences c1.
func TestFailoverPlannedAndBack(t *testing.T) {
	l, env := nfsStart(t)
	splitBrainWatch(t, l)

	plan := hoctlEnv(t, l.Inventory, env, "--dry-run", "failover", "--to", "c1")
	if plan.code != 0 || !strings.Contains(plan.stdout, "fence zippy") || !strings.Contains(plan.stdout, "systemctl stop nfs-server.service") ||
		!strings.Contains(plan.stdout, "expected data loss: none") {
		t.Fatalf("dry run: exit %d\n%s%s", plan.code, plan.stdout, plan.stderr)
	}
	if owner(t, l) != "zippy" || strings.Join(serving(t, l), ",") != "zippy" {
		t.Fatal("the dry run changed something")
	}

	mustInMachine(t, l, "zippy", "echo 'written just before' > /persist/services/last-write")
	r := hoctlEnv(t, l.Inventory, env, "--yes", "failover", "--to", "c1")
	if r.code != 0 {
		t.Fatalf("failover --to c1: exit %d\n%s\n%s", r.code, r.stderr, clientsState(l))
	}
	if got, err := nfsCat(l, "c1", "last-write"); err != nil || got != "written just before\n" {
		t.Fatalf("over NFSv4 from c1: %v %q", err, got)
	}
	if o, s := owner(t, l), strings.Join(serving(t, l), ","); o != "c1" || s != "c1" {
		t.Fatalf("owner %s, serving %s", o, s)
	}
	if out := mustInMachine(t, l, "zippy", "systemctl is-active nfs-server || true"); strings.TrimSpace(out) != "inactive" {
		t.Fatalf("zippy's nfs-server is %s", out)
	}
	if n := reloadsWhileNothingServed(t, l, "zippy", "c1"); n != 0 {
		t.Errorf("c1's systemd reloaded %d times between zippy's nfs-server stopping and c1's starting", n)
	}
	for _, c := range nfsClients {
		if got := mustInMachine(t, l, c, "cat /data/services/last-write; cat /run/hoctl-lab/nfs-client/server"); got != "written just before\n"+l.Host("c1").Addr {
			t.Fatalf("%s reads %q through its remounted share", c, got)
		}
	}
	// Real systemd refuses to start zippy's: hoctl's fence first; with the
	// fence lifted by hand, the unit's own owner-key check.
	fence := failover.FenceDropIn("nfs-server.service")
	if out, err := inMachine(l, "zippy", "systemctl unmask nfs-server; systemctl start nfs-server"); err == nil || !strings.Contains(out, "Assertion failed") {
		t.Fatalf("zippy's nfs-server must be refused by the fence: %v %s", err, out)
	}
	mustInMachine(t, l, "zippy", "mv "+fence+" /root/fence.conf")
	if out, err := inMachine(l, "zippy", "systemctl start nfs-server; rc=$?; journalctl -u nfs-server -n 5 --no-pager; exit $rc"); err == nil || !strings.Contains(out, "is 'c1', not zippy") {
		t.Fatalf("zippy's nfs-server must be refused by its owner check: %v %s", err, out)
	}
	mustInMachine(t, l, "zippy", "mv /root/fence.conf "+fence+" && systemctl daemon-reload && systemctl reset-failed")

	// The recorded direction: --name now sends c1 → zippy, incrementally;
	// the old direction is refused.
	if r := hoctlEnv(t, l.Inventory, env, "--yes", "replicate", "zippy", "c1"); r.code != 3 || !strings.Contains(r.stderr, "runs c1 → zippy since a failover") {
		t.Fatalf("the old direction must be refused: exit %d\n%s", r.code, r.stderr)
	}
	mustInMachine(t, l, "c1", "echo 'written on c1' > /persist/services/on-c1")
	if r := hoctlEnv(t, l.Inventory, env, "--yes", "replicate", "--name", "services"); r.code != 0 || !strings.Contains(r.stderr, "c1 → zippy") ||
		!strings.Contains(r.stderr, "incremental from services@") {
		t.Fatalf("replicate --name after the failover: exit %d\n%s", r.code, r.stderr)
	}

	// Fail back: c1's writes travel incrementally to zippy.
	r = hoctlEnv(t, l.Inventory, env, "--yes", "failover", "--to", "zippy")
	if r.code != 0 {
		t.Fatalf("failover --to zippy: exit %d\n%s", r.code, r.stderr)
	}
	if !strings.Contains(r.stderr, "incremental from services@") || strings.Contains(r.stderr, "full send") {
		t.Fatalf("the final sync back must be incremental:\n%s", r.stderr)
	}
	if n := reloadsWhileNothingServed(t, l, "c1", "zippy"); n != 0 {
		t.Errorf("zippy's systemd reloaded %d times between c1's nfs-server stopping and zippy's starting", n)
	}
	if got, err := nfsCat(l, "zippy", "on-c1"); err != nil || got != "written on c1\n" {
		t.Fatalf("over NFSv4 from zippy after failing back: %v %q", err, got)
	}
	if o, s := owner(t, l), strings.Join(serving(t, l), ","); o != "zippy" || s != "zippy" {
		t.Fatalf("owner %s, serving %s", o, s)
	}
	if got := mustInMachine(t, l, "c2", "cat /data/services/on-c1"); got != "written on c1" {
		t.Fatalf("c2 reads %q", got)
	}
	if ls := mustInMachine(t, l, "zippy", "ls -d /persist/services.before-failover-*"); ls == "" {
		t.Fatal("zippy's stale data was not kept aside")
	}
	if out, err := inMachine(l, "c1", "systemctl start nfs-server"); err == nil || !strings.Contains(out, "Assertion failed") {
		t.Fatalf("c1's nfs-server must be fenced after failing back: %v %s", err, out)
	}
}

// clientsState is what each client's mount shows, for a failure message.
func clientsState(l *lab.Lab) string {
	var b strings.Builder
	for _, c := range nfsClients {
		out, _ := inMachine(l, c, "findmnt -R /data; ls -la /data/services; cd /run/hoctl-lab/nfs-client && ls -la && cat server ls; journalctl -o short-precise -n 12 --no-pager -u data-services.mount")
		fmt.Fprintf(&b, "--- %s:\n%s", c, out)
	}
	return b.String()
}

// reloadsWhileNothingServed counts the daemon-reloads of to's systemd
// logged between from's nfs-server stopping and to's starting: work
// done while nobody serves the share (each took 2-4 s on a loaded host).
func reloadsWhileNothingServed(t *testing.T, l *lab.Lab, from, to string) int {
	t.Helper()
	times := func(host, pattern string) []float64 {
		var out []float64
		for _, line := range strings.Split(mustInMachine(t, l, host, "journalctl -o short-unix --no-pager _PID=1 | grep -F "+sshexec.Quote(pattern)+" || true"), "\n") {
			var ts float64
			if f := strings.Fields(line); len(f) > 0 {
				if _, err := fmt.Sscan(f[0], &ts); err == nil {
					out = append(out, ts)
				}
			}
		}
		return out
	}
	stops, starts := times(from, "Stopped nfs-server"), times(to, "Starting nfs-server")
	if len(stops) == 0 || len(starts) == 0 {
		t.Fatalf("journals: %s's nfs-server stops %v, %s's starts %v", from, stops, to, starts)
	}
	stopped, started := stops[len(stops)-1], starts[len(starts)-1]
	n := 0
	for _, ts := range times(to, "Reloading.") {
		if ts > stopped && ts < started {
			n++
		}
	}
	return n
}

// A hung primary (its machine frozen: TCP accepted, nothing answers) is
// never taken as fenced: refused without --primary-down; with it, once
// Consul's gossip has seen zippy fail, c1 serves, the plan states the
// data-loss window, and a garbage half-received copy on c1 is passed over
// for the newest good one. The operator then power-cycles zippy: after
// the reboot its nfs-server is refused by its owner check (the fence was
// in /run). (zippy thawed instead, with ganesha still running, is the
// self-fencing guard's test.) No split-brain watch while zippy is
// frozen: its frozen ganesha's socket still accepts.
func TestFailoverPrimaryHung(t *testing.T) {
	l, env := nfsStart(t)
	good := strings.TrimSpace(mustInMachine(t, l, "c1", "cd /persist/services-standby && ls -d services@* | tail -1"))
	mustInMachine(t, l, "c1", "btrfs subvolume create /persist/services-standby/services@29990101T000000Z >/dev/null")
	if err := l.Hang("zippy"); err != nil {
		t.Fatal(err)
	}
	hung := true
	t.Cleanup(func() {
		if hung {
			restartMachine(t, l, "zippy")
		}
	})

	r := hoctlEnv(t, l.Inventory, env, "--yes", "failover", "--to", "c1")
	if r.code != 3 || !strings.Contains(r.stderr, "unreachable is not fenced") {
		t.Fatalf("a hung primary must be refused: exit %d\n%s", r.code, r.stderr)
	}
	if owner(t, l) != "zippy" {
		t.Fatal("the refused run moved the owner key")
	}
	consulSeesDown(t, l, "zippy")
	r = hoctlEnv(t, l.Inventory, env, "--yes", "failover", "--to", "c1", "--primary-down")
	if r.code != 0 || !strings.Contains(r.stderr, "will promote "+good) || !strings.Contains(r.stderr, "expected data loss: everything written on zippy after") {
		t.Fatalf("--primary-down: exit %d (want the good copy %s promoted)\n%s", r.code, good, r.stderr)
	}
	if got, err := nfsCat(l, "c1", "gitea/app.ini"); err != nil || got != "one\n" {
		t.Fatalf("c1 does not serve the promoted copy: %v %q", err, got)
	}
	if owner(t, l) != "c1" {
		t.Fatalf("owner %s", owner(t, l))
	}

	// The operator power-cycles the hung zippy.
	hung = false
	restartMachine(t, l, "zippy")
	// Its Consul agent answers reads once it has found the servers: until
	// then the owner check refuses for want of an answer, not for c1.
	zippyReadsOwner(t, l, "c1")
	out, err := inMachine(l, "zippy", "systemctl start nfs-server; rc=$?; journalctl -u nfs-server -n 5 --no-pager; exit $rc")
	if err == nil || !strings.Contains(out, "is 'c1', not zippy") {
		t.Fatalf("zippy's nfs-server must refuse to start when it comes back: %v %s", err, out)
	}
	if s := strings.Join(serving(t, l), ","); s != "c1" {
		t.Fatalf("serving %s after zippy came back", s)
	}
}

// A standby whose newest copy is older than max_lag is refused when no
// final sync can run (zippy powered off); nothing changes.
func TestFailoverStaleStandbyRefused(t *testing.T) {
	l, env := nfsStart(t)
	splitBrainWatch(t, l)
	if err := l.Kill("zippy"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { restartMachine(t, l, "zippy") })
	consulSeesDown(t, l, "zippy")
	inv := labInventory(t, l, "max_lag: 15m", "max_lag: 1s")
	r := hoctlEnv(t, inv, env, "--yes", "failover", "--to", "c1", "--primary-down")
	if r.code != 3 || !strings.Contains(r.stderr, "max_lag 1s") || !strings.Contains(r.stderr, "--accept-lag") {
		t.Fatalf("a stale standby must be refused: exit %d\n%s", r.code, r.stderr)
	}
	if owner(t, l) != "zippy" {
		t.Fatal("the refused run moved the owner key")
	}
	if s := serving(t, l); len(s) != 0 {
		t.Fatalf("serving %v", s)
	}
}

// kill -9 of hoctl right after the fencing step, then `hoctl resume`:
// the dead run's real Consul session keeps the cluster lock until its TTL
// runs out (resume refused, exit 3, meanwhile); then the run finishes
// where it stopped, and the invariant holds throughout.
func TestFailoverKilledAfterFenceThenResumed(t *testing.T) {
	l, env := nfsStart(t)
	splitBrainWatch(t, l)
	cmd, out := startRun(t, l.Inventory, env, "--yes", "failover", "--to", "c1")
	// The fence is step 6: the final sync's inspection and garbage
	// removal (steps 3 and 4) and the fence's arming (5) come before it.
	journal := waitStepEnded(t, env, 6, out)
	_ = cmd.Process.Signal(syscall.SIGKILL)
	_ = cmd.Wait()
	if o := owner(t, l); o != "c1" {
		t.Fatalf("after step 6 the owner key must be c1, is %s", o)
	}
	if s := serving(t, l); len(s) != 0 {
		t.Fatalf("killed after the fence, serving %v", s)
	}
	id := strings.TrimSuffix(filepath.Base(journal), ".jsonl")
	var r result
	refused := 0
	_ = poll(time.Second, 90*time.Second, func() error { // its exit is checked below
		r = hoctlEnv(t, l.Inventory, env, "--yes", "resume", id)
		if r.code != 3 {
			return nil
		}
		if !strings.Contains(r.stderr, "cluster lock") {
			t.Fatalf("resume refused for another reason than the dead run's lock:\n%s", r.stderr)
		}
		refused++
		return errNotYet
	})
	if r.code != 0 || !strings.Contains(r.stderr, "resuming run "+id+" at step 7") {
		t.Fatalf("resume: exit %d\n%s", r.code, r.stderr)
	}
	t.Logf("resume refused %d times while the dead run's session held the lock", refused)
	if o, s := owner(t, l), strings.Join(serving(t, l), ","); o != "c1" || s != "c1" {
		t.Fatalf("owner %s, serving %s", o, s)
	}
	if got := mustInMachine(t, l, "c2", "cat /data/services/gitea/app.ini"); got != "one" {
		t.Fatalf("c2 reads %q", got)
	}
}

// waitStepEnded waits for a failover journal (in env's state dir) to
// record the end of step n, and returns its path.
func waitStepEnded(t *testing.T, env []string, n int, out fmt.Stringer) string {
	t.Helper()
	state := strings.TrimPrefix(env[0], "XDG_STATE_HOME=")
	var journal string
	if !waitEvery(t, 2*time.Millisecond, 60*time.Second, fmt.Sprintf("the failover's step %d to end", n), func() error {
		files, _ := filepath.Glob(filepath.Join(state, "hoctl", "runs", "*.jsonl"))
		for _, f := range files { // nfsStart's replication has a journal too
			if b, _ := os.ReadFile(f); strings.Contains(string(b), `"kind":"failover"`) && stepEnded(b, n) {
				journal = f
				return nil
			}
		}
		return errNotYet
	}) {
		t.Fatalf("step %d never ended:\n%s", n, out)
	}
	return journal
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

// A second operator (a real Consul session holding the failover's
// cluster lock) makes the run refuse, naming them; nothing changes.
func TestFailoverLockedByAnotherOperator(t *testing.T) {
	l, env := nfsStart(t)
	splitBrainWatch(t, l)
	lk, err := consul.Acquire(context.Background(), consulAt(l, "c3"), "nfs-data-services", "alice pid 1 run R-alice", consul.LockOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = lk.Release() })
	r := hoctlEnv(t, l.Inventory, env, "--yes", "failover", "--to", "c1")
	if r.code != 3 || !strings.Contains(r.stderr, "alice") {
		t.Fatalf("exit %d\n%s", r.code, r.stderr)
	}
	if o, s := owner(t, l), strings.Join(serving(t, l), ","); o != "zippy" || s != "zippy" {
		t.Fatalf("the refused run changed something: owner %s, serving %s", o, s)
	}
}

// Bad input: exit 2 with the reason, and nothing changed.
func TestFailoverBadInput(t *testing.T) {
	l, env := nfsStart(t)
	splitBrainWatch(t, l)
	for args, want := range map[string]string{
		"":                          "--to HOST is required",
		"--to c2":                   "c2 is neither the primary nor a standby",
		"--to zippy":                "zippy already owns data-services",
		"--to c9":                   "did you mean",
		"--to c1 --service nothing": `no nfs service "nothing"`,
	} {
		r := hoctlEnv(t, l.Inventory, env, append([]string{"--yes", "failover"}, strings.Fields(args)...)...)
		if r.code != 2 || !strings.Contains(r.stderr, want) {
			t.Errorf("failover %s: exit %d\n%s", args, r.code, r.stderr)
		}
	}
	if o, s := owner(t, l), strings.Join(serving(t, l), ","); o != "zippy" || s != "zippy" {
		t.Fatalf("bad input changed something: owner %s, serving %s", o, s)
	}
}

// A client that cannot remount (c2's mount refused by real systemd: an
// assertion drop-in, as a broken client would fail) does not undo the
// failover: the run exits 5 naming it, the others read c1, and resume
// finishes it once the client is fixed.
func TestFailoverClientFailureExits5ThenResumes(t *testing.T) {
	l, env := nfsStart(t)
	splitBrainWatch(t, l)
	broken := "/run/systemd/system/" + lab.NFSMount + ".d/50-test-broken.conf"
	mustInMachine(t, l, "c2", "mkdir -p $(dirname "+broken+") && printf '[Unit]\\nAssertPathExists=/nonexistent/test-broken-client\\n' > "+broken+" && systemctl daemon-reload")
	t.Cleanup(func() { _, _ = inMachine(l, "c2", "rm -f "+broken+"; systemctl daemon-reload") })
	r := hoctlEnv(t, l.Inventory, env, "--yes", "failover", "--to", "c1")
	if r.code != 5 || !strings.Contains(r.stderr, "remount failed") || !strings.Contains(r.stderr, "not verified: after check failed on c2") {
		t.Fatalf("exit %d\n%s", r.code, r.stderr)
	}
	if o, s := owner(t, l), strings.Join(serving(t, l), ","); o != "c1" || s != "c1" {
		t.Fatalf("the failover must stand: owner %s, serving %s", o, s)
	}
	for _, c := range []string{"c1", "c3"} {
		mustInMachine(t, l, c, "grep -q 'to c1' /data/services/.hoctl-failover")
	}
	mustInMachine(t, l, "c2", "rm "+broken+" && systemctl daemon-reload")
	hist := hoctlEnv(t, l.Inventory, env, "history")
	var id string
	for _, line := range strings.Split(hist.stdout, "\n") {
		if strings.Contains(line, "failover") {
			id = strings.Fields(line)[0]
		}
	}
	r = hoctlEnv(t, l.Inventory, env, "--yes", "resume", id)
	if r.code != 0 {
		t.Fatalf("resume %s: exit %d\n%s\n%s", id, r.code, hist.stdout, r.stderr)
	}
	mustInMachine(t, l, "c2", "grep -q 'to c1' /data/services/.hoctl-failover")
}

// Failing back at once, with nothing received on zippy yet: the final
// sync back makes the copy, incrementally, and status sees zippy's own
// snapshots as its copy while it is the standby.
func TestFailoverBackRightAway(t *testing.T) {
	l, env := nfsStart(t)
	splitBrainWatch(t, l)
	if r := hoctlEnv(t, l.Inventory, env, "--yes", "failover", "--to", "c1"); r.code != 0 {
		t.Fatalf("failover: exit %d\n%s", r.code, r.stderr)
	}
	if r := hoctlEnv(t, l.Inventory, env, "status"); !strings.Contains(r.stdout, "✓ nfs data-services standby zippy") {
		t.Fatalf("status after the failover:\n%s", r.stdout)
	}
	mustInMachine(t, l, "c1", "echo back > /persist/services/back")
	r := hoctlEnv(t, l.Inventory, env, "--yes", "failover", "--to", "zippy")
	if r.code != 0 || !strings.Contains(r.stderr, "incremental from services@") {
		t.Fatalf("failback: exit %d\n%s", r.code, r.stderr)
	}
	if got, err := nfsCat(l, "zippy", "back"); err != nil || got != "back\n" {
		t.Fatalf("zippy serves %q (%v)", got, err)
	}
}

// consulLeader is the quorum host whose Consul server leads now.
func consulLeader(l *lab.Lab) (string, error) {
	var last error
	for _, h := range quorum {
		addr, err := consulAt(l, h).Status().Leader()
		if err != nil || addr == "" {
			last = fmt.Errorf("%s: no leader (%v)", h, err)
			continue
		}
		for _, q := range quorum {
			if strings.HasPrefix(addr, l.Host(q).Addr+":") {
				return q, nil
			}
		}
		return "", fmt.Errorf("leader %s is none of %v", addr, quorum)
	}
	return "", last
}

// leaderNot makes sure the Consul leader is not host (Consul 1.14 has no
// leadership transfer): while host leads, its agent is restarted and the
// two others elect one of themselves. It returns the leader.
func leaderNot(t *testing.T, l *lab.Lab, host string) string {
	t.Helper()
	for i := 0; ; i++ {
		var leader string
		waitFor(t, 60*time.Second, "a Consul leader", func() (err error) { leader, err = consulLeader(l); return err })
		if t.Failed() {
			t.FailNow()
		}
		if leader != host {
			return leader
		}
		if i == 3 {
			t.Fatalf("%s still leads after %d restarts of its Consul", host, i)
		}
		if out, err := inMachine(l, host, "systemctl restart consul"); err != nil {
			t.Fatalf("%s: restarting consul: %v\n%s", host, err, out)
		}
		waitFor(t, 60*time.Second, "3 healthy Consul servers", func() error {
			h, err := consulAt(l, "c2").Operator().AutopilotServerHealth(nil)
			if err != nil {
				return err
			}
			if !h.Healthy || len(h.Servers) != 3 {
				return fmt.Errorf("healthy %v, %d servers", h.Healthy, len(h.Servers))
			}
			return nil
		})
	}
}

// The Consul leader killed in the middle of a failover: kill -9 of the
// leading server's consul right after the fence (owner key moved, zippy
// stopped: nothing serves, and every remaining step needs Consul). It is
// kept down (a stop cancels its unit's Restart=on-failure), so the run
// cannot lean on it coming back. The two other servers elect a new leader
// and Consul holds the requests made meanwhile (rpc_hold_timeout), so the
// failover itself finishes: c1 serves, alone. But the killed server's
// host is also an NFS client, and its mount resolves the share through
// its own agent, now dead: that client cannot remount. hoctl says so and
// exits 5 (the failover stands, not verified on that client), the
// journal records exactly that, and once the agent is back `hoctl
// resume` completes the run. The clean-up then checks the cluster healed
// (3 servers, failure tolerance 1).
//
// The inventory's Consul agent is c1's, and c1's nfs-server asks its own
// agent too: the leader is made another server first (leaderNot).
func TestFailoverConsulLeaderKilled(t *testing.T) {
	l, env := nfsStart(t)
	splitBrainWatch(t, l)
	leader := leaderNot(t, l, "c1")
	t.Cleanup(func() {
		if out, err := inMachine(l, leader, "systemctl start consul"); err != nil {
			t.Errorf("%s: starting consul again: %v\n%s", leader, err, out)
		}
	})
	cmd, out := startRun(t, l.Inventory, env, "--yes", "failover", "--to", "c1")
	// Step 6 is the fence: the final sync's inspection (3), garbage
	// removal (4) and the fence's arming (5) come before it.
	journal := waitStepEnded(t, env, 6, out)
	if o, err := inMachine(l, leader, "kill -9 $(systemctl show -p MainPID --value consul) && systemctl stop consul; systemctl is-active consul"); strings.TrimSpace(o) == "active" {
		t.Fatalf("%s: killing consul: %v\n%s", leader, err, o)
	}
	killed := time.Now()
	_ = cmd.Wait()
	t.Logf("the run ended %s after the leader (%s) was killed:\n%s", time.Since(killed).Round(time.Millisecond), leader, out)
	if code := cmd.ProcessState.ExitCode(); code != 5 || !strings.Contains(out.String(), "not verified: after check failed on "+leader) {
		t.Fatalf("want exit 5, the failover standing but %s's remount not verified; got exit %d", leader, code)
	}
	newLeader, lerr := consulLeader(l)
	if lerr != nil || newLeader == leader {
		t.Fatalf("new leader %q (%v), the killed one was %s", newLeader, lerr, leader)
	}
	if o, s := owner(t, l), strings.Join(serving(t, l), ","); o != "c1" || s != "c1" {
		t.Fatalf("owner %s, serving %s", o, s)
	}
	for _, c := range nfsClients {
		if c != leader {
			mustInMachine(t, l, c, "grep -q 'to c1' /data/services/.hoctl-failover")
		}
	}
	// The journal: every step up to the remount done, the remount
	// unverified on the leader's host alone, the run unverified.
	b, _ := os.ReadFile(journal)
	var end struct {
		Status string `json:"status"`
		Step   int    `json:"step"`
	}
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		if strings.Contains(line, `"event":"run_end"`) {
			_ = json.Unmarshal([]byte(line), &end)
		}
	}
	if end.Status != "unverified" || !stepEnded(b, end.Step) || end.Step != strings.Count(string(b), `"event":"step_start"`) {
		t.Fatalf("journal: run_end %+v\n%s", end, b)
	}

	// The agent back, resume remounts the client that could not.
	if o, err := inMachine(l, leader, "systemctl start consul"); err != nil {
		t.Fatalf("%s: starting consul: %v\n%s", leader, err, o)
	}
	waitFor(t, 60*time.Second, leader+"'s agent back in Consul", func() error {
		checks, _, err := consulAt(l, leader).Health().Node(leader, nil)
		if err != nil {
			return err
		}
		for _, c := range checks {
			if c.CheckID == "serfHealth" && c.Status == api.HealthPassing {
				return nil
			}
		}
		return fmt.Errorf("%s's serfHealth not passing", leader)
	})
	id := strings.TrimSuffix(filepath.Base(journal), ".jsonl")
	if r := hoctlEnv(t, l.Inventory, env, "--yes", "resume", id); r.code != 0 {
		t.Fatalf("resume %s: exit %d\n%s", id, r.code, r.stderr)
	}
	mustInMachine(t, l, leader, "grep -q 'to c1' /data/services/.hoctl-failover")
	if o, s := owner(t, l), strings.Join(serving(t, l), ","); o != "c1" || s != "c1" {
		t.Fatalf("after resume: owner %s, serving %s", o, s)
	}
}
