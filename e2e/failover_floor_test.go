package e2e

import (
	"strings"
	"testing"
	"time"

	"github.com/hoctl/hoctl/internal/lab"
)

// c1From is when c1 started serving for good: the first sample after
// which every sample read c1's export (zero if its last did not).
func (w *nfsWatch) c1From() time.Time {
	w.mu.Lock()
	defer w.mu.Unlock()
	var from time.Time
	for _, s := range w.samples {
		switch {
		case !s.c1ok:
			from = time.Time{}
		case from.IsZero():
			from = s.at
		}
	}
	return from
}

// The unplanned failover at the lease's floor: zippy, serving, is cut
// off from the Consul servers and from the operator's SSH while it runs
// on (lab.Partition), and the operator runs `failover --to c1
// --primary-down` at once, without waiting for Consul's gossip to see
// zippy go (again once a second while hoctl refuses, as an operator
// would). Both exports are read every 20 ms throughout: never both
// serving, c1 alone at the end. Logged (never asserted: a loaded
// machine): when zippy stopped answering, when c1 began, the gap
// between them, and the failover's own time.
func TestFailoverPartitionedPrimaryAtTheLeaseFloor(t *testing.T) {
	l, env := nfsStart(t)
	t.Cleanup(func() { restoreGuards(t, l) })

	const probe = "floor-probe"
	probeServed(t, l, env, probe)

	watch := watchNFS(l, probe)
	t.Cleanup(watch.stop)
	heal, parted := cutZippy(t, l, lab.OperatorSSH)

	// As an operator would: again once a second while hoctl refuses
	// (exit 3), for at most a minute.
	var r result
	refused := 0
	_ = poll(time.Second, time.Minute-time.Since(parted), func() error { // its exit is checked below
		if r = hoctlEnv(t, l.Inventory, env, "--yes", "failover", "--to", "c1", "--primary-down"); r.code == 3 {
			refused++
			return errNotYet
		}
		return nil
	})
	failedOver := time.Since(parted)
	t.Logf("failover --primary-down refused %d times before it ran", refused)
	if r.code != 0 {
		watch.stop()
		t.Fatalf("failover --primary-down right after the partition: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	// One more second of samples after the run.
	time.Sleep(time.Second)
	if s := watch.last(); s.zippy || !s.c1ok {
		t.Errorf("after the failover: zippy serves %v, c1 serves %v; want c1 alone", s.zippy, s.c1ok)
	}

	// Heal; the clean-up's failover back needs zippy's agent reading the
	// key again (serf retries failed members every 30 s).
	if err := heal(); err != nil {
		t.Fatal(err)
	}
	zippyReadsOwner(t, l, "c1")
	watch.stop()
	n, total, first := watch.both()
	if n > 0 {
		t.Errorf("zippy and c1 both served in %d of %d samples (first %s into the partition)", n, total, first.Sub(parted).Round(time.Millisecond))
	}
	if s := watch.last(); s.zippy || !s.c1ok {
		t.Errorf("at the end: zippy serves %v, c1 serves %v; want c1 alone", s.zippy, s.c1ok)
	}
	gone, began := watch.zippyGone(), watch.c1From()
	if gone.IsZero() || began.IsZero() {
		t.Fatalf("zippy stopped at %v, c1 began at %v: one never happened", gone, began)
	}
	t.Logf("measured: zippy's export stopped answering %s into the partition; c1's answered from %s; unavailable %s; the failover (started at the cut) took %s; %d samples of both exports, none with two servers",
		gone.Sub(parted).Round(10*time.Millisecond), began.Sub(parted).Round(10*time.Millisecond), began.Sub(gone).Round(10*time.Millisecond),
		failedOver.Round(100*time.Millisecond), total)
	if !strings.Contains(r.stdout+r.stderr, "still passing in Consul") {
		t.Logf("(Consul had already seen zippy go when the run assessed it)")
	}
}
