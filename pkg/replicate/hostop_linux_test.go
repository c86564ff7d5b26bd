package replicate

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/hoctl/hoctl/pkg/btrfs"
	"github.com/hoctl/hoctl/pkg/sshexec"
	"golang.org/x/sys/unix"
)

// btrfsImage mounts a fresh btrfs loop image for the test (root only)
// and returns its mount point.
func btrfsImage(t *testing.T) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: mounts a btrfs loop image")
	}
	for _, p := range []string{"mkfs.btrfs", "btrfs", "mount", "umount"} {
		if _, err := exec.LookPath(p); err != nil {
			if os.Getenv("CI") == "true" {
				t.Fatalf("%s missing: %v", p, err)
			}
			t.Skipf("%s missing: %v", p, err)
		}
	}
	tmp := t.TempDir()
	img, mnt := filepath.Join(tmp, "fs.img"), filepath.Join(tmp, "mnt")
	if err := os.WriteFile(img, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(img, 256<<20); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(mnt, 0o700); err != nil {
		t.Fatal(err)
	}
	sh(t, "mkfs.btrfs -q "+img+" && mount -o loop "+img+" "+mnt)
	t.Cleanup(func() {
		if out, err := exec.Command("umount", mnt).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v: %s", mnt, err, out)
		}
	})
	return mnt
}

func sh(t *testing.T, script string) string {
	t.Helper()
	out, err := exec.Command("sh", "-ec", script).CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v: %s", script, err, out)
	}
	return string(out)
}

func open(t *testing.T, dir string) *targetDir {
	t.Helper()
	d, err := openTargetDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(d.close)
	return d
}

// lab is a source subvolume with its snapshot dir, a target dir holding
// the received copy of snapshot one, and, outside both dirs, a read-only
// received subvolume and a canary file that nothing may touch.
type lab struct {
	mnt, sub, src, dst, outside, canary string
	one, two                            string
}

func newLab(t *testing.T) *lab {
	m := btrfsImage(t)
	l := &lab{mnt: m, sub: m + "/services", src: m + "/src", dst: m + "/dst", outside: m + "/victim/services@20260101T000000Z",
		canary: m + "/canary", one: "services@20260101T000000Z", two: "services@20260101T000100Z"}
	sh(t, `cd `+m+` && mkdir src dst victim && echo precious > canary
btrfs -q subvolume create services && echo one > services/data && ln -s `+l.canary+` services/.hoctl-failover
btrfs -q subvolume snapshot -r services src/`+l.one+`
btrfs send -q src/`+l.one+` | btrfs receive -q dst
btrfs send -q src/`+l.one+` | btrfs receive -q victim
echo two > services/data
btrfs -q subvolume snapshot -r services src/`+l.two)
	return l
}

func (l *lab) canaryIntact(t *testing.T) {
	t.Helper()
	if b, err := os.ReadFile(l.canary); err != nil || string(b) != "precious\n" {
		t.Fatalf("the canary outside the dirs holds %q (%v)", b, err)
	}
}

func uuidOf(t *testing.T, p string) string {
	t.Helper()
	fd, si, err := openSubvolRoot(p)
	if err != nil {
		t.Fatal(err)
	}
	_ = unix.Close(fd)
	return uuidText(si.UUID)
}

// plant puts what under name directly in dir: a symlink to target, a
// FIFO, a device, a file.
func plant(t *testing.T, dir, name, what, target string) {
	t.Helper()
	p := filepath.Join(dir, name)
	var err error
	switch what {
	case "symlink":
		err = os.Symlink(target, p)
	case "FIFO":
		err = unix.Mkfifo(p, 0o600)
	case "character device":
		err = unix.Mknod(p, unix.S_IFCHR|0o600, int(unix.Mkdev(1, 3)))
	case "file":
		err = os.WriteFile(p, []byte("x"), 0o600)
	case "directory":
		err = os.Mkdir(p, 0o700)
	}
	if err != nil {
		t.Fatal(err)
	}
}

var planted = []string{"symlink", "FIFO", "character device", "file", "directory"}

