package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Two machines run the same replication at once (two hoctl processes
// with their own state dirs, so the local lock cannot see the other):
// the run that comes second refuses (exit 3) naming the first, whose
// receive in progress it leaves alone; the first then finishes.
func TestReplicateTwoMachinesExcludeEachOther(t *testing.T) {
	rs := storageRunners(t, "zippy", "c1")
	zippy, c1 := rs[0], rs[1]
	cleanServices(t, zippy, c1)
	must(t, zippy, "btrfs subvolume create /persist/services >/dev/null && head -c 150000000 /dev/urandom > /persist/services/big && sync")
	timer, workstation := stateEnv(t), stateEnv(t)

	first, out := startRun(t, storage.Inventory, timer, "--yes", "replicate", "zippy", "c1")
	exited := make(chan error, 1)
	go func() { exited <- first.Wait() }()
	// Wait for its receive to be under way: a writable copy in the dir,
	// which is what a second run's garbage step would take for garbage.
	if !waitEvery(t, 20*time.Millisecond, 30*time.Second, "the first run's receive to be under way", func() error {
		if strings.Contains(must(t, c1, "for d in /persist/services-standby/services@*; do btrfs property get -ts \"$d\" ro 2>/dev/null; done; true"), "ro=false") {
			return nil
		}
		select {
		case err := <-exited:
			t.Fatalf("the first run ended before its receive was seen (%v):\n%s", err, out)
		default:
		}
		return errNotYet
	}) {
		t.Fatalf("no receive in progress:\n%s", out)
	}
	// Hold it there (keepalive is 4 s: the pause stays well below).
	_ = first.Process.Signal(syscall.SIGSTOP)
	defer func() { _ = first.Process.Signal(syscall.SIGCONT) }()
	inDir := must(t, c1, "ls -a /persist/services-standby")

	second := hoctlEnv(t, storage.Inventory, workstation, "--yes", "replicate", "zippy", "c1")
	_ = first.Process.Signal(syscall.SIGCONT)
	if second.code != 3 || !strings.Contains(second.stderr, "is held by") || !strings.Contains(second.stderr, "pid "+strconv.Itoa(first.Process.Pid)) {
		t.Errorf("the second run: exit %d, want 3 naming pid %d:\n%s", second.code, first.Process.Pid, second.stderr)
	}
	if now := must(t, c1, "ls -a /persist/services-standby"); now != inDir {
		t.Errorf("the second run changed the target dir under the first:\nbefore:\n%safter:\n%s", inDir, now)
	}
	if err := <-exited; err != nil {
		t.Fatalf("the first run: %v\n%s", err, out)
	}
	if got, want := fp(t, c1, newest(t, c1, "/persist/services-standby")), fp(t, zippy, "/persist/services"); got != want {
		t.Fatal("the first run's copy differs")
	}
	// Both locks are free again: the next run goes ahead.
	replicateOnce(t, workstation, "zippy", "c1")
}

// After a failover, a run the old way round is refused also where the
// inventory has no consul section (a timer on the old primary): the
// direction is recorded on the hosts, and read under the replication's
// lock. On the real cluster: the failover needs real Consul.
func TestReplicateDirectionWithoutConsulAfterFailover(t *testing.T) {
	l, env := nfsStart(t)
	splitBrainWatch(t, l)
	timerInv := filepath.Join(t.TempDir(), "timer.yaml")
	inv := fmt.Sprintf(`defaults: {user: root, port: 2222, identity_files: [%s], known_hosts: %s, connect_timeout: 5s, keepalive: 4s}
hosts:
  zippy: {address: %s}
  c1: {address: %s}
replication:
  services:
    source: {host: zippy, subvolume: /persist/services, snapshot_dir: /persist/services-snapshots}
    target: {host: c1, dir: /persist/services-standby}
    keep: {source: 12, target: 48}
`, l.ClientKey, l.KnownHosts, l.Host("zippy").Addr, l.Host("c1").Addr)
	if err := os.WriteFile(timerInv, []byte(inv), 0o600); err != nil {
		t.Fatal(err)
	}
	if r := hoctlEnv(t, timerInv, env, "--yes", "replicate", "--name", "services"); r.code != 0 {
		t.Fatalf("before the failover the timer runs: exit %d\n%s", r.code, r.stderr)
	}
	if r := hoctlEnv(t, l.Inventory, env, "--yes", "failover", "--to", "c1"); r.code != 0 {
		t.Fatalf("failover: exit %d\n%s", r.code, r.stderr)
	}
	before := mustInMachine(t, l, "c1", "ls /persist/services-standby")
	r := hoctlEnv(t, timerInv, env, "--yes", "replicate", "--name", "services")
	if r.code != 3 || !strings.Contains(r.stderr, "runs c1 → zippy since a failover") || !strings.Contains(r.stderr, ".hoctl-replicate-services.direction") {
		t.Fatalf("zippy → c1 after the failover, without consul: exit %d, want 3\n%s", r.code, r.stderr)
	}
	if after := mustInMachine(t, l, "c1", "ls /persist/services-standby"); after != before {
		t.Fatalf("the refused run changed c1:\n%s\n%s", before, after)
	}
	if r := hoctlEnv(t, timerInv, env, "--yes", "replicate", "c1", "zippy"); r.code != 0 || !strings.Contains(r.stderr, "incremental from services@") {
		t.Fatalf("c1 → zippy without consul: exit %d\n%s", r.code, r.stderr)
	}
}
