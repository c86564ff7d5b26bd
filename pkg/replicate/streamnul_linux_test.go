package replicate

import (
	"bytes"
	"os"
	"strings"
	"testing"
)

// receive reads a path (and an xattr name) as a C string: a NUL inside
// it cuts it there. The check must see the path receive acts on: a
// write to "l\x00x" is a write through the symlink l, and an xattr named
// "security.capability\x00x" sets file capabilities.
func TestStreamPathsWithNULAreRefused(t *testing.T) {
	m := btrfsImage(t)
	dst := m + "/dst"
	sh(t, `mount -o remount,nosuid,nodev `+m+` && mkdir `+dst+` && echo zippy > `+dst+`/.hoctl-replicate-services.direction`)
	for name, s := range map[string]*testStream{
		"a write through a symlink, its name cut by a NUL": newTestStream(1).subvol(0x41).symlink("l", "/.hoctl-replicate-services.direction").
			write("l\x00x"),
		"file capabilities, the xattr's name cut by a NUL": newTestStream(1).subvol(0x42).mk(sendCmdMkfile, "f").
			cmd(sendCmdSetXattr, pathAttr(sendAttrPath, "f"), pathAttr(sendAttrXattrName, xattrCapabilty+"\x00x"), testAttr{sendAttrXattrData, []byte{0, 0, 0, 2, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}}),
	} {
		code, out := filterReceive(t, dst, bytes.NewReader(s.end()))
		if code == 0 || !strings.Contains(out, "NUL") {
			t.Errorf("%s: exit %d: %s", name, code, out)
		}
		if b, _ := os.ReadFile(dst + "/.hoctl-replicate-services.direction"); string(b) != "zippy\n" {
			t.Errorf("%s: the direction file holds %q", name, b)
		}
		sh(t, `cd `+dst+` && for s in services@*; do if [ -e "$s" ]; then btrfs -q subvolume delete "$s"; fi; done`)
	}
}