// Promote (failover) makes the service's subvolume a writable snapshot of
// the received copy it opened by its one name in the dir: a symlink named
// like the copy (to a received copy outside the dir, which the old
// `btrfs subvolume snapshot DIR/NAME SUB` followed and promoted), a FIFO,
// a device, a file or a plain directory is refused and nothing is made.
func TestPromoteRefusesPlantedCopies(t *testing.T) {
	l := newLab(t)
	victimUUID := uuidOf(t, l.outside)
	d := open(t, l.dst)
	sub, aside := l.mnt+"/promoted", l.mnt+"/promoted.aside"
	for i, what := range planted {
		name := "services@2030010" + string(rune('1'+i)) + "T000000Z"
		plant(t, l.dst, name, what, l.outside)
		var out bytes.Buffer
		err := d.promote(name, victimUUID, sub, aside, "marker", &out)
		if err == nil {
			t.Fatalf("a %s named like the copy was promoted: %s", what, out.String())
		}
		if _, serr := os.Lstat(sub); serr == nil {
			t.Fatalf("a %s named like the copy: %s was made (%v)", what, sub, err)
		}
	}
	// The real copy, but not the UUID the plan chose. (A read-only
	// snapshot the host took itself is promotable: failover's
	// TestPromoteCommandServesTheHostsOwnSnapshot.)
	if err := d.promote(l.one, victimUUID, sub, aside, "marker", &bytes.Buffer{}); err == nil || !strings.Contains(err.Error(), "not "+victimUUID) {
		t.Fatalf("another UUID: %v", err)
	}
	if _, err := os.Lstat(sub); err == nil {
		t.Fatal(sub + " was made")
	}
	l.canaryIntact(t)
}

// Promote moves whatever is at the service's path aside (a symlink too,
// never followed), makes the writable snapshot, and writes its marker as
// a file of its own: the copy's data held a symlink under the marker's
// name (to the canary), which is replaced, never written through.
func TestPromoteMakesWritableSnapshot(t *testing.T) {
	l := newLab(t)
	d := open(t, l.dst)
	sub, aside := l.mnt+"/promoted", l.mnt+"/promoted.aside"
	if err := os.Symlink(l.canary, sub); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := d.promote(l.one, uuidOf(t, l.dst+"/"+l.one), sub, aside, "hoctl failover services to c1 tok", &out); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.Readlink(aside); got != l.canary {
		t.Fatalf("the old symlink was not moved aside: %q", got)
	}
	fd, si, err := openSubvolRoot(sub)
	if err != nil {
		t.Fatal(err)
	}
	_ = unix.Close(fd)
	if si.Flags&btrfsSubvolRdonly != 0 || uuidText(si.ParentUUID) != uuidOf(t, l.dst+"/"+l.one) {
		t.Fatalf("%s: flags %d, parent %s", sub, si.Flags, uuidText(si.ParentUUID))
	}
	if b, _ := os.ReadFile(sub + "/data"); string(b) != "one\n" {
		t.Fatalf("data %q", b)
	}
	if fi, err := os.Lstat(sub + "/.hoctl-failover"); err != nil || !fi.Mode().IsRegular() {
		t.Fatalf("marker: %v %v", fi, err)
	}
	if b, _ := os.ReadFile(sub + "/.hoctl-failover"); string(b) != "hoctl failover services to c1 tok\n" {
		t.Fatalf("marker %q", b)
	}
	l.canaryIntact(t)
	// A second promote with the same aside fails rather than replace it.
	if err := d.promote(l.one, uuidOf(t, l.dst+"/"+l.one), sub, aside, "m", &bytes.Buffer{}); err == nil {
		t.Fatal("an existing aside was replaced")
	}
}

