package replicate

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// The attack's streams, through the filter and a real btrfs receive:
// none may plant, rename or write anything in the dir but the subvolume
// it makes (issue 19, third attack, findings 2 and 3).
func TestStreamCannotTouchTheDirOnRealBtrfs(t *testing.T) {
	m := btrfsImage(t)
	dst := m + "/dst"
	sh(t, `mount -o remount,nosuid,nodev `+m+` && cd `+m+` && mkdir dst
btrfs -q subvolume create services && echo one > services/f
btrfs -q subvolume snapshot -r services dst/services@20260101T000000Z
echo zippy > dst/.hoctl-replicate-services.direction`)
	before := dirNames(t, dst)
	streams := map[string]*testStream{
		"by ..": newTestStream(1).subvol(0x31).mk(sendCmdMkfile, "../.planted-by-stream").
			rename("../services@20260101T000000Z", "../not-a-snapshot"),
		"by its own symlink": newTestStream(1).subvol(0x32).symlink("a", "/").mk(sendCmdMkfile, "a/.planted-by-stream").
			rename("a/services@20260101T000000Z", "a/moved"),
		"writing through its symlink": newTestStream(1).subvol(0x33).symlink("l", "/.hoctl-replicate-services.direction").write("l"),
		// The third attack's two streams.
		"by a symlink renamed onto its own hard link": newTestStream(1).subvol(0x34).symlink("a", "/").
			cmd(sendCmdLink, pathAttr(sendAttrPath, "b"), pathAttr(sendAttrPathLink, "a")).rename("b", "a").
			cmd(sendCmdTruncate, pathAttr(sendAttrPath, "b/.hoctl-replicate-services.direction"), u64Attr(4, 0)).
			write("b/.hoctl-replicate-services.direction"),
		"by a file made over its symlink": newTestStream(1).subvol(0x35).symlink("a", "/.hoctl-replicate-services.direction").
			mk(sendCmdMkfile, "a").write("a"),
	}
	for name, s := range streams {
		code, out := filterReceive(t, dst, bytes.NewReader(s.end()))
		if code == 0 {
			t.Errorf("%s: received: %s", name, out)
		}
		// The receive's own unfinished subvolume may stay (garbage that
		// replicate removes); nothing else may change.
		var after []string
		for _, n := range dirNames(t, dst) {
			if n != "services@20300101T000000Z" {
				after = append(after, n)
			}
		}
		if !slices.Equal(after, before) {
			t.Errorf("%s: the dir holds %v, was %v (%s)", name, after, before, out)
		}
		if b, _ := os.ReadFile(dst + "/.hoctl-replicate-services.direction"); string(b) != "zippy\n" {
			t.Errorf("%s: the direction file holds %q", name, b)
		}
		sh(t, `cd `+dst+` && if [ -e services@20300101T000000Z ]; then btrfs -q subvolume delete services@20300101T000000Z; fi`)
	}
}

// Two receives into one dir at once could each name the other's
// subvolume while it is being made (the attack set the dir's own
// subvolume read-only that way): the second is refused while the first
// runs.
func TestOneReceiveIntoADirAtATime(t *testing.T) {
	m := btrfsImage(t)
	dst := m + "/dst"
	sh(t, `mount -o remount,nosuid,nodev `+m+` && mkdir `+dst)
	r, w := io.Pipe()
	first := make(chan string, 1)
	go func() {
		code, out := filterReceive(t, dst, r)
		first <- fmt.Sprintf("exit %d: %s", code, out)
	}()
	// Wait until the first holds the dir (a lock we cannot take).
	fd, err := unix.Open(dst, unix.O_RDONLY|unix.O_DIRECTORY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = unix.Close(fd) }()
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		err := unix.Flock(fd, unix.LOCK_EX|unix.LOCK_NB)
		if errors.Is(err, unix.EWOULDBLOCK) {
			break
		}
		if err == nil {
			_ = unix.Flock(fd, unix.LOCK_UN)
		}
		if time.Now().After(deadline) {
			t.Fatal("the first receive never held the dir")
		}
	}
	code, out := filterReceive(t, dst, bytes.NewReader(newTestStream(1).subvol(0x41).file().end()))
	if code == 0 || !strings.Contains(out, "another receive into "+dst+" is running") {
		t.Errorf("a second receive while the first runs: exit %d: %s", code, out)
	}
	_ = w.CloseWithError(errors.New("test over"))
	<-first
}

func filterReceive(t *testing.T, dst string, stream io.Reader) (int, string) {
	t.Helper()
	req, err := Filter{Dir: dst}.Allow("btrfs receive -C " + dst)
	if err != nil {
		t.Fatal(err)
	}
	var out, errOut bytes.Buffer
	code, err := req.Exec(context.Background(), stream, &out, &errOut)
	out.Write(errOut.Bytes())
	if err != nil {
		out.WriteString(err.Error())
		if code == 0 {
			code = 1
		}
	}
	return code, out.String()
}

func dirNames(t *testing.T, dir string) []string {
	t.Helper()
	es, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range es {
		names = append(names, e.Name())
	}
	return names
}

// What a real btrfs send emits passes the path check, full and
// incremental, through the filter and a real receive: nested
// directories, symlinks out of the tree (their content), hard links,
// FIFOs, and between the snapshots renamed directories, a symlink
// replaced by a directory and a directory by a symlink, files moved
// between directories and rewritten.
func TestRealSendsPassThePathCheck(t *testing.T) {
	m, other := btrfsImage(t), btrfsImage(t) // a stream's UUIDs must be new to the target's filesystem
	dst := other + "/dst"
	sh(t, `mount -o remount,nosuid,nodev `+other+` && mkdir `+dst+` && cd `+m+` && mkdir src
btrfs -q subvolume create services && cd services
mkdir -p a/b/c d e && echo 1 > a/b/c/f && echo 2 > d/g && ln -s /etc/passwd a/abs && ln -s ../../d a/b/up && ln -s d link
ln a/b/c/f a/hard && mkfifo a/fifo && ln -s e swap && head -c 300000 /dev/urandom > big
btrfs -q subvolume snapshot -r . ../src/services@20260101T000000Z
mv a z && rm link && mkdir link && echo 3 > link/x && rm swap && mv e swap && echo 4 > swap/y && ln -s z e
mv d/g z/b/c/g && echo 5 >> z/b/c/g && rm z/abs && mkdir z/abs && echo 6 > z/abs/f && head -c 1000 /dev/urandom | dd of=big conv=notrunc status=none
btrfs -q subvolume snapshot -r . ../src/services@20260101T000100Z`)
	for _, s := range []string{"btrfs send -q " + m + "/src/services@20260101T000000Z",
		"btrfs send -q -p " + m + "/src/services@20260101T000000Z " + m + "/src/services@20260101T000100Z"} {
		stream := sh(t, s+" | base64 -w0")
		raw := make([]byte, base64.StdEncoding.DecodedLen(len(stream)))
		n, err := base64.StdEncoding.Decode(raw, []byte(stream))
		if err != nil {
			t.Fatal(err)
		}
		if code, out := filterReceive(t, dst, bytes.NewReader(raw[:n])); code != 0 {
			t.Fatalf("%s: exit %d: %s", s, code, out)
		}
	}
	if diff := sh(t, "diff -r --no-dereference -x fifo "+m+"/src/services@20260101T000100Z "+dst+"/services@20260101T000100Z && echo same"); !strings.Contains(diff, "same") {
		t.Fatalf("the received copy differs: %s", diff)
	}
}
