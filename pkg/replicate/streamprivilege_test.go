package replicate

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"strings"
	"testing"
)

// The attack review's F2: a stream planted a setuid-root copy of id and a
// mode-0666 block device of the disk. Inert in the nosuid,nodev dir, both
// became live when failover's promote made the copy the service's
// subvolume outside it (user nobody got euid 0 and read the raw disk).
// What only root on the source makes and is never data (a device node,
// file capabilities, a mode of another length than a u64) is refused.
func TestStreamCarriesNoPrivilege(t *testing.T) {
	full := func() *testStream { return newTestStream(1).subvol(0x20) }
	incr := func() *testStream { return newTestStream(1).snapshot(0x21, 0x10) }
	parent := fakeParent{"d": kindDir, "f": kindPlain, "l": kindLink}
	xattr := func(s *testStream, p, name string) *testStream {
		return s.cmd(sendCmdSetXattr, pathAttr(sendAttrPath, p), pathAttr(sendAttrXattrName, name), testAttr{sendAttrXattrData, []byte{1, 0, 0, 2, 0, 0x20, 0, 0}})
	}
	setuid := chmod(full().mk(sendCmdMkfile, "f"), "f", 0o4755).end()
	badCRC := bytes.Clone(setuid)
	badCRC[len(badCRC)-streamCmdHeader-8] ^= 0x10 // the CHMOD's MODE, 04755 -> 04775, its crc not written anew
	refused := []struct {
		name   string
		stream []byte
		want   string
	}{
		{"a block device of the disk, mode 0666 (F2)", mknod(full(), "disk", 0o60666, 7<<8|15).end(), "a block or character device"},
		{"a character device (/dev/mem's numbers)", mknod(full(), "mem", 0o20666, 1<<8|1).end(), "a block or character device"},
		{"a setuid block device", mknod(full(), "disk", 0o64666, 7<<8).end(), "a block or character device"},
		{"file capabilities (cap_setuid)", xattr(full().mk(sendCmdMkfile, "capped"), "capped", "security.capability").end(), "security.capability"},
		{"file capabilities on the parent's file", xattr(incr(), "f", "security.capability").end(), "security.capability"},
		{"a setuid MODE of 16 bytes (attack review 2)", full().mk(sendCmdMkfile, "f").cmd(sendCmdChmod, pathAttr(sendAttrPath, "f"), testAttr{sendAttrMode, append(binary.LittleEndian.AppendUint64(nil, 0o4755), make([]byte, 8)...)}).end(), "not the 8 of a u64"},
		{"a block device whose MODE is 16 bytes", full().cmd(sendCmdMknod, pathAttr(sendAttrPath, "disk"), u64Attr(testAttrIno, 300), testAttr{sendAttrMode, append(binary.LittleEndian.AppendUint64(nil, 0o60666), make([]byte, 8)...)}, u64Attr(sendAttrRdev, 7<<8)).end(), "not the 8 of a u64"},
		{"a 4-byte setuid MODE in a command without a path", full().cmd(sendCmdChmod, testAttr{sendAttrMode, []byte{0xed, 0x09, 0, 0}}).end(), "not the 8 of a u64"},
		{"a setuid chmod whose crc is wrong", badCRC, "crc"},
	}
	for _, c := range refused {
		var out bytes.Buffer
		err := checkStreamFor(&out, bytes.NewReader(c.stream), inDirAlways, "", parent)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want %q", c.name, err, c.want)
		}
		if !bytes.HasPrefix(c.stream, out.Bytes()) {
			t.Errorf("%s: passed bytes the stream does not hold", c.name)
		}
	}
}

func mknod(s *testStream, p string, mode, rdev uint64) *testStream {
	return s.cmd(sendCmdMknod, pathAttr(sendAttrPath, p), u64Attr(testAttrIno, 300), u64Attr(sendAttrMode, mode), u64Attr(sendAttrRdev, rdev))
}