// Whatever the copy's data holds under the marker's name, the promote
// writes its marker: an NFS client's root or a stream can put a directory
// there, which unlinkat refuses (and the promote failed after the
// failover's fence, every resume alike). A directory, empty or not, is
// renamed aside in the new subvolume, its content kept and the move said;
// a file, a FIFO or a symlink (never followed) is unlinked.
func TestPromoteWritesItsMarkerWhateverHoldsTheName(t *testing.T) {
	l := newLab(t)
	d := open(t, l.dst)
	for i, c := range []struct {
		what, plant string
		moved       bool
	}{
		{"an empty directory", "mkdir .hoctl-failover", true},
		{"a directory with a file", "mkdir .hoctl-failover && echo keep > .hoctl-failover/keep", true},
		{"a symlink to the canary", "ln -s " + l.canary + " .hoctl-failover", false},
		{"a FIFO", "mkfifo .hoctl-failover", false},
		{"a file", "echo old > .hoctl-failover", false},
	} {
		name := fmt.Sprintf("services@2030010%dT000000Z", i+1)
		sh(t, "cd "+l.sub+" && rm -rf .hoctl-failover && "+c.plant+" && cd .. && btrfs -q subvolume snapshot -r services dst/"+name)
		sub := fmt.Sprintf("%s/promoted%d", l.mnt, i)
		var out bytes.Buffer
		if err := d.promote(name, uuidOf(t, l.dst+"/"+name), sub, sub+".aside", "hoctl failover services to c1 tok", &out); err != nil {
			t.Fatalf("%s under the marker's name: %v", c.what, err)
		}
		if fi, err := os.Lstat(sub + "/.hoctl-failover"); err != nil || !fi.Mode().IsRegular() {
			t.Fatalf("%s under the marker's name: marker %v %v", c.what, fi, err)
		}
		if b, _ := os.ReadFile(sub + "/.hoctl-failover"); string(b) != "hoctl failover services to c1 tok\n" {
			t.Fatalf("%s under the marker's name: marker %q", c.what, b)
		}
		moved, err := filepath.Glob(sub + "/.hoctl-failover.moved-*")
		if err != nil {
			t.Fatal(err)
		}
		if !c.moved {
			if len(moved) != 0 || strings.Contains(out.String(), "moved-") {
				t.Fatalf("%s under the marker's name was moved, not unlinked: %v\n%s", c.what, moved, out.String())
			}
			continue
		}
		if len(moved) != 1 {
			t.Fatalf("%s under the marker's name: moved to %v", c.what, moved)
		}
		if fi, err := os.Lstat(moved[0]); err != nil || !fi.IsDir() {
			t.Fatalf("%s under the marker's name: %s is %v (%v)", c.what, moved[0], fi, err)
		}
		if !strings.Contains(out.String(), "moved "+sub+"/.hoctl-failover") || !strings.Contains(out.String(), moved[0]) {
			t.Fatalf("%s under the marker's name: the move is not said:\n%s", c.what, out.String())
		}
		if strings.Contains(c.plant, "keep") {
			if b, err := os.ReadFile(moved[0] + "/keep"); err != nil || string(b) != "keep\n" {
				t.Fatalf("%s under the marker's name: its content %q (%v)", c.what, b, err)
			}
		}
	}
	l.canaryIntact(t)
}

// The directory goes to the first free moved name: one already taken (the
// data can hold anything) is never replaced.
func TestMoveMarkerAsideNeverReplaces(t *testing.T) {
	m := btrfsImage(t)
	// The names a counter after the time would try, planted ahead (the
	// fourth attack review planted 15,104 and the promote failed): the
	// random name is none of them, and none is replaced.
	sh(t, "cd "+m+" && mkdir -p .hoctl-failover/a && for i in '' $(seq -s ' ' 1 120); do d=.hoctl-failover.moved-20300101T000000Z${i:+.$i}; mkdir $d && echo taken > $d/t; done")
	fd, err := unix.Open(m, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = unix.Close(fd) }()
	got, err := moveMarkerAside(fd, "20300101T000000Z")
	if err != nil || !regexp.MustCompile(`^\.hoctl-failover\.moved-20300101T000000Z-[0-9a-f]{16}$`).MatchString(got) {
		t.Fatalf("moved to %q (%v)", got, err)
	}
	if fi, err := os.Stat(m + "/" + got + "/a"); err != nil || !fi.IsDir() {
		t.Fatalf("the directory's content: %v %v", fi, err)
	}
	taken, _ := filepath.Glob(m + "/.hoctl-failover.moved-20300101T000000Z*/t")
	if len(taken) != 121 {
		t.Fatalf("%d planted names left, want 121", len(taken))
	}
	for _, f := range taken {
		if b, _ := os.ReadFile(f); string(b) != "taken\n" {
			t.Fatalf("a taken name was replaced: %s: %q", f, b)
		}
	}
	if _, err := os.Lstat(m + "/.hoctl-failover"); err == nil {
		t.Fatal("the marker's name is still taken")
	}
}

// The send opens the snapshot and its parent by their names in the source
// dir: after a failover that dir holds names a stream wrote, and a
// symlink named like the parent (to a subvolume outside the dir, which
// `btrfs send -p PATH` followed and read) is refused, as is a FIFO, a
// device, a file or a directory. The real send's stream is received.
func TestSendRefusesPlantedParent(t *testing.T) {
	l := newLab(t)
	d := open(t, l.src)
	victimUUID := uuidOf(t, l.outside)
	for i, what := range planted {
		name := "services@2020010" + string(rune('1'+i)) + "T000000Z"
		plant(t, l.src, name, what, l.outside)
		var out bytes.Buffer
		if err := d.send(context.Background(), l.two, name, victimUUID, &out, &bytes.Buffer{}); err == nil || out.Len() != 0 {
			t.Fatalf("a %s named like the parent: %v, %d bytes sent", what, err, out.Len())
		}
		var out2 bytes.Buffer
		if err := d.send(context.Background(), name, "", "", &out2, &bytes.Buffer{}); err == nil || out2.Len() != 0 {
			t.Fatalf("a %s named like the snapshot: %v, %d bytes sent", what, err, out2.Len())
		}
	}
	if err := d.send(context.Background(), l.two, l.one, victimUUID, &bytes.Buffer{}, &bytes.Buffer{}); err == nil {
		t.Fatal("a parent with another UUID than listed was used")
	}
	var stream bytes.Buffer
	if err := d.send(context.Background(), l.two, l.one, uuidOf(t, l.src+"/"+l.one), &stream, &bytes.Buffer{}); err != nil {
		t.Fatal(err)
	}
	recv := exec.Command("btrfs", "receive", "-q", l.dst)
	recv.Stdin = &stream
	if out, err := recv.CombinedOutput(); err != nil {
		t.Fatalf("receiving the incremental stream: %v: %s", err, out)
	}
	if b, _ := os.ReadFile(l.dst + "/" + l.two + "/data"); string(b) != "two\n" {
		t.Fatalf("received data %q", b)
	}
	l.canaryIntact(t)
}

