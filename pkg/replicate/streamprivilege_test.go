package replicate

import (
	"bytes"
	"encoding/binary"
	"strings"
	"testing"
)

// The attack review's F2: a stream planted a setuid-root copy of id and a
// mode-0666 block device of the disk. Inert in the nosuid,nodev dir, both
// became live when failover's promote made the copy the service's
// subvolume outside it (user nobody got euid 0 and read the raw disk).
// btrfs send of service data carries none of what makes a file a
// privilege (a device node of the host's disks, a setuid bit, a setgid
// executable, file capabilities), so the check refuses each; a setgid
// directory (a shared group dir) is data and passes.
func TestStreamCarriesNoPrivilege(t *testing.T) {
	full := func() *testStream { return newTestStream(1).subvol(0x20) }
	incr := func() *testStream { return newTestStream(1).snapshot(0x21, 0x10) }
	parent := fakeParent{"d": kindDir, "f": kindPlain, "l": kindLink}
	mknod := func(s *testStream, p string, mode, rdev uint64) *testStream {
		return s.cmd(sendCmdMknod, pathAttr(sendAttrPath, p), u64Attr(testAttrIno, 300), u64Attr(sendAttrMode, mode), u64Attr(sendAttrRdev, rdev))
	}
	chmod := func(s *testStream, p string, mode uint64) *testStream {
		return s.cmd(sendCmdChmod, pathAttr(sendAttrPath, p), u64Attr(sendAttrMode, mode))
	}
	xattr := func(s *testStream, p, name string) *testStream {
		return s.cmd(sendCmdSetXattr, pathAttr(sendAttrPath, p), pathAttr(sendAttrXattrName, name), testAttr{sendAttrXattrData, []byte{1, 0, 0, 2, 0, 0x20, 0, 0}})
	}
	refused := []struct {
		name   string
		stream *testStream
		want   string
	}{
		{"a block device of the disk, mode 0666 (F2)", mknod(full(), "disk", 0o60666, 7<<8|15), "a block or character device"},
		{"a character device (/dev/mem's numbers)", mknod(full(), "mem", 0o20666, 1<<8|1), "a block or character device"},
		{"a setuid-root file (F2)", chmod(full().mk(sendCmdMkfile, "suid-id").write("suid-id").cmd(sendCmdChown, pathAttr(sendAttrPath, "suid-id"), u64Attr(6, 0), u64Attr(7, 0)), "suid-id", 0o4755), "setuid"},
		{"a setuid bit on a directory", chmod(full().mk(sendCmdMkdir, "d"), "d", 0o4755), "setuid"},
		{"a setgid executable", chmod(full().mk(sendCmdMkfile, "sgid").write("sgid"), "sgid", 0o2755), "setgid"},
		{"a setgid file made after a directory", chmod(full().mk(sendCmdMkdir, "d").mk(sendCmdMkfile, "d/sgid"), "d/sgid", 0o2755), "setgid"},
		{"a setgid bit on the directory's old name, renamed away", chmod(full().mk(sendCmdMkdir, "o1").rename("o1", "d").mk(sendCmdMkfile, "o1"), "o1", 0o2775), "setgid"},
		{"a setgid bit on the parent's file", chmod(incr(), "f", 0o2755), "setgid"},
		{"a setgid bit on a file made where the parent's directory was", chmod(incr().cmd(sendCmdRmdir, pathAttr(sendAttrPath, "d")).mk(sendCmdMkfile, "d"), "d", 0o2755), "setgid"},
		{"file capabilities (cap_setuid)", xattr(full().mk(sendCmdMkfile, "capped"), "capped", "security.capability"), "security.capability"},
		{"file capabilities on the parent's file", xattr(incr(), "f", "security.capability"), "security.capability"},
		{"a setuid MODE of 16 bytes (attack review 2)", full().mk(sendCmdMkfile, "f").cmd(sendCmdChmod, pathAttr(sendAttrPath, "f"), testAttr{sendAttrMode, append(binary.LittleEndian.AppendUint64(nil, 0o4755), make([]byte, 8)...)}), "not the 8 of a u64"},
		{"a block device whose MODE is 16 bytes", full().cmd(sendCmdMknod, pathAttr(sendAttrPath, "disk"), u64Attr(testAttrIno, 300), testAttr{sendAttrMode, append(binary.LittleEndian.AppendUint64(nil, 0o60666), make([]byte, 8)...)}, u64Attr(sendAttrRdev, 7<<8)), "not the 8 of a u64"},
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
	for _, c := range passed {
		if err := checkStreamFor(&bytes.Buffer{}, bytes.NewReader(c.stream.end()), inDirAlways, "", parent); err != nil {
			t.Errorf("%s: %v", c.name, err)
		}
	}
}