func chmod(s *testStream, p string, mode uint64) *testStream {
	return s.cmd(sendCmdChmod, pathAttr(sendAttrPath, p), u64Attr(sendAttrMode, mode))
}

// Issue 19, finding G3: any owner of a file in the service data may make
// it setuid (an NFS client's user), and a check that refused the stream
// then stopped every replication for as long as the file kept the bit,
// and failover --primary-down with it once the copy was older than
// max_lag. The check clears the bit instead, in the stream it passes on
// (the command's crc written anew), and says so: a setuid bit anywhere,
// a setgid bit on anything not known to be a directory. A setgid
// directory is data, and passes untouched.
func TestStreamSetuidBitsAreCleared(t *testing.T) {
	full := func() *testStream { return newTestStream(1).subvol(0x20) }
	incr := func() *testStream { return newTestStream(1).snapshot(0x21, 0x10) }
	parent := fakeParent{"d": kindDir, "f": kindPlain, "l": kindLink}
	cleared := []struct {
		name   string
		stream *testStream
		modes  string // each MODE changed, before -> after
		warn   string
	}{
		{"a user's setuid file (G3)", chmod(full().mk(sendCmdMkfile, "user-tool").write("user-tool").cmd(sendCmdChown, pathAttr(sendAttrPath, "user-tool"), u64Attr(6, 1000), u64Attr(7, 1000)), "user-tool", 0o4755),
			"4755->755", `cleared the setuid bit of "user-tool" (4755 -> 0755): the copy carries no privilege`},
		{"a setuid-root file (F2)", chmod(full().mk(sendCmdMkfile, "suid-id").write("suid-id").cmd(sendCmdChown, pathAttr(sendAttrPath, "suid-id"), u64Attr(6, 0), u64Attr(7, 0)), "suid-id", 0o4755),
			"4755->755", `setuid bit of "suid-id" (4755 -> 0755)`},
		{"a setgid executable", chmod(full().mk(sendCmdMkfile, "sgid").write("sgid"), "sgid", 0o2755), "2755->755", `cleared the setgid bit of "sgid" (2755 -> 0755)`},
		{"setuid and setgid", chmod(full().mk(sendCmdMkfile, "both"), "both", 0o6755), "6755->755", `the setuid and setgid bits of "both" (6755 -> 0755)`},
		{"a setuid bit on a directory", chmod(full().mk(sendCmdMkdir, "d"), "d", 0o4755), "4755->755", `setuid bit of "d"`},
		{"setuid and setgid on a directory: setgid stays", chmod(full().mk(sendCmdMkdir, "d"), "d", 0o6775), "6775->2775", `setuid bit of "d" (6775 -> 2775)`},
		{"a setgid file made after a directory", chmod(full().mk(sendCmdMkdir, "d").mk(sendCmdMkfile, "d/sgid"), "d/sgid", 0o2755), "2755->755", `setgid bit of "d/sgid"`},
		{"a setgid bit on the directory's old name, renamed away", chmod(full().mk(sendCmdMkdir, "o1").rename("o1", "d").mk(sendCmdMkfile, "o1"), "o1", 0o2775), "2775->775", `setgid bit of "o1"`},
		{"a setgid bit on the parent's file", chmod(incr(), "f", 0o2755), "2755->755", `setgid bit of "f"`},
		{"a setgid bit on a file made where the parent's directory was", chmod(incr().cmd(sendCmdRmdir, pathAttr(sendAttrPath, "d")).mk(sendCmdMkfile, "d"), "d", 0o2755), "2755->755", `setgid bit of "d"`},
		{"a setuid FIFO by MKNOD", mknod(full(), "p", 0o14644, 0), "14644->10644", `setuid bit of "p" (4644 -> 0644)`},
		{"a setgid FIFO and socket by MKFIFO and MKSOCK", full().cmd(sendCmdMkfifo, pathAttr(sendAttrPath, "p"), u64Attr(testAttrIno, 300), u64Attr(sendAttrMode, 0o12644), u64Attr(sendAttrRdev, 0)).
			cmd(sendCmdMksock, pathAttr(sendAttrPath, "s"), u64Attr(testAttrIno, 301), u64Attr(sendAttrMode, 0o142755), u64Attr(sendAttrRdev, 0)), "12644->10644 142755->140755", `setgid bit of "s" (2755 -> 0755)`},
		{"the subvolume's root setuid", chmod(full(), "", 0o4755), "4755->755", "setuid bit of the subvolume's root"},
		{"a setuid MODE in the SUBVOL command", newTestStream(1).cmd(sendCmdSubvol, pathAttr(sendAttrPath, "services@20300101T000000Z"), uuidAttr(sendAttrUUID, 0x20), u64Attr(sendAttrMode, 0o4755)), "4755->755", `setuid bit of "services@20300101T000000Z"`},
		{"a setgid chmod without a path", full().cmd(sendCmdChmod, u64Attr(sendAttrMode, 0o2775)), "2775->775", "setgid bit of command 18 (no path)"},
		{"a version 2 stream", newTestStream(2).subvol(0x20).cmd(sendCmdMkfile, pathAttr(sendAttrPath, "f"), u64Attr(testAttrIno, 300)).
			cmd(sendCmdWrite, pathAttr(sendAttrPath, "f"), u64Attr(testAttrOffset, 0), testAttr{sendAttrData, []byte("#!/bin/sh\n")}).cmd(sendCmdChmod, pathAttr(sendAttrPath, "f"), u64Attr(sendAttrMode, 0o4711)), "4711->711", `setuid bit of "f" (4711 -> 0711)`},
	}
	for _, c := range cleared {
		in := c.stream.end()
		var out, warn bytes.Buffer
		if err := checkStreamWith(&out, bytes.NewReader(in), inDirAlways, "", parent, &streamPaths{}, &warn); err != nil {
			t.Errorf("%s: %v", c.name, err)
			continue
		}
		changed, err := strippedOnly(in, out.Bytes())
		if err != nil {
			t.Errorf("%s: %v", c.name, err)
		}
		if changed != c.modes {
			t.Errorf("%s: changed %q, want %q", c.name, changed, c.modes)
		}
		if !strings.HasPrefix(warn.String(), StreamWarning) || !strings.Contains(warn.String(), c.warn) || strings.Count(warn.String(), "\n") != strings.Count(c.modes, ">") {
			t.Errorf("%s: warned %q, want %q", c.name, warn.String(), c.warn)
		}
	}
	untouched := []struct {
		name   string
		stream *testStream
	}{
		// btrfs send's own order for a new directory: made under an
		// orphan name, renamed into place, then its owner and mode.
		{"a setgid directory, as send makes it", chmod(full().mk(sendCmdMkdir, "o257-5-0").rename("o257-5-0", "shared").cmd(sendCmdChown, pathAttr(sendAttrPath, "shared"), u64Attr(6, 0), u64Attr(7, 100)), "shared", 0o2775)},
		{"a setgid directory, its rename put off", chmod(full().mk(sendCmdMkdir, "o258-5-0"), "o258-5-0", 0o2775).rename("o258-5-0", "shared")},
		{"the subvolume's root setgid", chmod(full(), "", 0o2775)},
		{"the parent's directory made setgid", chmod(incr(), "d", 0o2775)},
		{"the parent's directory renamed, then made setgid", chmod(incr().rename("d", "e"), "e", 0o2775)},
		{"plain modes, FIFOs and sockets by MKNOD, user xattrs", chmod(mknod(mknod(full(), "p", 0o10644, 0), "s", 0o140755, 0).mk(sendCmdMkfile, "f"), "f", 0o1777).
			cmd(sendCmdSetXattr, pathAttr(sendAttrPath, "f"), pathAttr(sendAttrXattrName, "user.mime_type"), pathAttr(sendAttrXattrData, "text/plain"))},
	}
	for _, c := range untouched {
		in := c.stream.end()
		var out, warn bytes.Buffer
		if err := checkStreamWith(&out, bytes.NewReader(in), inDirAlways, "", parent, &streamPaths{}, &warn); err != nil || !bytes.Equal(out.Bytes(), in) || warn.Len() != 0 {
			t.Errorf("%s: %v; passed whole: %v; warned %q", c.name, err, bytes.Equal(out.Bytes(), in), warn.String())
		}
	}
}

