package replicate

import (
	"bytes"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// testStream writes a send stream by hand, as a hostile sender would.
type testStream struct{ buf bytes.Buffer }

type testAttr struct {
	typ uint16
	val []byte
}

func newTestStream(version uint32) *testStream {
	s := &testStream{}
	s.buf.WriteString(streamMagic)
	_ = binary.Write(&s.buf, binary.LittleEndian, version)
	return s
}

func (s *testStream) cmd(c uint16, attrs ...testAttr) *testStream {
	var payload []byte
	for _, a := range attrs {
		payload = binary.LittleEndian.AppendUint16(payload, a.typ)
		payload = binary.LittleEndian.AppendUint16(payload, uint16(len(a.val)))
		payload = append(payload, a.val...)
	}
	hdr := binary.LittleEndian.AppendUint32(nil, uint32(len(payload)))
	hdr = binary.LittleEndian.AppendUint16(hdr, c)
	hdr = binary.LittleEndian.AppendUint32(hdr, 0)
	binary.LittleEndian.PutUint32(hdr[6:], btrfsCRC(append(hdr, payload...)))
	s.buf.Write(hdr)
	s.buf.Write(payload)
	return s
}

func u64Attr(typ uint16, v uint64) testAttr {
	return testAttr{typ, binary.LittleEndian.AppendUint64(nil, v)}
}

func uuidAttr(typ uint16, b byte) testAttr { return testAttr{typ, bytes.Repeat([]byte{b}, 16)} }

func repeatedUUID(b byte) [16]byte {
	var u [16]byte
	copy(u[:], bytes.Repeat([]byte{b}, 16))
	return u
}

const (
	testCmdMkfile  = 3
	testCmdWrite   = 15
	testCtransid   = 2
	testAttrOffset = 18
	testAttrCPath  = 22
	testAttrCLen   = 24
)

func (s *testStream) subvol(u byte) *testStream {
	return s.cmd(sendCmdSubvol, testAttr{sendAttrPath, []byte("services@20300101T000000Z")}, uuidAttr(sendAttrUUID, u), u64Attr(testCtransid, 7))
}

func (s *testStream) snapshot(u, parent byte) *testStream {
	return s.cmd(sendCmdSnapshot, testAttr{sendAttrPath, []byte("services@20280101T000002Z")}, uuidAttr(sendAttrUUID, u),
		u64Attr(testCtransid, 7), uuidAttr(sendAttrCloneUUID, parent), u64Attr(21, 0))
}

func (s *testStream) file() *testStream {
	return s.cmd(testCmdMkfile, testAttr{sendAttrPath, []byte("f")}, u64Attr(3, 300)).
		cmd(testCmdWrite, testAttr{sendAttrPath, []byte("f")}, u64Attr(testAttrOffset, 0), testAttr{sendAttrData, []byte("data\n")})
}

func (s *testStream) clone(from byte) *testStream {
	return s.cmd(sendCmdClone, testAttr{sendAttrPath, []byte("f")}, u64Attr(testAttrOffset, 0), u64Attr(testAttrCLen, 4096),
		uuidAttr(sendAttrCloneUUID, from), u64Attr(21, 0), testAttr{testAttrCPath, []byte("secret")}, u64Attr(23, 0))
}

func (s *testStream) end() []byte { return s.cmd(sendCmdEnd).buf.Bytes() }

// inDirSet is a target dir holding subvolumes with these UUIDs.
func inDirSet(bs ...byte) (dirUUIDs, *int) {
	calls := 0
	return func() (map[[16]byte]bool, error) {
		calls++
		m := map[[16]byte]bool{}
		for _, b := range bs {
			m[repeatedUUID(b)] = true
		}
		return m, nil
	}, &calls
}

// Issue 19 (after the dir primitive), finding 1: btrfs receive looks a
// SNAPSHOT's parent up by UUID on the whole filesystem, so -C does not
// keep a stream from copying a subvolume outside the dir into it. The
// filter passes a stream on only as far as it checked it, and refuses a
// snapshot or clone of anything but the subvolume received or one
// directly in the dir, more than one subvolume, commands the version does
// not define, and anything after END; nothing of a refused command
// reaches receive.
func TestCheckStreamRefusesWhatReceiveMustNotSee(t *testing.T) {
	const inDir, outside, own = 0xd1, 0x0e, 0x55
	for _, c := range []struct {
		name   string
		stream []byte
		refuse string // "" when the stream passes whole
	}{
		{"a full stream", newTestStream(1).subvol(own).file().end(), ""},
		{"a snapshot of a subvolume in the dir", newTestStream(1).snapshot(own, inDir).file().end(), ""},
		{"a clone from the subvolume received", newTestStream(1).subvol(own).file().clone(own).end(), ""},
		{"a clone from a subvolume in the dir", newTestStream(1).subvol(own).file().clone(inDir).end(), ""},
		{"a snapshot of a subvolume outside the dir", newTestStream(1).snapshot(own, outside).end(), "not a subvolume directly in the target dir"},
		{"a clone from a subvolume outside the dir", newTestStream(1).subvol(own).file().clone(outside).end(), "neither the subvolume received"},
		{"a second subvolume", newTestStream(1).subvol(own).subvol(own + 1).end(), "a second subvolume"},
		{"a snapshot after a subvolume", newTestStream(1).subvol(own).snapshot(own+1, inDir).end(), "a second subvolume"},
		{"a command before the subvolume", newTestStream(1).file().subvol(own).end(), "before the subvolume"},
		{"an unknown command", newTestStream(1).subvol(own).cmd(99).end(), "command 99"},
		{"a version 2 command in a version 1 stream", newTestStream(1).subvol(own).cmd(sendCmdEncodedWrite).end(), "command 25"},
		{"a version 4 stream", newTestStream(4).subvol(own).end(), "version 4"},
		{"a subvolume not named like a snapshot", newTestStream(1).cmd(sendCmdSubvol, testAttr{sendAttrPath, []byte("services@x\n\tFlags: -")}, uuidAttr(sendAttrUUID, own)).end(), "not <name>@<UTC time>"},
		{"a subvolume out of the dir", newTestStream(1).cmd(sendCmdSubvol, testAttr{sendAttrPath, []byte("../services@20300101T000000Z")}, uuidAttr(sendAttrUUID, own)).end(), "not <name>@<UTC time>"},
		{"the live subvolume's name", newTestStream(1).cmd(sendCmdSubvol, testAttr{sendAttrPath, []byte("services")}, uuidAttr(sendAttrUUID, own)).end(), "not <name>@<UTC time>"},
		{"a second stream after END", append(newTestStream(1).subvol(own).end(), newTestStream(1).snapshot(own, outside).end()...), "after the END"},
		{"no END", newTestStream(1).subvol(own).file().buf.Bytes(), "ended before its END"},
		{"a repeated attribute", newTestStream(1).cmd(sendCmdSnapshot, testAttr{sendAttrPath, []byte("services@20280101T000002Z")}, uuidAttr(sendAttrUUID, own), uuidAttr(sendAttrCloneUUID, inDir), uuidAttr(sendAttrCloneUUID, outside)).end(), "twice"},
		{"a short UUID", newTestStream(1).cmd(sendCmdSnapshot, testAttr{sendAttrPath, []byte("services@20280101T000002Z")}, uuidAttr(sendAttrUUID, own), testAttr{sendAttrCloneUUID, []byte{1, 2}}).end(), "without its parent's UUID"},
		{"not a stream", []byte("#!/bin/sh\nrm -rf /\n"), "magic"},
		{"empty", nil, "empty stream"},
	} {
		t.Run(c.name, func(t *testing.T) {
			var out bytes.Buffer
			lookup, _ := inDirSet(inDir)
			err := checkStream(&out, bytes.NewReader(c.stream), lookup)
			var se *StreamError
			switch {
			case c.refuse == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case c.refuse == "" && !bytes.Equal(out.Bytes(), c.stream):
				t.Fatalf("passed %d bytes of %d, or changed them", out.Len(), len(c.stream))
			case c.refuse == "":
			case !errors.As(err, &se) || !strings.Contains(err.Error(), c.refuse):
				t.Fatalf("got %v, want a refusal saying %q", err, c.refuse)
			case se.Offset != int64(out.Len()) || !bytes.HasPrefix(c.stream, out.Bytes()):
				t.Fatalf("passed %d bytes, refused at %d: a refused command must not reach receive", out.Len(), se.Offset)
			}
		})
	}
}

// A damaged command (its crc) is refused before receive sees it, and the
// dir is looked at only when a stream names a subvolume by UUID.
func TestCheckStreamCRCAndLookup(t *testing.T) {
	s := newTestStream(1).subvol(0x55).file().end()
	bad := bytes.Clone(s)
	bad[len(bad)-12] ^= 1 // inside the WRITE's data
	lookup, calls := inDirSet()
	if err := checkStream(&bytes.Buffer{}, bytes.NewReader(bad), lookup); err == nil || !strings.Contains(err.Error(), "crc") {
		t.Errorf("a damaged command: %v", err)
	}
	if err := checkStream(&bytes.Buffer{}, bytes.NewReader(s), lookup); err != nil || *calls != 0 {
		t.Errorf("a full stream without clones: %v, %d lookups of the dir", err, *calls)
	}
}

// readStreams reads the streams btrfs send wrote (testdata/streams: a
// full and an incremental send, version 1 and 2 with compressed data,
// made on a loop-mounted btrfs; the incremental holds a CLONE and a
// SNAPSHOT of its parent).
func readStreams(t testing.TB) map[string][]byte {
	paths, err := filepath.Glob("testdata/streams/*")
	if err != nil || len(paths) == 0 {
		t.Fatalf("no streams in testdata/streams: %v", err)
	}
	out := map[string][]byte{}
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		out[filepath.Base(p)] = b
	}
	return out
}

