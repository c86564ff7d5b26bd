package e2e

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hoctl/hoctl/internal/lab"
	"github.com/hoctl/hoctl/pkg/btrfs"
	"github.com/hoctl/hoctl/pkg/replicate"
	"github.com/hoctl/hoctl/pkg/sshexec"
	"golang.org/x/sys/unix"
)

// The hostile-name corpus planted in the target dir by a real send
// stream: names that forge listing entries (newline, tab, "Key: value"
// lines, the old listing's separator), control characters, `..`, a
// 255-byte name, and objects named exactly like snapshots that are not
// subvolumes (a symlink to a subvolume outside the dir, a file, a FIFO),
// plus a real subvolume whose name is not exactly <base>@<timestamp>.
// The filter keeps a stream inside its own subvolume, so the corpus comes
// through the key forced to plain `btrfs receive` (what an older hoctl's
// key, or anything else writing the dir, could leave there); the same
// stream through the filter is refused and plants nothing.
const (
	standby  = "/persist/services-standby"
	linkName = "services@20200101T000000Z" // -> /persist/victim
)

var forgedEntry = "services@x\n\tName: \t\t\t" + linkName + "\n\tUUID: \t\t\t0badc0de-0000-4000-8000-000000000777\n\tFlags: \t\t\t-"

func hostileNames() []string {
	return []string{
		forgedEntry,
		"services@--hoctl-next-- x",
		"services@\x1b[2J\x1b]0;pwned\a",
		"services@..",
		"services@\ttab",
		"services@" + strings.Repeat("A", 255-len("services@")),
	}
}

// plantCorpus plants the corpus in c1's target dir by a real stream
// through the key forced to plain `btrfs receive`, after checking that
// the filter key refuses that stream and leaves the dir as it was.
func plantCorpus(t *testing.T, c1 sshexec.Runner, keys c1Keys) {
	t.Helper()
	hostileSub := newSendStream().subvol("services@20300101T000002Z\n\tFlags: -", 102).bytes()
	if code, out := sshStream(t, keys.receiveOnly, "ignored: the key's forced command runs", hostileSub); code != 0 {
		t.Fatalf("planting a subvolume with a hostile name: exit %d: %s", code, out)
	}
	s := newSendStream().subvol("services@20300101T000001Z", 101)
	for i, n := range hostileNames() {
		s.cmd(cmdMkdir, aStr(attrPath, "../"+n), aU64(attrIno, uint64(500+i)))
	}
	s.symlink("../"+linkName, "/persist/victim")
	s.file("../services@20200101T000003Z", "a file named like a snapshot\n")
	s.cmd(cmdMknod, aStr(attrPath, "../services@20200101T000004Z"), aU64(attrIno, 600), aU64(attrMode, unix.S_IFIFO|0o600), aU64(attrRdev, 0))
	stream := s.bytes()
	refusedThroughTheFilter(t, c1, keys, stream, "services@20300101T000001Z")
	if code, out := sshStream(t, keys.receiveOnly, "ignored: the key's forced command runs", stream); code != 0 {
		t.Fatalf("planting the corpus: exit %d: %s", code, out)
	}
}

// refusedThroughTheFilter sends stream through the filter key: it must be
// refused, with nothing but the receive's own
// unfinished subvolume (sub, removed after) added to the dir.
func refusedThroughTheFilter(t *testing.T, c1 sshexec.Runner, keys c1Keys, stream []byte, sub string) {
	t.Helper()
	list := "ls -A " + standby + " | grep -vx " + sub + " | od -c"
	before := must(t, c1, list)
	code, out := sshStream(t, keys.filtered, "btrfs receive -C "+standby, stream)
	// Refused for leaving its subvolume, or before that for the dir's
	// mount (a test without nodev, to see a planted device).
	if code == 0 || !strings.Contains(out, "could leave the subvolume received") && !strings.Contains(out, "is mounted without") {
		t.Fatalf("a stream planting outside its subvolume, through the filter: exit %d: %s", code, out)
	}
	if after := must(t, c1, list); after != before {
		t.Fatalf("the refused stream changed the dir:\n%s\nwas\n%s", after, before)
	}
	must(t, c1, "if [ -d "+standby+"/"+sub+" ]; then btrfs subvolume delete "+standby+"/"+sub+" >/dev/null; fi")
}

