package e2e

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hoctl/hoctl/internal/lab"
)

// nfsSample is one look at who serves: both NFS hosts read over NFSv4
// at the same moment (in parallel).
type nfsSample struct {
	at          time.Time
	zippy, c1ok bool
}

// nfsWatch reads file from zippy's and c1's exports over NFSv4, both at
// once, every 20 ms, until stop: what a client that did not remount (or
// one that did) would get from each.
type nfsWatch struct {
	mu      sync.Mutex
	samples []nfsSample
	stop    func()
}

func watchNFS(l *lab.Lab, file string) *nfsWatch {
	w := &nfsWatch{}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for ctx.Err() == nil {
			s := nfsSample{at: time.Now()}
			var rw sync.WaitGroup
			rw.Add(2)
			go func() { defer rw.Done(); _, err := nfsCat(l, "zippy", file); s.zippy = err == nil }()
			go func() { defer rw.Done(); _, err := nfsCat(l, "c1", file); s.c1ok = err == nil }()
			rw.Wait()
			w.mu.Lock()
			w.samples = append(w.samples, s)
			w.mu.Unlock()
			time.Sleep(20 * time.Millisecond)
		}
	}()
	w.stop = func() { cancel(); wg.Wait() }
	return w
}

// both is the samples where zippy and c1 served at once.
func (w *nfsWatch) both() (n, total int, first time.Time) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, s := range w.samples {
		if s.zippy && s.c1ok {
			if n == 0 {
				first = s.at
			}
			n++
		}
	}
	return n, len(w.samples), first
}

// zippyGone is when zippy last served (the first sample after which
// it never served again), zero if it never stopped.
func (w *nfsWatch) zippyGone() time.Time {
	w.mu.Lock()
	defer w.mu.Unlock()
	var gone time.Time
	for _, s := range w.samples {
		switch {
		case s.zippy:
			gone = time.Time{}
		case gone.IsZero():
			gone = s.at
		}
	}
	return gone
}

func (w *nfsWatch) last() nfsSample {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.samples) == 0 {
		return nfsSample{}
	}
	return w.samples[len(w.samples)-1]
}

// The guard tests' shared steps.

// guardSince is a journalctl --since for now (a second early).
func guardSince() string { return fmt.Sprintf("@%d", time.Now().Unix()-1) }

// guardJournal is zippy's journal of its guard and nfs-server since
// (guardSince), without ganesha's own lines (a warning per client
// connection a watcher closed).
func guardJournal(l *lab.Lab, since string) (string, error) {
	return inMachine(l, "zippy", "journalctl -u "+lab.NFSGuardUnit+" -u nfs-server --no-pager -o short-iso-precise --since "+since+" | grep -v ' ganesha.nfsd'")
}

// probeServed writes probe on zippy, replicates it to c1 (so that c1 can
// take over with it) and checks that zippy serves it over NFSv4.
func probeServed(t *testing.T, l *lab.Lab, env []string, probe string) {
	t.Helper()
	mustInMachine(t, l, "zippy", "echo 'before the partition' > /persist/services/"+probe)
	if r := hoctlEnv(t, l.Inventory, env, "--yes", "replicate", "zippy", "c1"); r.code != 0 {
		t.Fatalf("replicate: exit %d\n%s", r.code, r.stderr)
	}
	if got, err := nfsCat(l, "zippy", probe); err != nil || got != "before the partition\n" {
		t.Fatalf("zippy does not serve before the partition: %v %q", err, got)
	}
}

// cutZippy partitions zippy from the Consul servers c1-c3 (and from
// what else is named, such as lab.OperatorSSH) until the test ends; it
// returns the heal, for the test to heal earlier, and when the cut began.
func cutZippy(t *testing.T, l *lab.Lab, also ...string) (heal func() error, at time.Time) {
	t.Helper()
	heal, err := l.Partition("zippy", append([]string{"c1", "c2", "c3"}, also...)...)
	if err != nil {
		t.Fatal(err)
	}
	at = time.Now()
	t.Cleanup(func() {
		if err := heal(); err != nil {
			t.Error(err)
		}
	})
	return heal, at
}

