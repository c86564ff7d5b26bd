package e2e

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hoctl/hoctl/internal/lab"
	"github.com/hoctl/hoctl/pkg/sshexec"
	"github.com/hoctl/hoctl/pkg/tasks"
)

// fingerprint describes a tree's content exactly: every file's checksum,
// xattrs, hard-link structure and sparseness (allocated blocks).
const fingerprint = `cd "$1" && {
  find . -type f -print0 | sort -z | xargs -0 sha256sum
  getfattr -R -d -m - . 2>/dev/null | grep -v '^$'
  find . -type f -printf '%P links=%n\n' | sort
  find . -type f -name 'sparse*' -printf '%P blocks=%b size=%s\n'
  find . -type l -printf '%P -> %l\n'
}`

func fp(t *testing.T, r sshexec.Runner, dir string) string {
	t.Helper()
	res, err := r.Run(context.Background(), sshexec.Cmd{Argv: []string{"sh", "-c", fingerprint, "fp", dir}})
	if err != nil {
		t.Fatalf("%s: fingerprint %s: %v", r.Name(), dir, err)
	}
	return string(res.Stdout)
}

func replicateOnce(t *testing.T, env []string, args ...string) result {
	t.Helper()
	r := hoctlEnv(t, storage.Inventory, env, append([]string{"--yes", "replicate"}, args...)...)
	if r.code != 0 {
		t.Fatalf("replicate %v: exit %d\n%s", args, r.code, r.stderr)
	}
	return r
}

func newest(t *testing.T, r sshexec.Runner, dir string) string {
	t.Helper()
	out := strings.Fields(must(t, r, "ls -1d "+dir+"/services@* | sort | tail -1"))
	if len(out) == 0 {
		t.Fatalf("no snapshot in %s", dir)
	}
	return out[0]
}

// cleanServices empties the replication's subvolume and snapshots on both
// storage hosts now and when the test ends.
func cleanServices(t *testing.T, zippy, c1 sshexec.Runner) {
	t.Helper()
	clean := func() {
		// Deleted subvolumes and files free their space only once btrfs
		// commits and cleans them: wait, or the next test's free-space
		// check sees a full disk.
		_, _ = zippy.Run(context.Background(), sshexec.Cmd{Script: "btrfs subvolume delete -c /persist/services-snapshots/services@* /persist/services >/dev/null 2>&1; rm -f /persist/services-snapshots/.hoctl-replicate-*; btrfs subvolume sync /persist; sync"})
		_, _ = c1.Run(context.Background(), sshexec.Cmd{Script: "rm -f /persist/filler; btrfs subvolume delete -c /persist/services-standby/services* /persist/services >/dev/null 2>&1; btrfs subvolume sync /persist; sync"})
	}
	clean()
	must(t, c1, "mkdir -p /persist/services-standby")
	must(t, zippy, "mkdir -p /persist/services-snapshots")
	t.Cleanup(clean)
}

