package replicate

import (
	"bytes"
	"context"
	"encoding/hex"
	"os/exec"
	"strconv"
	"strings"
	"testing"

	"github.com/hoctl/hoctl/pkg/btrfs"
)

// Issue 19 (re-attack), finding 3: a stream chooses its own subvolume's
// UUID, which receive records as that subvolume's received UUID. A first
// stream that plants, in the dir, a subvolume with the received UUID of
// an older subvolume outside it made the UUID "in the dir" for the
// checker; a second stream's SNAPSHOT of that UUID then made receive
// resolve it through the UUID tree to the oldest subvolume listed: the
// one outside, whose data it copied into the dir. Both streams go through
// the filter and a real btrfs receive here; neither may get the secret
// into the dir.
func TestFilterRefusesPlantedReceivedUUID(t *testing.T) {
	m := btrfsImage(t)
	sh(t, `mount -o remount,nosuid,nodev `+m+` && cd `+m+` && mkdir src victim dst
btrfs -q subvolume create secret && echo TOPSECRET > secret/f
btrfs -q subvolume snapshot -r secret src/services@20260101T000000Z
btrfs send -q src/services@20260101T000000Z | btrfs receive -q victim`)
	text := sh(t, "btrfs subvolume show "+m+"/victim/services@20260101T000000Z")
	show, err := btrfs.ParseShow(text)
	if err != nil {
		t.Fatal(err)
	}
	var stransid uint64
	for _, l := range strings.Split(text, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(l), "Send transid:"); ok {
			stransid, _ = strconv.ParseUint(strings.TrimSpace(v), 10, 64)
		}
	}
	planted, ok := parseUUID(show.ReceivedUUID)
	if !ok {
		t.Fatalf("victim's received UUID %q", show.ReceivedUUID)
	}
	dst := m + "/dst"
	receive := func(stream []byte) (int, string) {
		req, err := Filter{Dir: dst}.Allow("btrfs receive -C " + dst)
		if err != nil {
			t.Fatal(err)
		}
		// Separate buffers, as a real filter has (its stdout and stderr
		// are written from different goroutines).
		var out, errOut bytes.Buffer
		code, err := req.Exec(context.Background(), bytes.NewReader(stream), &out, &errOut)
		out.Write(errOut.Bytes())
		if err != nil {
			out.WriteString(err.Error())
			if code == 0 {
				code = 1
			}
		}
		return code, out.String()
	}
	first := newTestStream(1).cmd(sendCmdSubvol, testAttr{sendAttrPath, []byte("services@20300101T000000Z")},
		testAttr{sendAttrUUID, planted[:]}, u64Attr(testCtransid, 7)).end()
	code1, out1 := receive(first)
	second := newTestStream(1).cmd(sendCmdSnapshot, testAttr{sendAttrPath, []byte("services@20300101T000100Z")}, uuidAttr(sendAttrUUID, 0x77),
		u64Attr(testCtransid, 8), testAttr{sendAttrCloneUUID, planted[:]}, u64Attr(21, stransid)).end()
	code2, out2 := receive(second)
	if leaked, _ := exec.Command("grep", "-rl", "TOPSECRET", dst).Output(); len(leaked) > 0 {
		t.Errorf("the secret outside the dir reached it: %s(first stream: exit %d %s; second: exit %d %s)", leaked, code1, out1, code2, out2)
	}
	if code1 == 0 || !strings.Contains(out1, "already a subvolume's UUID or received UUID") {
		t.Errorf("a subvolume planted with the received UUID of one outside the dir: exit %d: %s", code1, out1)
	}
}

// A UUID resolves into the dir only when every subvolume the UUID tree
// lists for it is there: a received copy in the dir whose received UUID
// an older copy outside shares does not make it a parent receive could
// only find in the dir.
func TestResolvesInDirReadsTheUUIDTree(t *testing.T) {
	l := newLab(t)
	d := open(t, l.dst)
	src, _ := parseUUID(uuidOf(t, l.src+"/"+l.one))
	if ok, err := d.resolvesInDir(src); err != nil || ok {
		t.Errorf("the received UUID shared with a copy outside the dir: %v %v", ok, err)
	}
	if taken, err := d.taken(src); err != nil || !taken {
		t.Errorf("a UUID the filesystem has: taken %v %v", taken, err)
	}
	in, _ := parseUUID(uuidOf(t, l.dst+"/"+l.one))
	if ok, err := d.resolvesInDir(in); err != nil || !ok {
		t.Errorf("the UUID of the copy in the dir: %v %v", ok, err)
	}
	var fresh [16]byte
	copy(fresh[:], bytes.Repeat([]byte{0x5a}, 16))
	if taken, err := d.taken(fresh); err != nil || taken {
		t.Errorf("a UUID the filesystem does not have: taken %v %v", taken, err)
	}
	if ok, err := d.resolvesInDir(fresh); err != nil || ok {
		t.Errorf("a UUID nothing has resolves in the dir: %v %v", ok, err)
	}
}

func parseUUID(s string) ([16]byte, bool) {
	var u [16]byte
	b, err := hex.DecodeString(strings.ReplaceAll(s, "-", ""))
	if err != nil || len(b) != 16 {
		return u, false
	}
	copy(u[:], b)
	return u, true
}