// zippyReadsOwner waits, after a heal, for zippy's Consul agent to read
// the owner key naming owner three times in a row: it finds the servers
// again when serf retries its failed members (every 30 s), and until then
// a start on zippy, even a clean-up's failover back, fails its owner
// check.
func zippyReadsOwner(t *testing.T, l *lab.Lab, owner string) {
	t.Helper()
	inARow := 0
	waitFor(t, 2*time.Minute, "zippy's Consul agent to read the owner key again, three times in a row", func() error {
		out, err := inMachine(l, "zippy", fmt.Sprintf("curl -sf --max-time 5 'http://%s:%d/v1/kv/%s?raw'", l.Host("zippy").Addr, lab.ConsulPort, lab.NFSOwnerKey))
		if err != nil || out != owner {
			inARow = 0
			return fmt.Errorf("%v %q", err, out)
		}
		if inARow++; inARow < 3 {
			return fmt.Errorf("%d in a row", inARow)
		}
		return nil
	})
}

// A real partition: zippy, serving, is cut off from the Consul servers
// (c1-c3) and from the operator's SSH, while it keeps running and the
// clients (this machine's NFSv4 reads) still reach it. Its guard stops
// its nfs-server within the lease; `hoctl failover --primary-down --to
// c1` during the partition ends with c1 alone serving, checked every
// 20 ms over NFSv4 on both hosts; after the heal, zippy's guard sees the
// key name c1 and fences its unit, and zippy stays stopped.
func TestRealGuardStopsAPartitionedPrimary(t *testing.T) {
	l, env := nfsStart(t)
	t.Cleanup(func() { restoreGuards(t, l) })

	const probe = "partition-probe"
	probeServed(t, l, env, probe)
	if out := mustInMachine(t, l, "zippy", "systemctl is-active "+lab.NFSGuardUnit+" || true"); strings.TrimSpace(out) != "active" {
		t.Fatalf("zippy's guard is %q", out)
	}

	watch := watchNFS(l, probe)
	t.Cleanup(watch.stop)
	since := guardSince()
	heal, parted := cutZippy(t, l, lab.OperatorSSH)

	// The guard's stop, polled through the machine itself (nsenter:
	// the operator's SSH is cut).
	stopped := make(chan time.Duration, 1)
	go func() {
		var d time.Duration
		_ = poll(50*time.Millisecond, 3*guardBound-time.Since(parted), func() error {
			if out, err := inMachine(l, "zippy", "systemctl is-active nfs-server || true"); err == nil && strings.TrimSpace(out) != "active" {
				d = time.Since(parted)
				return nil
			}
			return errNotYet
		})
		stopped <- d
	}()

	// The operator, who cannot reach zippy, fails over once Consul's
	// gossip has seen zippy go (what --primary-down wants to see).
	consulSeesDown(t, l, "zippy")
	t.Logf("Consul saw zippy fail %s into the partition", time.Since(parted).Round(100*time.Millisecond))
	r := hoctlEnv(t, l.Inventory, env, "--yes", "failover", "--to", "c1", "--primary-down")
	if r.code != 0 {
		t.Fatalf("failover --primary-down during the partition: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	failedOver := time.Since(parted)

	stopAfter := <-stopped
	if stopAfter == 0 {
		t.Fatalf("zippy's nfs-server still active %s into the partition (bound: the lease %s from the last confirmation, plus the stop)", 3*guardBound, guardBound)
	}
	if out, err := inMachine(l, "zippy", "systemctl is-system-running || true; systemctl is-active "+lab.NFSGuardUnit+" || true"); err != nil || !strings.Contains(out, "active") {
		t.Errorf("zippy does not run on behind the partition: %v %q", err, out)
	}
	if s := watch.last(); s.zippy || !s.c1ok {
		t.Errorf("after the failover: zippy serves %v, c1 serves %v; want c1 alone", s.zippy, s.c1ok)
	}

	// Heal: zippy's agent is back, its guard reads that the key names c1
	// and fences the unit; zippy stays stopped.
	if err := heal(); err != nil {
		t.Fatal(err)
	}
	healed := time.Now()
	const fenced = `names "c1": fencing and stopping nfs-server.service`
	var journal string
	waitFor(t, 3*guardBound, "zippy's guard to fence nfs-server after the heal", func() error {
		var err error
		journal, err = guardJournal(l, since)
		if err != nil {
			return err
		}
		if !strings.Contains(journal, "done: owner key "+lab.NFSOwnerKey+" "+fenced) {
			return fmt.Errorf("no fence yet")
		}
		return nil
	})
	if t.Failed() {
		t.FailNow()
	}
	// The watcher looks on meanwhile.
	zippyReadsOwner(t, l, "c1")
	watch.stop()
	t.Logf("zippy's journal (guard, nfs-server):\n%s", journal)

	if out, err := inMachine(l, "zippy", "systemctl start nfs-server 2>&1; systemctl is-active nfs-server || true"); !strings.Contains(out, "Assertion failed") || !strings.HasSuffix(strings.TrimSpace(out), "inactive") && !strings.HasSuffix(strings.TrimSpace(out), "failed") {
		t.Errorf("zippy's nfs-server must stay fenced after the heal: %v\n%s", err, out)
	}
	// zippy's agent deregistered its instance during the partition; the
	// servers learn it at its first anti-entropy sync after the heal.
	waitFor(t, time.Minute, "Consul's passing instances after the heal: c1 alone", func() error {
		if p := consulPassing(t, l); p != `"Node":"c1"` {
			return fmt.Errorf("passing: %q", p)
		}
		return nil
	})
	n, total, first := watch.both()
	if n > 0 {
		t.Errorf("zippy and c1 both served in %d of %d samples (first %s into the partition)", n, total, first.Sub(parted).Round(time.Millisecond))
	}
	if s := watch.last(); s.zippy || !s.c1ok {
		t.Errorf("at the end: zippy serves %v, c1 serves %v; want c1 alone", s.zippy, s.c1ok)
	}

	// The figures, from zippy's journal (systemd's timestamps, this
	// machine's clock) and the test's polls.
	decided := journalLine(journal, "until Consul confirms this host again")
	t.Logf("measured: zippy's nfs-server inactive %s after the partition (polled every 50 ms); the failover done %s after it; %d NFSv4 samples of both hosts, none with two servers",
		stopAfter.Round(10*time.Millisecond), failedOver.Round(100*time.Millisecond), total)
	if i := strings.Index(decided, "Consul has not confirmed"); i >= 0 {
		t.Logf("measured: the guard's decision: %s", strings.TrimSpace(decided[i:min(len(decided), i+160)]))
	} else {
		t.Errorf("zippy's journal lacks the lease stop")
	}
	if dAt, ok := journalTime(decided); ok {
		if sAt, ok := journalTime(journalLine(journal, "Stopped nfs-server.service")); ok {
			t.Logf("measured: the lease stop decided %s after the partition; nfs-server stopped %s after the decision",
				dAt.Sub(parted).Round(10*time.Millisecond), sAt.Sub(dAt).Round(10*time.Millisecond))
		}
	}
	if gone := watch.zippyGone(); !gone.IsZero() {
		t.Logf("measured: zippy's export stopped answering NFSv4 reads %s after the partition", gone.Sub(parted).Round(10*time.Millisecond))
		if dAt, ok := journalTime(decided); ok {
			t.Logf("measured: zippy's export stopped answering %s after the guard's lease stop decision", gone.Sub(dAt).Round(10*time.Millisecond))
		}
	} else {
		t.Errorf("zippy's export never stopped answering")
	}
	if fAt, ok := journalTime(journalLine(journal, fenced)); ok {
		t.Logf("measured: fenced %s after the heal", fAt.Sub(healed).Round(10*time.Millisecond))
	}
}

// A guard restarted while its Consul agent hangs (zippy cut off from
// the servers: the agent takes consistent reads and never answers)
// stops the running unit within its start grace, 1000 ms, not at the
// end of the lease it inherited; after the heal, with the key unchanged,
// it starts the unit again (the ModifyIndex it confirmed before the
// stop).
func TestRealGuardRestartedAgainstAHangingConsul(t *testing.T) {
	l, _ := nfsStart(t)
	t.Cleanup(func() { restoreGuards(t, l) })

	since := guardSince()
	heal, _ := cutZippy(t, l)
	restarted := time.Now()
	if out, err := inMachine(l, "zippy", "systemctl restart "+lab.NFSGuardUnit); err != nil {
		t.Fatalf("restarting zippy's guard: %v\n%s", err, out)
	}
	var journal string
	const decided = "has no confirmation from Consul yet"
	waitFor(t, 2*guardBound, "zippy's restarted guard to stop nfs-server", func() error {
		var err error
		journal, err = guardJournal(l, since)
		if err != nil {
			return err
		}
		if !strings.Contains(journal, "done: this guard started") || !strings.Contains(journal, decided) {
			return fmt.Errorf("not yet")
		}
		return nil
	})
	if t.Failed() {
		t.Logf("zippy's journal:\n%s", journal)
		t.FailNow()
	}
	// From the new guard's first line (its start) to its decision, in
	// zippy's journal: the bound is 1000 ms.
	startLine := ""
	for _, line := range strings.Split(journal, "\n") {
		if strings.Contains(line, "hoctl") && strings.Contains(line, "guarding nfs-server.service") {
			startLine = line // the newest
		}
	}
	started, ok1 := journalTime(startLine)
	at, ok2 := journalTime(journalLine(journal, decided))
	stopped, ok3 := journalTime(journalLine(journal, "Stopped nfs-server.service"))
	if !ok1 || !ok2 || !ok3 {
		t.Fatalf("zippy's journal lacks the guard's start, its decision or the stop:\n%s", journal)
	}
	t.Logf("measured: the restarted guard decided to stop nfs-server %s after it started (bound 1000 ms; %s after the restart was asked); nfs-server stopped %s after the decision",
		at.Sub(started).Round(time.Millisecond), at.Sub(restarted).Round(time.Millisecond), stopped.Sub(at).Round(10*time.Millisecond))

	// Heal: the key never changed, so the guard starts the unit again.
	if err := heal(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 2*time.Minute, "zippy's guard to start nfs-server again at the confirmed ModifyIndex", func() error {
		out, err := inMachine(l, "zippy", "systemctl is-active nfs-server || true")
		if err != nil || strings.TrimSpace(out) != "active" {
			return fmt.Errorf("nfs-server %q %v", out, err)
		}
		return nil
	})
	journal, _ = inMachine(l, "zippy", "journalctl -u "+lab.NFSGuardUnit+" --no-pager -o short-iso-precise --since "+since)
	if !strings.Contains(journal, "unchanged since the lease stop: starting nfs-server.service") {
		t.Errorf("nfs-server runs again, but not started by the guard:\n%s", journal)
	}
	// Active is not yet serving opens: the server starts in its grace
	// period (ganesha's defaults, as shipped: docs/failover.md, "the
	// grace period"), in which it refuses new opens.
	active := time.Now()
	waitFor(t, 2*time.Minute, "zippy serving reads again after the heal", func() error {
		_, err := nfsCat(l, "zippy", "hello")
		return err
	})
	t.Logf("measured: zippy served a read %s after its unit was active again", time.Since(active).Round(100*time.Millisecond))
}