// namedUUIDs is the UUID of the stream's first command (its subvolume)
// and every UUID its commands name as a parent or clone source.
func namedUUIDs(t testing.TB, s []byte) (own [16]byte, named [][16]byte) {
	version := binary.LittleEndian.Uint32(s[len(streamMagic):])
	for p, first := s[len(streamMagic)+4:], true; len(p) >= streamCmdHeader; first = false {
		n := int(binary.LittleEndian.Uint32(p))
		attrs, err := parseAttrs(p[streamCmdHeader:streamCmdHeader+n], version)
		if err != nil {
			t.Fatal(err)
		}
		if first {
			own, _ = attrs.uuid(sendAttrUUID)
		}
		if u, ok := attrs.uuid(sendAttrCloneUUID); ok {
			named = append(named, u)
		}
		p = p[streamCmdHeader+n:]
	}
	return own, named
}

// privileged says what in an accepted stream would be a privilege once
// promoted out of the nosuid,nodev dir ("": nothing): a device node, a
// setuid bit in any command, a setgid bit in any but a CHMOD of a
// directory the stream made (or the subvolume's root), file
// capabilities. The directories are every path a MKDIR made, and every
// path a RENAME moved one to (the old one kept too): more than the check
// counts, never fewer.
func privileged(t testing.TB, s []byte) string {
	version := binary.LittleEndian.Uint32(s[len(streamMagic):])
	dirs := map[string]bool{"": true}
	for p := s[len(streamMagic)+4:]; len(p) >= streamCmdHeader; {
		n := int(binary.LittleEndian.Uint32(p))
		cmd := binary.LittleEndian.Uint16(p[4:])
		attrs, err := parseAttrs(p[streamCmdHeader:streamCmdHeader+n], version)
		if err != nil {
			t.Fatal(err)
		}
		mode, _ := attrU64(attrs, sendAttrMode)
		path, named := attrs[sendAttrPath]
		switch {
		case cmd == sendCmdMknod && (mode&modeType == modeBlock || mode&modeType == modeChar):
			return "a device node"
		case mode&modeSetuid != 0:
			return "a setuid bit"
		case mode&modeSetgid != 0 && (cmd != sendCmdChmod || !named || !dirs[string(path)]):
			return "a setgid bit on what is not a directory the stream made"
		case cmd == sendCmdSetXattr && strings.Split(string(attrs[sendAttrXattrName]), "\x00")[0] == xattrCapabilty: // as receive reads it
			return "file capabilities"
		case cmd == sendCmdMkdir:
			dirs[string(path)] = true
		case cmd == sendCmdRename:
			from, to := string(path), string(attrs[sendAttrPathTo])
			for d := range dirs {
				if d == from || strings.HasPrefix(d, from+"/") {
					dirs[to+d[len(from):]] = true
				}
			}
		}
		p = p[streamCmdHeader+n:]
	}
	return ""
}

