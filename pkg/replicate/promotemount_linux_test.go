package replicate

import (
	"bytes"
	"context"
	"os"
	"strings"
	"testing"
)

// The attack review's F2, on the unfiltered path: a copy received before
// the stream check refused them (or one whose parent held them) may
// carry a setuid file or a device node, inert in the nosuid,nodev dir;
// promote makes the copy the service's subvolume outside the dir. On a
// mount without nosuid,nodev (docs/security.md's own layout made only
// the dir a nosuid,nodev bind mount) they were live there: nobody got
// euid 0 and read the raw disk. Promote refuses such a destination
// before it moves or makes anything, and works once it is remounted.
func TestPromoteRefusesADestinationWithoutNosuidNodev(t *testing.T) {
	l := newLab(t)
	sub, aside := l.mnt+"/promoted", l.mnt+"/promoted.aside"
	promote := func() (int, string) {
		req, err := HostOp(l.dst, []string{opPromote, l.one + "=" + uuidOf(t, l.dst+"/"+l.one), sub, aside, "m"})
		if err != nil {
			t.Fatal(err)
		}
		var out bytes.Buffer
		code, err := req.Exec(context.Background(), strings.NewReader(""), &out, &out)
		if err != nil {
			t.Fatal(err)
		}
		return code, out.String()
	}
	code, out := promote()
	if code == 0 || !strings.Contains(out, "without nosuid,nodev") {
		t.Fatalf("promote onto a mount without nosuid,nodev: exit %d: %s", code, out)
	}
	if _, err := os.Lstat(sub); !os.IsNotExist(err) {
		t.Fatalf("the refused promote made %s: %v", sub, err)
	}
	sh(t, "mount -o remount,nosuid,nodev "+l.mnt)
	if code, out := promote(); code != 0 {
		t.Fatalf("promote onto a nosuid,nodev mount: exit %d: %s", code, out)
	}
	if b, _ := os.ReadFile(sub + "/data"); string(b) != "one\n" {
		t.Fatalf("promoted data %q", b)
	}
	l.canaryIntact(t)
}
