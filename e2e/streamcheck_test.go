package e2e

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/hoctl/hoctl/internal/lab"
	"github.com/hoctl/hoctl/pkg/btrfs"
)

const cmdSnapshot = 2

// snapshot starts the stream's subvolume as a snapshot of the subvolume
// whose UUID is parent, as an incremental send does.
func (s *sendStream) snapshot(name string, n int, parent string) *sendStream {
	return s.cmd(cmdSnapshot, aStr(attrPath, name), aUUID(attrUUID, fmt.Sprintf("0badc0de-0000-4000-8000-%012d", n)),
		aU64(attrCtransid, 7), aUUID(attrCUUID, parent), aU64(attrCCtrans, 0))
}

// Issue 19 (after the dir primitive), finding 1: btrfs receive looks a
// SNAPSHOT's parent up by UUID on the whole filesystem, from the mount
// root it opened before the chroot, so `-C DIR` did not stop a stream
// from copying a subvolume outside DIR into it. The UUID came from the
// restricted key's own listing: after a failover, the old primary's
// snapshots in the dir name its live subvolume as their parent. Through
// the filter, the listing no longer shows a parent outside the dir and
// the stream is refused before receive sees the snapshot; plain `btrfs
// receive DIR` copies the data, which proves the stream is an attack.
func TestTargetFilterRefusesSnapshotFromOutside(t *testing.T) {
	rs := storageRunners(t, "zippy", "c1")
	zippy, c1 := rs[0], rs[1]
	cleanServices(t, zippy, c1)
	keys := restrictC1Keys(t)
	must(t, c1, "btrfs subvolume delete /persist/victim >/dev/null 2>&1; btrfs subvolume create /persist/victim >/dev/null && echo old > /persist/victim/f && "+
		"btrfs subvolume snapshot -r /persist/victim /persist/services-standby/services@20261207T113000Z >/dev/null && echo TOPSECRET > /persist/victim/f && "+
		"btrfs subvolume snapshot -r /persist/services-standby/services@20261207T113000Z /persist/services-standby/services@20261207T113100Z >/dev/null")
	t.Cleanup(func() { must(t, c1, "btrfs subvolume delete /persist/victim >/dev/null 2>&1; true") })
	victim, err := btrfs.ParseShow(must(t, c1, "btrfs subvolume show /persist/victim"))
	if err != nil {
		t.Fatal(err)
	}

	code, out := sshStream(t, keys.filtered, "hoctl-dir list services", nil)
	if code != 0 || !strings.Contains(out, `"name":"services@20261207T113000Z"`) {
		t.Fatalf("listing through the filter: exit %d: %s", code, out)
	}
	if strings.Contains(out, victim.UUID) {
		t.Errorf("the restricted key's listing names the UUID of a subvolume outside the dir:\n%s", out)
	}
	// A parent in the dir is still shown: replicate checks a copy
	// descends from its parent by it.
	inDir, err := btrfs.ParseShow(must(t, c1, "btrfs subvolume show /persist/services-standby/services@20261207T113000Z"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, `"parent_uuid":"`+inDir.UUID+`"`) {
		t.Errorf("the listing hides a parent in the dir (%s):\n%s", inDir.UUID, out)
	}

	stream := newSendStream().snapshot("services@20280101T000002Z", 1, victim.UUID).bytes()
	code, out = sshStream(t, keys.filtered, "btrfs receive -C /persist/services-standby", stream)
	if code == 0 || !strings.Contains(out, "not a subvolume directly in the target dir") {
		t.Errorf("a snapshot of a subvolume outside the dir, through the filter: exit %d: %s", code, out)
	}
	if leaked := must(t, c1, "grep -rl TOPSECRET /persist/services-standby || true"); leaked != "" {
		t.Errorf("the stream copied a subvolume outside the dir into it: %s", leaked)
	}

	code, out = sshStream(t, keys.receiveOnly, "ignored: the key's forced command runs", stream)
	if leaked := must(t, c1, "grep -rl TOPSECRET /persist/services-standby || true"); leaked == "" {
		t.Errorf("control: plain btrfs receive (exit %d: %s) did not copy the subvolume outside, so the attack proves nothing", code, strings.TrimSpace(out))
	}
}

// Issue 19 (after the dir primitive), finding 2: with the subvolume's
// parent as the replication dir (the old default snapshot_dir, /persist,
// which receives the streams sent back after a failover), a stream wrote
// `../services/f` over the live subvolume: inside DIR, so -C allowed it.
// The inventory refuses such a dir (pkg/inventory); the filter, at run
// time, refuses to receive into a dir that holds a subvolume not named
// like a snapshot. Plain `btrfs receive -C /persist` is the control.
func TestTargetFilterRefusesDirHoldingTheSubvolume(t *testing.T) {
	rs := storageRunners(t, "zippy", "c1")
	zippy, c1 := rs[0], rs[1]
	cleanServices(t, zippy, c1)
	restrictC1Keys(t) // writes c1's authorized_keys, and removes it after
	dir := t.TempDir()
	key := dir + "/persist-filter"
	if out, err := lab.ToolCmd(context.Background(), "ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "persist-filter", "-f", key).CombinedOutput(); err != nil {
		t.Fatalf("ssh-keygen: %v: %s", err, out)
	}
	pub, err := os.ReadFile(key + ".pub")
	if err != nil {
		t.Fatal(err)
	}
	must(t, c1, "cat >> /root/.ssh/authorized_keys <<'EOF'\n"+`command="`+hoctlBin+` target-filter /persist",restrict `+strings.TrimSpace(string(pub))+"\nEOF")
	must(t, c1, "btrfs subvolume create /persist/services >/dev/null && echo live > /persist/services/f")
	stream := func(n int) []byte {
		return newSendStream().subvol(fmt.Sprintf("services@20300101T0000%02dZ", n), 500+n).file("../services/f", "pwned\n").bytes()
	}
	code, out := sshStream(t, key, "btrfs receive -C /persist", stream(1))
	if code == 0 || !strings.Contains(out, `holds the subvolume "services", which is not a snapshot`) {
		t.Errorf("receive into the live subvolume's parent, through the filter: exit %d: %s", code, out)
	}
	if got := must(t, c1, "cat /persist/services/f"); got != "live\n" {
		t.Errorf("the stream wrote over the live subvolume: %q", got)
	}
	// The control, with the same stream: a key forced to plain receive -C.
	ctl := dir + "/control"
	if out, err := lab.ToolCmd(context.Background(), "ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "control", "-f", ctl).CombinedOutput(); err != nil {
		t.Fatalf("ssh-keygen: %v: %s", err, out)
	}
	ctlPub, err := os.ReadFile(ctl + ".pub")
	if err != nil {
		t.Fatal(err)
	}
	must(t, c1, "cat >> /root/.ssh/authorized_keys <<'EOF'\n"+`command="btrfs receive -C /persist",restrict `+strings.TrimSpace(string(ctlPub))+"\nEOF")
	code, out = sshStream(t, ctl, "ignored", stream(2))
	if got := must(t, c1, "cat /persist/services/f"); got != "pwned\n" {
		t.Errorf("control: plain btrfs receive -C /persist (exit %d: %s) did not write over the live subvolume, so the attack proves nothing", code, strings.TrimSpace(out))
	}
}