func TestReplicateFullIncrementalGarbageAndLostParent(t *testing.T) {
	rs := storageRunners(t, "zippy", "c1")
	zippy, c1 := rs[0], rs[1]
	env := stateEnv(t)
	cleanServices(t, zippy, c1)
	must(t, zippy, `set -e
btrfs subvolume create /persist/services >/dev/null
cd /persist/services
mkdir -p gitea/repos immich
head -c 3000000 /dev/urandom > gitea/repos/big.pack
echo hello > gitea/app.ini
setfattr -n user.owner -v gitea gitea/app.ini
ln gitea/app.ini gitea/app.ini.hardlink
ln -s gitea/app.ini link
truncate -s 64M sparse.img
printf 'in the middle' | dd of=sparse.img bs=1 seek=33554432 conv=notrunc 2>/dev/null`)

	// 1. First run: a full send, said plainly.
	r := replicateOnce(t, env, "zippy", "c1")
	if !strings.Contains(r.stderr, "FULL send: no earlier snapshot") || !strings.Contains(r.stderr, "full send (no earlier snapshot") {
		t.Fatalf("first run must say it is full:\n%s", r.stderr)
	}
	want := fp(t, zippy, "/persist/services")
	if got := fp(t, c1, newest(t, c1, "/persist/services-standby")); got != want {
		t.Fatalf("copy differs after the full send:\n--- zippy\n%s\n--- c1\n%s", want, got)
	}
	if !strings.Contains(want, "user.owner=\"gitea\"") || !strings.Contains(want, "app.ini links=2") || !strings.Contains(want, "sparse.img blocks=") {
		t.Fatalf("fingerprint misses xattrs, hard links or sparseness:\n%s", want)
	}
	if strings.Contains(fp(t, c1, newest(t, c1, "/persist/services-standby")), "blocks=131072") {
		t.Fatal("the sparse file arrived fully allocated")
	}

	// 2. Change 200 files: incremental, identical again.
	must(t, zippy, `cd /persist/services/immich && for i in $(seq 1 200); do echo "photo $i" > p$i.jpg; done; echo more >> ../gitea/app.ini`)
	r = replicateOnce(t, env, "--name", "services")
	if !strings.Contains(r.stderr, "incremental from services@") {
		t.Fatalf("second run must be incremental:\n%s", r.stderr)
	}
	want = fp(t, zippy, "/persist/services")
	if got := fp(t, c1, newest(t, c1, "/persist/services-standby")); got != want {
		t.Fatal("copy differs after the incremental send")
	}

	// 3. No change: still a clean incremental cycle.
	r = replicateOnce(t, env, "zippy", "c1")
	if !strings.Contains(r.stderr, "incremental from services@") {
		t.Fatalf("no-change cycle:\n%s", r.stderr)
	}

	// 4. Garbage of an interrupted receive (writable, no received UUID,
	// hoctl's naming) is removed first; a look-alike hoctl did not name is
	// left alone. The look-alike is read-only with a received UUID (a
	// read-only snapshot of the received copy keeps it): a writable
	// subvolume not named like a snapshot makes the filter refuse the dir
	// as not dedicated (every key now receives through it).
	must(t, c1, "btrfs subvolume create /persist/services-standby/services@20200101T000000Z >/dev/null && "+
		"btrfs subvolume snapshot -r $(ls -1d /persist/services-standby/services@2* | sort | tail -1) /persist/services-standby/services@manual >/dev/null")
	r = replicateOnce(t, env, "zippy", "c1")
	if !strings.Contains(r.stderr, "incremental from") {
		t.Fatalf("after garbage:\n%s", r.stderr)
	}
	ls := must(t, c1, "ls /persist/services-standby")
	if strings.Contains(ls, "services@20200101T000000Z") || !strings.Contains(ls, "services@manual") {
		t.Fatalf("garbage handling, target now holds:\n%s", ls)
	}
	must(t, c1, "btrfs subvolume delete /persist/services-standby/services@manual >/dev/null")

	// 5. Lose every common snapshot on the target: the next send is full
	// and says why.
	must(t, c1, "btrfs subvolume delete /persist/services-standby/services@* >/dev/null")
	r = replicateOnce(t, env, "zippy", "c1")
	if !strings.Contains(r.stderr, "NO COMMON PARENT") {
		t.Fatalf("a lost parent must be said plainly:\n%s", r.stderr)
	}
	if got := fp(t, c1, newest(t, c1, "/persist/services-standby")); got != fp(t, zippy, "/persist/services") {
		t.Fatal("copy differs after the forced full send")
	}
	hist := hoctlEnv(t, storage.Inventory, env, "history")
	if strings.Count(hist.stdout, "hoctl --yes replicate") != 5 || strings.Count(hist.stdout, " ok ") < 5 {
		t.Fatalf("history:\n%s", hist.stdout)
	}
}

func TestReplicateBadInputChangesNothing(t *testing.T) {
	env := stateEnv(t)
	for args, want := range map[string]string{
		"c1 c1":       "no replication between c1 and c1",
		"zippy zipy":  "did you mean",
		"--name nope": `no replication "nope"`,
		"zippy":       "expected SRC DST, --name N, or nothing for every replication",
	} {
		r := hoctlEnv(t, storage.Inventory, env, append([]string{"--yes", "replicate"}, strings.Fields(args)...)...)
		if r.code != 2 || !strings.Contains(r.stderr, want) {
			t.Errorf("replicate %s: exit %d, %s", args, r.code, r.stderr)
		}
	}
}