// A stream of many setuid files says the first maxStripWarnings, then
// how many in all: the warnings stay a few lines whatever the stream.
func TestStreamStripWarningsAreBounded(t *testing.T) {
	s := newTestStream(1).subvol(0x20)
	const files = 1000
	for i := range files {
		p := fmt.Sprintf("f%d", i)
		s = chmod(s.mk(sendCmdMkfile, p), p, 0o4755)
	}
	var out, warn bytes.Buffer
	if err := checkStreamWith(&out, bytes.NewReader(s.end()), inDirAlways, "", nil, &streamPaths{}, &warn); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(warn.String(), "\n"), "\n")
	if len(lines) != maxStripWarnings+1 || !strings.Contains(lines[maxStripWarnings-1], `"f19"`) ||
		!strings.Contains(lines[maxStripWarnings], fmt.Sprintf("in %d more commands, not named (%d in all)", files-maxStripWarnings, files)) {
		t.Errorf("%d lines:\n%s", len(lines), warn.String())
	}
}

// strippedOnly says how out differs from in ("" when it does not), or
// why it differs otherwise than a stream whose MODEs lost bits 06000:
// out must hold the same commands, each with a valid crc in both, and
// differ from in only in those bits of a MODE and in those commands'
// crcs (a valid crc over the same bytes is the same crc).
func strippedOnly(in, out []byte) (string, error) {
	var changed []string
	hl := len(streamMagic) + 4
	if len(in) < hl || len(out) != len(in) || !bytes.Equal(in[:hl], out[:hl]) {
		return "", fmt.Errorf("%d bytes passed of %d, or another header", len(out), len(in))
	}
	version := binary.LittleEndian.Uint32(in[len(streamMagic):])
	for off := hl; off < len(in); {
		if len(in)-off < streamCmdHeader {
			return "", fmt.Errorf("a cut command at %d", off)
		}
		n := int(binary.LittleEndian.Uint32(in[off:]))
		end := off + streamCmdHeader + n
		if end > len(in) {
			return "", fmt.Errorf("a cut command at %d", off)
		}
		ic, oc := bytes.Clone(in[off:end]), bytes.Clone(out[off:end])
		for _, c := range [][]byte{ic, oc} {
			crc := binary.LittleEndian.Uint32(c[6:])
			clear(c[6:10])
			if got := btrfsCRC(c); got != crc {
				return "", fmt.Errorf("command at %d: crc %08x, want %08x", off, crc, got)
			}
		}
		oa, err := parseAttrs(oc[streamCmdHeader:], version)
		if err != nil {
			return "", err
		}
		if v := oa[sendAttrMode]; len(v) == 8 {
			ia, _ := parseAttrs(ic[streamCmdHeader:], version)
			before, after := binary.LittleEndian.Uint64(ia[sendAttrMode]), binary.LittleEndian.Uint64(v)
			if after != before {
				if before&^after&^(modeSetuid|modeSetgid) != 0 || after&^before != 0 {
					return "", fmt.Errorf("command at %d: mode %o became %o", off, before, after)
				}
				changed = append(changed, fmt.Sprintf("%o->%o", before, after))
				copy(v, ia[sendAttrMode]) // the rest must be the same bytes
			}
		}
		if !bytes.Equal(oc, ic) {
			return "", fmt.Errorf("command at %d changed otherwise than in its mode's bits 06000", off)
		}
		off = end
	}
	return strings.Join(changed, " "), nil
}
