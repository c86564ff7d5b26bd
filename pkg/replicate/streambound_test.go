package replicate

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
)

// deepStream is the attack review's F3 shape (attack/t_deep2.py): a
// directory chain depth deep (each given its mode, as send does), the stream's symlink at link (a path), then
// writes writes to one file at the chain's bottom.
func deepStream(depth, writes int, link string) *testStream {
	s := newTestStream(1).subvol(0x20)
	if link != "" {
		s.symlink(link, "x")
	}
	p := "a"
	s.mk(sendCmdMkdir, p).cmd(sendCmdChmod, pathAttr(sendAttrPath, p), u64Attr(sendAttrMode, 0o755))
	for i := 1; i < depth; i++ {
		p += "/a"
		s.mk(sendCmdMkdir, p).cmd(sendCmdChmod, pathAttr(sendAttrPath, p), u64Attr(sendAttrMode, 0o755))
	}
	if link != "" && strings.HasPrefix(link, "a/") {
		// the link's directory exists only now: move it there
		s.rename(link[strings.LastIndexByte(link, '/')+1:], link)
	}
	f := p + "/f"
	s.mk(sendCmdMkfile, f)
	for i := 0; i < writes; i++ {
		s.write(f)
	}
	return s
}

// The attack review's F3: once one symlink was tracked, each command on a
// path d components deep looked up every ancestor of every directory of
// it (d³ bytes hashed), and nothing counted that: 25 s of CPU for a 4.4
// MB stream (29 KB through zstd), hours at scale, with the dir held. The
// check's lookups are counted (bytes hashed, prefixes looked up on disk)
// against a budget that grows with the stream's bytes, and a path is
// walked once, from its root, only as deep as something is tracked.
func TestStreamCheckCostIsBoundedPerByte(t *testing.T) {
	// A symlink at the chain's bottom: every prefix of every command's
	// path holds something tracked, so each command costs about d²/2.
	deep := deepStream(1000, 0, "").symlink(strings.Repeat("a/", 1000)+"l", "x")
	for i := 0; i < 400; i++ {
		deep.write(strings.Repeat("a/", 1000) + "g")
	}
	err := checkStreamFor(&bytes.Buffer{}, bytes.NewReader(deep.cmd(sendCmdMkfile, pathAttr(sendAttrPath, strings.Repeat("a/", 1000)+"g"), u64Attr(testAttrIno, 9)).end()), inDirAlways, "", nil)
	if err == nil || !strings.Contains(err.Error(), "cost the check more than") {
		t.Errorf("a symlink at the bottom of a 1000-deep chain, then 400 writes there: %v", err)
	}
	// The attack's own stream (the symlink at the top) and a real shape
	// of deep data pass, and cost the check little per byte.
	for _, c := range []struct {
		name   string
		stream *testStream
	}{
		{"t_deep2.py 1000 20 link", deepStream(1000, 20, "l")},
		{"a 50-deep tree with links beside each file", func() *testStream {
			s := newTestStream(1).subvol(0x20)
			p := ""
			for i := 0; i < 50; i++ {
				p += fmt.Sprintf("d%d/", i)
				s.mk(sendCmdMkdir, p[:len(p)-1]).mk(sendCmdMkfile, p+"f").write(p+"f").symlink(p+"l", "f")
			}
			return s
		}()},
	} {
		var paths streamPaths
		b := c.stream.end()
		if err := checkStreamWith(&bytes.Buffer{}, bytes.NewReader(b), inDirAlways, "", nil, &paths, nil); err != nil {
			t.Errorf("%s: %v", c.name, err)
		}
		if per := paths.looked / int64(len(b)); per > 64 {
			t.Errorf("%s: %d bytes looked up per stream byte", c.name, per)
		}
	}
}

// The attack review's F4: every symlink a stream makes is tracked with
// its path, and nothing bounded how many: 80,000 links at 4 KB paths
// took the filter to 360 MB, 10⁷ would take more memory than the host
// has. What the check tracks is bounded, and a stream that would exceed
// it is refused: by links at long paths (t_links.py's shape), and by
// many links at short ones.
func TestStreamCheckMemoryIsBounded(t *testing.T) {
	long := newTestStream(1).subvol(0x20)
	dir := ""
	for i := 0; i < 15; i++ {
		dir += fmt.Sprintf("d%d%s/", i, strings.Repeat("x", 248))
		long.mk(sendCmdMkdir, dir[:len(dir)-1])
	}
	for i := 0; i < 20000; i++ {
		long.symlink(fmt.Sprintf("%s%08d%s", dir, i, strings.Repeat("y", 190)), "t")
	}
	short := newTestStream(1).subvol(0x20).mk(sendCmdMkdir, "d")
	for i := 0; i < 300000; i++ {
		short.symlink(fmt.Sprintf("d/%d", i), "t")
	}
	for name, s := range map[string]*testStream{"20,000 links at 4 KB paths": long, "300,000 links at short paths": short} {
		var paths streamPaths
		err := checkStreamWith(&bytes.Buffer{}, bytes.NewReader(s.end()), inDirAlways, "", nil, &paths, nil)
		if err == nil || !strings.Contains(err.Error(), "more links, special files and moved entries than the check holds") {
			t.Errorf("%s: %v", name, err)
		}
		if paths.held > maxTrackHeld+2*maxStreamPath+2*heldPerEntry {
			t.Errorf("%s: %d bytes held, over %d", name, paths.held, maxTrackHeld)
		}
	}
}

// Tracking a link costs a lookup of each directory above it, and so does
// moving it: a directory holding links deep below it, renamed back and
// forth, moved each link (a lookup per directory above it, each time)
// at a cost of one entry against maxTrackWork. It is refused for what
// the moves cost.
func TestStreamCheckCountsTracking(t *testing.T) {
	s := deepStream(1000, 0, "")
	for i := 0; i < 40; i++ {
		s.symlink(fmt.Sprintf("%s%d", strings.Repeat("a/", 1000), i), "x")
	}
	for i := 0; i < 50; i++ {
		s.rename("a", "b").rename("b", "a")
	}
	err := checkStreamFor(&bytes.Buffer{}, bytes.NewReader(s.end()), inDirAlways, "", nil)
	if err == nil || !strings.Contains(err.Error(), "cost the check more than") {
		t.Errorf("40 links at the bottom of a 1000-deep chain, its top renamed 100 times: %v", err)
	}
}