// Interrupted sends: the receiving btrfs killed (hoctl deletes the partial
// copy at once and fails), Ctrl-C (the same, exit 130), and hoctl itself killed (the partial copy is
// left, and the next run removes it). Either way the next run succeeds,
// incrementally, with identical data.
func TestReplicateInterruptedSends(t *testing.T) {
	rs := storageRunners(t, "zippy", "c1")
	zippy, c1 := rs[0], rs[1]
	env := stateEnv(t)
	cleanServices(t, zippy, c1)
	must(t, zippy, "btrfs subvolume create /persist/services >/dev/null && echo base > /persist/services/base")
	replicateOnce(t, env, "zippy", "c1")
	// Enough new data that the send takes a moment.
	must(t, zippy, "head -c 150000000 /dev/urandom > /persist/services/big && sync")

	waitReceive := func() {
		t.Helper()
		waitProcs(t, "^btrfs receive -C /persist/services-standby$", 1)
	}
	// 1. The receiving btrfs dies mid-stream.
	cmd, out := startRun(t, storage.Inventory, env, "--yes", "replicate", "zippy", "c1")
	waitReceive()
	if err := lab.ToolCmd(context.Background(), "pkill", "-KILL", "-f", "^btrfs receive -C /persist/services-standby$").Run(); err != nil {
		t.Fatal(err)
	}
	err := cmd.Wait()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() == 0 {
		t.Fatalf("a killed receive must fail the run: %v\n%s", err, out)
	}
	if !strings.Contains(out.String(), "receiver failed") || !strings.Contains(out.String(), "undo") {
		t.Fatalf("want the receiver blamed and the copy undone:\n%s", out)
	}
	if ls := must(t, c1, "ls /persist/services-standby"); strings.Count(ls, "services@") != 1 {
		t.Fatalf("a partial copy was left:\n%s", ls)
	}

	// 2. Ctrl-C mid-stream: hoctl stops the send and deletes the partial
	// copy at once, before it exits (the undo the plan shows), exit 130.
	cmd, out = startRun(t, storage.Inventory, env, "--yes", "replicate", "zippy", "c1")
	waitReceive()
	_ = cmd.Process.Signal(os.Interrupt)
	err = cmd.Wait()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 130 {
		t.Fatalf("Ctrl-C must exit 130: %v\n%s", err, out)
	}
	if ls := must(t, c1, "ls /persist/services-standby"); strings.Count(ls, "services@") != 1 {
		t.Fatalf("Ctrl-C left a partial copy for the next run to find:\n%s\n%s", ls, out)
	}

	// 3. hoctl itself dies mid-stream: the receive ends with its input and
	// leaves a partial, writable copy.
	cmd, _ = startRun(t, storage.Inventory, env, "--yes", "replicate", "zippy", "c1")
	waitReceive()
	_ = cmd.Process.Signal(syscall.SIGKILL)
	_ = cmd.Wait()
	if !waitEvery(t, 50*time.Millisecond, 10*time.Second, "the receive to end with hoctl", func() error {
		if countProcs(t, "^btrfs receive -C /persist/services-standby$") > 0 {
			return errors.New("receive survived hoctl")
		}
		return nil
	}) {
		t.FailNow()
	}
	left := must(t, c1, "for d in /persist/services-standby/services@*; do btrfs property get -ts \"$d\" ro; done")
	if !strings.Contains(left, "ro=false") {
		t.Fatalf("expected garbage (a writable partial copy) after kill -9:\n%s", left)
	}
	r := replicateOnce(t, env, "zippy", "c1")
	if !strings.Contains(r.stderr, "removed unfinished receives") || !strings.Contains(r.stderr, "incremental from") {
		t.Fatalf("the next run must remove the garbage and go on incrementally:\n%s", r.stderr)
	}
	if got, want := fp(t, c1, newest(t, c1, "/persist/services-standby")), fp(t, zippy, "/persist/services"); got != want {
		t.Fatal("copy differs after recovering")
	}
}

// Two replications of one name exclude each other: the second refuses
// (exit 3) and names the holder.
func TestReplicateLockExcludesSecondRun(t *testing.T) {
	env := stateEnv(t)
	// A replication that could run: the before checks pass, so the lock
	// is what refuses it (a failing check would refuse it first).
	rs := storageRunners(t, "zippy", "c1")
	cleanServices(t, rs[0], rs[1])
	must(t, rs[0], "btrfs subvolume create /persist/services >/dev/null")
	state := strings.TrimPrefix(env[0], "XDG_STATE_HOME=") + "/hoctl"
	l, err := tasks.AcquireLocal(state, "replicate-services", tasks.LockHolder{PID: 4321, Run: "R-other", Start: time.Now()})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = l.Release() }()
	r := hoctlEnv(t, storage.Inventory, env, "--yes", "replicate", "zippy", "c1")
	if r.code != 3 || !strings.Contains(r.stderr, `lock "replicate-services" is held by pid 4321`) {
		t.Fatalf("exit %d\n%s", r.code, r.stderr)
	}
}

// The target filling up mid-receive: a clear error naming the full
// filesystem, and no half subvolume left behind.
func TestReplicateTargetFullMidReceive(t *testing.T) {
	rs := storageRunners(t, "zippy", "c1")
	zippy, c1 := rs[0], rs[1]
	env := stateEnv(t)
	cleanServices(t, zippy, c1)
	must(t, zippy, "btrfs subvolume create /persist/services >/dev/null && head -c 200000000 /dev/urandom > /persist/services/big && sync")
	cmd, out := startRun(t, storage.Inventory, env, "--yes", "replicate", "zippy", "c1")
	waitProcs(t, "^btrfs receive -C /persist/services-standby$", 1)
	// Fill the target while the receive runs.
	_, _ = c1.Run(context.Background(), sshexec.Cmd{Script: "dd if=/dev/zero of=/persist/filler bs=1M 2>/dev/null; sync; true"})
	err := cmd.Wait()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() == 0 {
		t.Fatalf("a full target must fail the run: %v\n%s", err, out)
	}
	if !strings.Contains(out.String(), "No space left on device") {
		t.Fatalf("the error must say the target is full:\n%s", out)
	}
	must(t, c1, "rm -f /persist/filler")
	if ls := must(t, c1, "ls /persist/services-standby"); strings.Contains(ls, "services@") {
		t.Fatalf("a half subvolume was left:\n%s", ls)
	}
}