// plantSpecial plants one special file named name directly in the target
// dir through a real stream (a FIFO, or a block device: rdev), by the key
// forced to plain `btrfs receive`, once the filter key refused it.
func plantSpecial(t *testing.T, c1 sshexec.Runner, keys c1Keys, name string, mode uint32, rdev uint64, n int) {
	t.Helper()
	sub := fmt.Sprintf("services@20300101T0000%02dZ", n)
	s := newSendStream().subvol(sub, 200+n)
	s.cmd(cmdMknod, aStr(attrPath, "../"+name), aU64(attrIno, uint64(700+n)), aU64(attrMode, uint64(mode)), aU64(attrRdev, rdev))
	stream := s.bytes()
	refusedThroughTheFilter(t, c1, keys, stream, sub)
	if code, out := sshStream(t, keys.receiveOnly, "ignored: the key's forced command runs", stream); code != 0 {
		t.Fatalf("planting %s: exit %d: %s", name, code, out)
	}
}

// canaryDevice is a loop device over a file of known bytes, outside
// every replication dir: a block device planted in the dir with its
// numbers must never be written through.
func canaryDevice(t *testing.T) (file string, rdev uint64) {
	t.Helper()
	file = filepath.Join(t.TempDir(), "canary.img")
	if err := os.WriteFile(file, bytes.Repeat([]byte("C"), 1<<20), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := lab.ToolCmd(context.Background(), "losetup", "-f", "--show", file).CombinedOutput()
	if err != nil {
		t.Fatalf("losetup: %v: %s", err, out)
	}
	dev := strings.TrimSpace(string(out))
	t.Cleanup(func() { _ = lab.ToolCmd(context.Background(), "losetup", "-d", dev).Run() })
	var st unix.Stat_t
	if err := unix.Stat(dev, &st); err != nil {
		t.Fatal(err)
	}
	return file, st.Rdev
}

func canaryIntact(t *testing.T, file, when string) {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(b, bytes.Repeat([]byte("C"), 1<<20)) {
		t.Errorf("%s: the block device planted in the dir was written through: the canary starts %q", when, b[:64])
	}
}

// directionWrite is failover's direction write on c1, as failover sends it.
func directionWrite(ctx context.Context, c1 sshexec.Runner) (*sshexec.Result, error) {
	return c1.Run(ctx, replicate.DirectionCmd(standby, "services", "c1"))
}

// dirLab is c1's target dir emptied, with canaries outside it: a
// subvolume, a file, and everything else in /persist and /data.
type dirLab struct {
	zippy, c1 sshexec.Runner
	env       []string
	keys      c1Keys
	victim    *btrfs.Show
	before    string
}

func newDirLab(t *testing.T) *dirLab {
	t.Helper()
	rs := storageRunners(t, "zippy", "c1")
	d := &dirLab{zippy: rs[0], c1: rs[1], env: stateEnv(t)}
	cleanServices(t, d.zippy, d.c1)
	d.keys = restrictC1Keys(t)
	clean := func() {
		_, _ = d.c1.Run(context.Background(), sshexec.Cmd{Script: "rm -rf /persist/outside; btrfs subvolume delete /persist/victim >/dev/null 2>&1; " +
			"find " + standby + " -mindepth 1 -maxdepth 1 -exec btrfs subvolume delete {} + >/dev/null 2>&1; rm -rf " + standby + "/* " + standby + "/.hoctl*; true"})
	}
	clean()
	t.Cleanup(clean)
	must(t, d.c1, "mkdir /persist/outside && echo keep > /persist/outside/keep && btrfs subvolume create /persist/victim >/dev/null && echo precious > /persist/victim/data")
	var err error
	if d.victim, err = btrfs.ParseShow(must(t, d.c1, "btrfs subvolume show /persist/victim")); err != nil {
		t.Fatal(err)
	}
	d.before = must(t, d.c1, outsideState)
	must(t, d.zippy, "btrfs subvolume create /persist/services >/dev/null && echo data > /persist/services/f")
	return d
}

// outsideSame fails the test when anything outside the dir changed.
func (d *dirLab) outsideSame(t *testing.T, when string) {
	t.Helper()
	res, err := d.c1.Run(context.Background(), sshexec.Cmd{Script: outsideState})
	after := ""
	if res != nil {
		after = string(res.Stdout)
	}
	if err != nil {
		after += fmt.Sprintf("(reading it failed: %v)\n", err)
	}
	if after != d.before {
		t.Errorf("%s changed c1 outside the target dir:\n--- before\n%s--- after\n%s", when, d.before, after)
		d.before = after
	}
	if _, err := d.c1.Run(context.Background(), sshexec.Cmd{Script: "grep -qx precious /persist/victim/data && grep -qx keep /persist/outside/keep"}); err != nil {
		t.Errorf("%s: a canary outside the dir is gone", when)
	}
}

// TestHostileNamesNothingOutsideDir plants the corpus through a real
// stream, then runs every replicate and snapshots path over it, by the
// operator's unrestricted key and through the filter: nothing outside
// the dir changes (a canary subvolume, a canary file, everything else in
// /persist and /data), every planted object is reported and none is
// acted on (issue 19, finding 1).
func TestHostileNamesNothingOutsideDir(t *testing.T) {
	d := newDirLab(t)
	plantCorpus(t, d.c1, d.keys)
	t.Logf("planted entries: %s", strings.TrimSpace(must(t, d.c1, "find "+standby+" -mindepth 1 -maxdepth 1 -name 'services@*' -print0 | tr -cd '\\0' | wc -c")))
	for i, inv := range []string{storage.Inventory, d.keys.filteredInv} {
		for _, args := range [][]string{{"--yes", "replicate", "--transport", "relay", "zippy", "c1"}, {"--yes", "replicate", "zippy", "c1"}} {
			r := hoctlEnv(t, inv, d.env, args...)
			d.outsideSame(t, fmt.Sprintf("inventory %d: %q (exit %d)", i, args, r.code))
			if r.code != 0 {
				t.Fatalf("%q beside the corpus: exit %d\n%s", args, r.code, r.stderr)
			}
			if strings.Contains(r.stderr, "removed unfinished receives") || strings.Contains(r.stderr, d.victim.UUID) {
				t.Errorf("a planted entry was acted on:\n%s", r.stderr)
			}
			if !strings.Contains(r.stderr, "WARNING c1:"+standby+": \"services@") { // the rest in the journal and `snapshots`
				t.Errorf("replicate does not report the planted entries:\n%s", r.stderr)
			}
		}
		out := hoctlEnv(t, inv, d.env, "snapshots", "c1")
		d.outsideSame(t, "snapshots c1")
		if out.code != 0 || strings.Contains(out.stdout+out.stderr, d.victim.UUID) {
			t.Errorf("snapshots c1: exit %d, or it shows the victim's UUID:\n%s%s", out.code, out.stdout, out.stderr)
		}
		for _, want := range []string{linkName + `": symlink`, `services@20200101T000003Z": file`, `services@20200101T000004Z": FIFO`, `"services@x\n\tName:`} {
			if !strings.Contains(out.stderr, want) {
				t.Errorf("snapshots c1 does not report %s:\n%s", want, out.stderr)
			}
		}
		if strings.ContainsRune(out.stderr, '\x1b') {
			t.Errorf("snapshots c1 printed a planted name's control characters raw")
		}
	}
	received := 0
	for _, row := range snapshots(t, "c1") {
		if _, _, ok := btrfs.ParseSnapshotName(row.Name); ok && row.ReceivedUUID != "" && row.ReadOnly {
			received++
		}
	}
	if received < 2 {
		t.Errorf("%d snapshots received beside the corpus, want at least 2", received)
	}
	if got := strings.TrimSpace(must(t, d.c1, "readlink "+standby+"/"+linkName)); got != "/persist/victim" {
		t.Errorf("the planted symlink was removed or changed (%q): reported, never acted on", got)
	}
}

// A block device planted under the lock's and the direction's names (the
// dir mounted without nodev) is refused, never opened for writing, never
// written (issue 19, finding 2).
func TestPlantedDeviceNeverWritten(t *testing.T) {
	d := newDirLab(t)
	canary, rdev := canaryDevice(t)
	must(t, d.c1, "mount -o remount,dev /persist")
	t.Cleanup(func() { must(t, d.c1, "mount -o remount,nosuid,nodev /persist") })
	lock := replicate.HostLockFile(standby, "services")
	// The filter refuses to receive into a dir without nodev: the device
	// comes through a key forced to plain `btrfs receive`.
	plantSpecial(t, d.c1, d.keys, filepath.Base(lock), unix.S_IFBLK|0o600, rdev, 1)
	for _, inv := range []string{storage.Inventory, d.keys.filteredInv} {
		r := hoctlEnv(t, inv, d.env, "--yes", "replicate", "zippy", "c1")
		canaryIntact(t, canary, "replicate over a block device at the lock's name")
		d.outsideSame(t, "replicate, lock a block device")
		if r.code == 0 || !strings.Contains(r.stderr, "block device") {
			t.Errorf("replicate with a block device as its lock: exit %d, want a refusal naming it\n%s", r.code, r.stderr)
		}
	}
	plantSpecial(t, d.c1, d.keys, filepath.Base(replicate.DirectionFile(standby, "services")), unix.S_IFBLK|0o600, rdev, 2)
	if res, err := directionWrite(context.Background(), d.c1); err == nil {
		t.Errorf("failover's direction write into a block device succeeded: %s", res.Stdout)
	}
	canaryIntact(t, canary, "failover's direction write over a block device")
}

// FIFOs planted under the lock's and the direction's names are refused
// within the lock's bound, and no process is left blocked on the host
// (issue 19, finding 3).
func TestPlantedFIFONeverWaitedOn(t *testing.T) {
	d := newDirLab(t)
	lock := replicate.HostLockFile(standby, "services")
	plantSpecial(t, d.c1, d.keys, filepath.Base(lock), unix.S_IFIFO|0o600, 0, 3)
	plantSpecial(t, d.c1, d.keys, filepath.Base(replicate.DirectionFile(standby, "services")), unix.S_IFIFO|0o600, 0, 4)
	for _, inv := range []string{storage.Inventory, d.keys.filteredInv} {
		r := hoctlEnv(t, inv, d.env, "--yes", "replicate", "zippy", "c1")
		if r.code == 0 || !strings.Contains(r.stderr, "FIFO") {
			t.Errorf("replicate with a FIFO as its lock: exit %d after %s, want a refusal naming it\n%s", r.code, r.duration, r.stderr)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), replicate.HostLockTimeout+30*time.Second)
	defer cancel()
	if _, err := directionWrite(ctx, d.c1); err == nil || ctx.Err() != nil {
		t.Errorf("failover's direction write into a FIFO: %v (context: %v), want a refusal", err, ctx.Err())
	}
	if ps := must(t, d.c1, "ps -eo pid=,args= | grep -F .hoctl-replicate- | grep -v grep || true"); strings.TrimSpace(ps) != "" {
		t.Errorf("processes left blocked on c1:\n%s", ps)
	}
	d.outsideSame(t, "the FIFO cases")
}