// The source's new snapshot is created by name in the dir's descriptor:
// anything already under the name (a symlink to a directory outside, into
// which `btrfs subvolume snapshot -r SUB DIR/NAME` made the snapshot) fails.
func TestSnapshotIntoRefusesExistingNames(t *testing.T) {
	l := newLab(t)
	d := open(t, l.src)
	for i, what := range planted {
		name := "services@2030010" + string(rune('1'+i)) + "T000000Z"
		plant(t, l.src, name, what, l.mnt+"/victim")
		if err := d.snapshotInto(l.sub, name, &bytes.Buffer{}); err == nil {
			t.Fatalf("a snapshot was made over a %s", what)
		}
	}
	if es, _ := os.ReadDir(l.mnt + "/victim"); len(es) != 1 {
		t.Fatalf("the dir outside holds %d entries", len(es))
	}
	name := "services@20300201T000000Z"
	if err := d.snapshotInto(l.sub, name, &bytes.Buffer{}); err != nil {
		t.Fatal(err)
	}
	if e := d.entry(name); e.Kind != KindSubvolume || !e.ReadOnly {
		t.Fatalf("%+v", e)
	}
	if err := d.snapshotInto(l.mnt+"/canary", "services@20300301T000000Z", &bytes.Buffer{}); err == nil {
		t.Fatal("a file was snapshotted")
	}
}

// TestMain lets this test binary stand in for hoctl on a "local" host:
// the commands a run builds for one (hoctlOn) run `<this binary> dir-op ...`.
func TestMain(m *testing.M) {
	if len(os.Args) > 2 && os.Args[1] == "dir-op" {
		req, err := HostOp(os.Args[2], os.Args[3:])
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(126)
		}
		code, err := req.Exec(context.Background(), os.Stdin, os.Stdout, os.Stderr)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
		}
		os.Exit(code)
	}
	os.Exit(m.Run())
}

// The source's half of the send as a run builds it, run as it runs on a
// host: with the parent's name taken by a symlink to a read-only
// subvolume outside the dir (which `btrfs send -p DIR/NAME` followed and
// read), it sends nothing and fails; with the real parent, its stream is
// received.
func TestSenderCommandNeverFollowsAPlantedParent(t *testing.T) {
	l := newLab(t)
	local := sshexec.NewLocal(&sshexec.Target{Name: "zippy"})
	r := &Run{Ends: Ends{SourceDir: l.src, Base: "services"}, newName: l.two}
	planted := "services@20250101T000000Z"
	plant(t, l.src, planted, "symlink", l.outside)
	r.parent = &btrfs.Common{Source: btrfs.Snapshot{Subvolume: btrfs.Subvolume{UUID: uuidOf(t, l.outside), Path: l.src + "/" + planted}}}
	res, err := local.Run(context.Background(), r.senderCmd(local))
	if err == nil || len(res.Stdout) != 0 {
		t.Fatalf("a send with the planted parent: %v, %d bytes sent", err, len(res.Stdout))
	}
	r.parent.Source.Subvolume = btrfs.Subvolume{UUID: uuidOf(t, l.src+"/"+l.one), Path: l.src + "/" + l.one}
	if res, err = local.Run(context.Background(), r.senderCmd(local)); err != nil {
		t.Fatalf("the real send: %s", sshexec.FirstLine(res, err))
	}
	recv := exec.Command("btrfs", "receive", "-q", l.dst)
	recv.Stdin = bytes.NewReader(res.Stdout)
	if out, err := recv.CombinedOutput(); err != nil {
		t.Fatalf("receiving: %v: %s", err, out)
	}
	l.canaryIntact(t)
}
