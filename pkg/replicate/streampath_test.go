package replicate

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
)

const testAttrIno = 3

func pathAttr(typ uint16, p string) testAttr { return testAttr{typ, []byte(p)} }

func (s *testStream) mk(c uint16, p string) *testStream {
	return s.cmd(c, pathAttr(sendAttrPath, p), u64Attr(testAttrIno, 300))
}

func (s *testStream) symlink(p, target string) *testStream {
	return s.cmd(sendCmdSymlink, pathAttr(sendAttrPath, p), u64Attr(testAttrIno, 301), pathAttr(sendAttrPathLink, target))
}

func (s *testStream) rename(from, to string) *testStream {
	return s.cmd(sendCmdRename, pathAttr(sendAttrPath, from), pathAttr(sendAttrPathTo, to))
}

func (s *testStream) write(p string) *testStream {
	return s.cmd(sendCmdWrite, pathAttr(sendAttrPath, p), u64Attr(testAttrOffset, 0), testAttr{sendAttrData, []byte("x")})
}

// fakeParent is a parent snapshot's entries by path, for the on-disk
// lookups of an incremental stream.
type fakeParent map[string]pathKind

func (f fakeParent) taken([16]byte) (bool, error)         { return false, nil }
func (f fakeParent) resolvesInDir([16]byte) (bool, error) { return true, nil }
func (f fakeParent) kindIn(_ [16]byte, rel string) (pathKind, error) {
	if rel == "" {
		return kindDir, nil
	}
	if k, ok := f[rel]; ok {
		return k, nil
	}
	return kindGone, nil
}

func inDirAlways() (map[[16]byte]bool, error) {
	return map[[16]byte]bool{repeatedUUID(0x10): true}, nil
}