// What btrfs send writes passes whole, as long as the parent it names is
// in the dir; an incremental whose parent is not there is refused.
func TestCheckStreamPassesRealStreams(t *testing.T) {
	for name, s := range readStreams(t) {
		known := map[[16]byte]bool{}
		_, named := namedUUIDs(t, s)
		for _, u := range named {
			known[u] = true
		}
		var out bytes.Buffer
		if err := checkStream(&out, bytes.NewReader(s), func() (map[[16]byte]bool, error) { return known, nil }); err != nil || !bytes.Equal(out.Bytes(), s) {
			t.Errorf("%s: %v, %d of %d bytes passed", name, err, out.Len(), len(s))
		}
		if strings.HasPrefix(name, "incremental") {
			err := checkStream(&bytes.Buffer{}, bytes.NewReader(s), func() (map[[16]byte]bool, error) { return nil, nil })
			if err == nil {
				t.Errorf("%s: passed without its parent in the dir", name)
			}
		}
	}
}

// However hostile the stream, the check never panics, passes on only
// commands it read whole, each with a valid crc, changed at most in its
// MODE's setuid and setgid bits (and then its crc), passes all of them
// only when it accepts the stream, never lets a snapshot or clone name a
// subvolume outside the dir, and never passes a device node, file
// capabilities, a setuid bit or a setgid bit on anything but a directory.
func FuzzCheckStream(f *testing.F) {
	for _, s := range readStreams(f) {
		f.Add(s)
	}
	f.Add(newTestStream(1).snapshot(0x55, 0x0e).file().end())
	f.Add(newTestStream(1).subvol(0x55).file().clone(0x0e).end())
	f.Add(newTestStream(2).subvol(0x55).file().clone(0x55).end())
	f.Add(append(newTestStream(1).subvol(0x55).end(), newTestStream(1).subvol(0x56).end()...))
	// The attack review's F2: a setuid-root file and a block device.
	f.Add(newTestStream(1).subvol(0x55).file().cmd(sendCmdChmod, pathAttr(sendAttrPath, "f"), u64Attr(sendAttrMode, 0o4755)).
		cmd(sendCmdMknod, pathAttr(sendAttrPath, "disk"), u64Attr(testAttrIno, 301), u64Attr(sendAttrMode, 0o60666), u64Attr(sendAttrRdev, 7<<8)).end())
	f.Add(newTestStream(1).subvol(0x55).file().cmd(sendCmdSetXattr, pathAttr(sendAttrPath, "f"), pathAttr(sendAttrXattrName, xattrCapabilty), pathAttr(sendAttrXattrData, "\x01")).end())
	// Issue 19, G3: setuid and setgid bits, cleared; a setgid directory.
	f.Add(chmod(chmod(chmod(newTestStream(1).subvol(0x55).file().mk(sendCmdMkdir, "o1").rename("o1", "d"), "d", 0o6775), "f", 0o6755), "", 0o2775).end())
	f.Add(mknod(newTestStream(2).subvol(0x55), "p", 0o16644, 0).end())
	f.Add(newTestStream(1).cmd(sendCmdSubvol, pathAttr(sendAttrPath, "services@20300101T000000Z"), uuidAttr(sendAttrUUID, 0x55), u64Attr(sendAttrMode, 0o4755)).
		cmd(sendCmdChmod, u64Attr(sendAttrMode, 0o2755)).end())
	f.Add(newTestStream(1).subvol(0x55).file().cmd(sendCmdSetXattr, pathAttr(sendAttrPath, "f"), pathAttr(sendAttrXattrName, xattrCapabilty+"\x00x"), pathAttr(sendAttrXattrData, "\x01")).end())
	f.Fuzz(func(t *testing.T, s []byte) {
		var out bytes.Buffer
		lookup, _ := inDirSet(0xd1)
		err := checkStream(&out, bytes.NewReader(s), lookup)
		if out.Len() > len(s) {
			t.Fatalf("passed %d bytes of %d", out.Len(), len(s))
		}
		if out.Len() > 0 {
			if _, why := strippedOnly(s[:out.Len()], out.Bytes()); why != nil {
				t.Fatalf("passed what the stream does not hold: %v", why)
			}
		}
		if err == nil && out.Len() != len(s) {
			t.Fatalf("accepted, but passed %d of %d bytes", out.Len(), len(s))
		}
		var se *StreamError
		if err != nil && !errors.As(err, &se) {
			t.Fatalf("not a refusal: %v", err)
		}
		if err != nil {
			return
		}
		own, named := namedUUIDs(t, s)
		for _, u := range named {
			if u != repeatedUUID(0xd1) && u != own {
				t.Fatalf("accepted a stream naming %s, neither in the dir nor its own subvolume", uuidText(u))
			}
		}
		if why := privileged(t, out.Bytes()); why != "" {
			t.Fatalf("accepted a stream with %s", why)
		}
	})
}