// Issue 19 (third attack), findings 2 and 3: receive applies a stream's
// paths under its chroot, the target dir, with plain path calls. A ".."
// component, or a symlink the stream (or the snapshot's parent) holds
// used as a directory, reached the dir itself: a stream planted files
// and renamed other snapshots there, and with two streams set the dir's
// own subvolume read-only; a write or chmod through such a symlink
// lands on what it names (the direction file). btrfs send never emits
// any of these, so the checker refuses them; everything a real send
// emits still passes.
func TestStreamStaysInItsSubvolume(t *testing.T) {
	full := func() *testStream { return newTestStream(1).subvol(0x20) }
	incr := func() *testStream { return newTestStream(1).snapshot(0x21, 0x10) }
	parent := fakeParent{"a": kindLink, "a2": kindLink, "d": kindDir, "d/l": kindLink, "d/f": kindPlain, "fifo": kindOther, "f": kindPlain}
	refused := []struct {
		name   string
		stream *testStream
		want   string
	}{
		{"a file made in the dir by ..", full().mk(sendCmdMkfile, "../planted"), "not one btrfs send writes"},
		{"another snapshot renamed by ..", full().rename("../services@20260101T000000Z", "../moved"), "not one btrfs send writes"},
		{"a rename to ..", full().mk(sendCmdMkfile, "o1").rename("o1", "../moved"), "not one btrfs send writes"},
		{"a path with an empty component", full().mk(sendCmdMkfile, "a//b"), "not one btrfs send writes"},
		{"a path with .", full().mk(sendCmdMkfile, "./b"), "not one btrfs send writes"},
		{"an absolute path", full().mk(sendCmdMkfile, "/planted"), "not one btrfs send writes"},
		{"a file made through the stream's symlink", full().symlink("a", "/").mk(sendCmdMkfile, "a/planted"), `goes through the symlink "a"`},
		{"a rename through the stream's symlink", full().symlink("a", "/").rename("a/services@20260101T000000Z", "a/moved"), "goes through the symlink"},
		{"a symlink renamed into place, then used", full().mk(sendCmdMkdir, "d").symlink("o9", "/").rename("o9", "d/l").mk(sendCmdMkfile, "d/l/x"), `goes through the symlink "d/l"`},
		{"a dir holding a symlink renamed, then used", full().mk(sendCmdMkdir, "d").symlink("d/l", "/").rename("d", "e").mk(sendCmdMkfile, "e/l/x"), `goes through the symlink "e/l"`},
		{"a write through the stream's symlink", full().symlink("l", "/.hoctl-replicate-services.direction").write("l"), "a symlink or a special file"},
		{"a chmod through the stream's symlink", full().symlink("l", "/").cmd(sendCmdChmod, pathAttr(sendAttrPath, "l"), u64Attr(5, 0o777)), "a symlink or a special file"},
		{"a write through a hard link to a symlink", full().symlink("l", "/x").cmd(sendCmdLink, pathAttr(sendAttrPath, "h"), pathAttr(sendAttrPathLink, "l")).write("h"), "a symlink or a special file"},
		{"a write to a FIFO the stream made", full().mk(sendCmdMkfifo, "p").write("p"), "a symlink or a special file"},
		{"a file made through the parent's symlink", incr().mk(sendCmdMkfile, "a/planted"), `goes through the symlink "a"`},
		{"a write through the parent's symlink", incr().write("d/l"), "a symlink or a special file"},
		{"the parent's symlink renamed, then used", incr().rename("a", "b").mk(sendCmdMkfile, "b/x"), `goes through the symlink "b"`},
		{"the parent's dir renamed, its symlink written", incr().rename("d", "e").write("e/l"), "a symlink or a special file"},
		{"a write to the parent's FIFO", incr().write("fifo"), "a symlink or a special file"},
		{"a clone read through the stream's symlink", full().symlink("l", "/x").mk(sendCmdMkfile, "f").cmd(sendCmdClone, pathAttr(sendAttrPath, "f"), uuidAttr(sendAttrCloneUUID, 0x20), pathAttr(sendAttrClonePath, "l")), "a symlink or a special file"},
		// The third attack's: a rename between two hard links of one
		// symlink does nothing (rename(2)), so the link stays; creat()
		// follows a final symlink.
		{"a symlink renamed onto its own hard link, then used", full().symlink("a", "/").cmd(sendCmdLink, pathAttr(sendAttrPath, "b"), pathAttr(sendAttrPathLink, "a")).
			rename("b", "a").cmd(sendCmdTruncate, pathAttr(sendAttrPath, "b/.hoctl-replicate-services.direction"), u64Attr(4, 0)), `goes through the symlink "b"`},
		{"the parent's hard-linked symlinks renamed onto each other, then used", incr().rename("a", "a2").mk(sendCmdMkfile, "a/x"), `goes through the symlink "a"`},
		{"a file made over the stream's symlink", full().symlink("a", "/canary").mk(sendCmdMkfile, "a"), "a symlink or a special file"},
		{"a file made over the parent's symlink", incr().mk(sendCmdMkfile, "a"), "a symlink or a special file"},
		{"a file made over the stream's FIFO", full().mk(sendCmdMkfifo, "p").mk(sendCmdMkfile, "p"), "a symlink or a special file"},
		{"a path longer than receive's PATH_MAX", full().mk(sendCmdMkfile, strings.Repeat("d/", 2100)+"f"), "receive takes at most 4096"},
		{"a clone read through the parent's symlink", incr().mk(sendCmdMkfile, "g").cmd(sendCmdClone, pathAttr(sendAttrPath, "g"), uuidAttr(sendAttrCloneUUID, 0x10), pathAttr(sendAttrClonePath, "a/x")), `goes through the symlink "a"`},
	}
	for _, c := range refused {
		err := checkStreamFor(&bytes.Buffer{}, bytes.NewReader(c.stream.end()), inDirAlways, "", parent)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want %q", c.name, err, c.want)
		}
	}
	passed := []struct {
		name   string
		stream *testStream
	}{
		// What btrfs send emits: orphan names renamed into place, data
		// written to regular files, symlinks whose targets go anywhere
		// (their content), chmod of directories.
		{"a full send's shape", full().mk(sendCmdMkdir, "o257-5-0").rename("o257-5-0", "dir").mk(sendCmdMkfile, "o258-5-0").rename("o258-5-0", "dir/file").
			write("dir/file").symlink("dir/link", "../../../etc/passwd").symlink("top", "/").cmd(sendCmdChmod, pathAttr(sendAttrPath, "dir"), u64Attr(5, 0o755)).
			cmd(sendCmdLink, pathAttr(sendAttrPath, "dir/hard"), pathAttr(sendAttrPathLink, "dir/file")).write("dir/hard")},
		{"the parent's symlink replaced by a directory", incr().cmd(sendCmdUnlink, pathAttr(sendAttrPath, "a")).mk(sendCmdMkdir, "o300-9-0").rename("o300-9-0", "a").mk(sendCmdMkfile, "a/x").write("a/x")},
		{"the parent's symlink replaced by a renamed file", incr().mk(sendCmdMkfile, "o301-9-0").rename("o301-9-0", "d/l").write("d/l")},
		{"the parent's dir renamed, its file written", incr().rename("d", "e").write("e/f")},
		{"the parent's files written and renamed", incr().write("f").rename("f", "d/g").write("d/g")},
		{"a symlink removed, then a file made there", full().symlink("l", "/").cmd(sendCmdUnlink, pathAttr(sendAttrPath, "l")).mk(sendCmdMkfile, "l").write("l")},
	}
	for _, c := range passed {
		if err := checkStreamFor(&bytes.Buffer{}, bytes.NewReader(c.stream.end()), inDirAlways, "", parent); err != nil {
			t.Errorf("%s: %v", c.name, err)
		}
	}
}

// The third attack's slow stream: thousands of links in a directory,
// renamed back and forth, cost the check a scan of every tracked entry per
// rename (hours of a core for a few MB, the dir held meanwhile). The
// check's work is bounded: such a stream is refused.
func TestStreamCheckWorkIsBounded(t *testing.T) {
	s := newTestStream(1).subvol(0x20).mk(sendCmdMkdir, "d")
	for i := 0; i < 2000; i++ {
		s.symlink(fmt.Sprintf("d/l%d", i), "/")
	}
	for i := 0; i < 1100; i++ {
		s.rename("d", "e").rename("e", "d")
	}
	err := checkStreamFor(&bytes.Buffer{}, bytes.NewReader(s.end()), inDirAlways, "", nil)
	if err == nil || !strings.Contains(err.Error(), "no stream btrfs send writes") {
		t.Fatalf("err = %v", err)
	}
}
