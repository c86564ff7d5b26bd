package e2e

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/hoctl/hoctl/pkg/btrfs"
	"github.com/hoctl/hoctl/pkg/sshexec"
)

// outsideState describes everything on c1 a stream into
// /persist/services-standby must never change: the rest of /persist (its
// own btrfs) and /data (another filesystem): names, modes, owners, link
// counts, contents and xattrs.
const outsideState = `find /persist /data -path /persist/services-standby -prune -o -printf '%p %M %s %U %G %n\n' | sort
find /persist /data -path /persist/services-standby -prune -o -type f -print0 | sort -z | xargs -0 -r sha256sum
getfattr -R -h -d -m - /persist/outside /persist/victim 2>/dev/null`

// Hand-written send streams through the target filter's key: no path in
// a stream, however crafted, reaches outside the target dir (`..`,
// absolute paths, a symlink written through, rename and link out, clone
// from a subvolume outside, xattrs, chmod and setuid). The same streams
// through a key forced to plain `btrfs receive DIR` do get out, which
// proves they are real attacks. What a stream may still plant inside the
// dir (setuid files, device nodes) is why the filter refuses to receive
// into a dir mounted without nosuid,nodev, and the plan warns.
func TestTargetFilterConfinesHostileStreams(t *testing.T) {
	rs := storageRunners(t, "zippy", "c1")
	zippy, c1 := rs[0], rs[1]
	env := stateEnv(t)
	cleanServices(t, zippy, c1)
	keys := restrictC1Keys(t)
	must(t, c1, "rm -rf /persist/outside /data/dotdot; btrfs subvolume delete /persist/victim >/dev/null 2>&1; mkdir /persist/outside && echo keep > /persist/outside/keep && "+
		"btrfs subvolume create /persist/victim >/dev/null && head -c 4096 /dev/zero | tr '\\0' S | sed 's/^/TOPSECRET/' > /persist/victim/secret && "+
		"btrfs property set -ts /persist/victim ro true")
	t.Cleanup(func() {
		must(t, c1, "umount /persist/services-standby 2>/dev/null; rm -rf /persist/outside /data/dotdot; btrfs subvolume delete /persist/victim >/dev/null 2>&1; true")
	})
	victim, err := btrfs.ParseShow(must(t, c1, "btrfs subvolume show /persist/victim"))
	if err != nil {
		t.Fatal(err)
	}
	before := must(t, c1, outsideState)

	n := 0
	sub := func() *sendStream {
		n++
		return newSendStream().subvol(fmt.Sprintf("services@20300101T00%04dZ", n), n)
	}
	attacks := []struct {
		name string
		s    *sendStream
	}{
		{"`..` file made setuid root", sub().file("../../outside/dotdot", "pwned\n").setuid("../../outside/dotdot")},
		{"`..` into another filesystem", sub().file("../../../data/dotdot", "pwned\n")},
		{"`..` in the subvolume's name", newSendStream().subvol("../outside/sv", 900).file("f", "pwned\n")},
		{"absolute path", sub().file("/persist/outside/abs", "pwned\n")},
		{"absolute symlink written through", sub().symlink("lnk", "/persist/outside").file("lnk/through", "pwned\n")},
		{"relative symlink written through", sub().symlink("rel", "../../outside").file("rel/through", "pwned\n")},
		{"rename out", sub().file("f", "pwned\n").cmd(cmdRename, aStr(attrPath, "f"), aStr(attrPathTo, "../../outside/renamed"))},
		{"mkdir out", sub().cmd(cmdMkdir, aStr(attrPath, "../../outside/newdir"), aU64(attrIno, 999))},
		{"link out", sub().file("f", "pwned\n").cmd(cmdLink, aStr(attrPath, "../../outside/linked"), aStr(attrPathLink, "f"))},
		{"link in, then chmod", sub().cmd(cmdLink, aStr(attrPath, "in"), aStr(attrPathLink, "../../outside/keep")).cmd(cmdChmod, aStr(attrPath, "in"), aU64(attrMode, 0o4777))},
		{"chmod, truncate, xattr outside", sub().cmd(cmdChmod, aStr(attrPath, "../../outside/keep"), aU64(attrMode, 0o4777)).
			cmd(cmdTruncate, aStr(attrPath, "../../outside/keep"), aU64(attrSize, 0)).
			cmd(cmdSetXattr, aStr(attrPath, "../../outside/keep"), aStr(attrXName, "user.pwned"), aStr(attrXData, "1"))},
		{"xattr through a symlink", sub().symlink("x", "/persist/outside/keep").
			cmd(cmdSetXattr, aStr(attrPath, "x"), aStr(attrXName, "user.pwned2"), aStr(attrXData, "1"))},
		{"clone from a subvolume outside", sub().file("c", "").cmd(cmdClone, aStr(attrPath, "c"), aU64(attrOffset, 0), aU64(attrCLen, 4096),
			aUUID(attrCUUID, victim.UUID), aU64(attrCCtrans, victim.Generation), aStr(attrCPath, "secret"), aU64(attrCOffset, 0))},
		{"device node and setuid file inside", sub().file("suid", "#!/bin/sh\n").setuid("suid").
			cmd(cmdMknod, aStr(attrPath, "null"), aU64(attrIno, 998), aU64(attrMode, 0o20666), aU64(attrRdev, 1<<8|3))},
	}
	for _, a := range attacks {
		code, stderr := sshStream(t, keys.filtered, "btrfs receive /persist/services-standby", a.s.bytes()) // what an older hoctl asks
		if after := must(t, c1, outsideState); after != before {
			t.Errorf("%s: through the filter (exit %d: %s), it changed c1 outside the target dir:\n--- before\n%s--- after\n%s", a.name, code, strings.TrimSpace(stderr), before, after)
			before = after
		}
	}
	if leaked := must(t, c1, "grep -rl TOPSECRET /persist/services-standby || true"); leaked != "" {
		t.Errorf("a clone read data from outside the target dir into %s", leaked)
	}
	// Inside the dir too: the stream check refuses setuid bits and device
	// nodes (attack review F2: promote made them live outside the dir).
	if got := must(t, c1, "find /persist/services-standby -mindepth 1 \\( -perm -4000 -o -type c -o -type b \\) | wc -l"); got != "0\n" {
		t.Errorf("a setuid file or a device node landed in the dir through the filter: %s", got)
	}

	// Proof the streams are attacks: plain `btrfs receive DIR` (the seed's
	// forced command) lets the same paths out.
	for _, a := range []struct {
		name, check string
		s           *sendStream
	}{
		{"`..` file made setuid root", "test -u /persist/outside/dotdot && grep -q pwned /persist/outside/dotdot", sub().file("../../outside/dotdot", "pwned\n").setuid("../../outside/dotdot")},
		{"absolute symlink written through", "grep -q pwned /persist/outside/through", sub().symlink("lnk", "/persist/outside").file("lnk/through", "pwned\n")},
		{"mkdir out", "test -d /persist/outside/newdir", sub().cmd(cmdMkdir, aStr(attrPath, "../../outside/newdir"), aU64(attrIno, 999))},
		{"xattr outside", "getfattr -n user.pwned /persist/outside/keep", sub().cmd(cmdSetXattr, aStr(attrPath, "../../outside/keep"), aStr(attrXName, "user.pwned"), aStr(attrXData, "1"))},
	} {
		code, stderr := sshStream(t, keys.receiveOnly, "ignored: the key's forced command runs", a.s.bytes())
		if _, err := c1.Run(context.Background(), sshexec.Cmd{Script: a.check}); err != nil {
			t.Errorf("control %q: plain btrfs receive (exit %d: %s) did not let it out, so the attack proves nothing", a.name, code, strings.TrimSpace(stderr))
		}
	}

	// Inside the dir a stream can still plant setuid files and device
	// nodes: the lab mounts /persist nosuid,nodev, as docs/security.md
	// asks. Without those options the filter refuses to receive at all
	// (issue 19 after the dir primitive, finding 7: a stream could MKNOD
	// a block device and then WRITE to it), the plan warns, and a
	// replication into a nosuid,nodev mount works.
	must(t, c1, "btrfs subvolume delete /persist/services-standby/* >/dev/null 2>&1; rm -rf /persist/services-standby/*")
	must(t, c1, "mount -o remount,suid,dev /persist")
	t.Cleanup(func() { must(t, c1, "mount -o remount,nosuid,nodev /persist") })
	code, out := sshStream(t, keys.filtered, "btrfs receive -C /persist/services-standby", sub().file("suid", "#!/bin/sh\n").setuid("suid").
		cmd(cmdMknod, aStr(attrPath, "null"), aU64(attrIno, 998), aU64(attrMode, 0o20666), aU64(attrRdev, 1<<8|3)).bytes())
	if code == 0 || !strings.Contains(out, "mounted without nosuid,nodev") {
		t.Errorf("receive into a dir mounted suid,dev, through the filter: exit %d: %s", code, out)
	}
	if got := must(t, c1, "find /persist/services-standby -mindepth 1 -maxdepth 2 \\( -perm -4000 -o -type c -o -type b \\) | wc -l"); got != "0\n" {
		t.Errorf("a setuid file or a device landed in the dir mounted suid,dev: %s", got)
	}
	must(t, zippy, "btrfs subvolume create /persist/services >/dev/null && echo data > /persist/services/f")
	r := hoctlEnv(t, keys.filteredInv, env, "--dry-run", "replicate", "zippy", "c1")
	if !strings.Contains(r.stderr+r.stdout, "without nosuid,nodev") {
		t.Errorf("the plan does not warn about the mount options: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	must(t, c1, "mount --bind /persist/services-standby /persist/services-standby && mount -o remount,bind,nosuid,nodev /persist/services-standby")
	r = hoctlEnv(t, keys.filteredInv, env, "--yes", "replicate", "zippy", "c1")
	if r.code != 0 || strings.Contains(r.stderr+r.stdout, "without nosuid,nodev") {
		t.Errorf("replicating into a nosuid,nodev mount: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if got, want := fp(t, c1, newest(t, c1, "/persist/services-standby")), fp(t, zippy, "/persist/services"); got != want {
		t.Error("copy differs after replicating into the nosuid,nodev mount")
	}
}

// A stream plants a symlink under a snapshot's name directly in the target
// dir (`..` from its subvolume: the filter refuses it, a key forced to
// plain `btrfs receive` does not), pointing at a subvolume outside:
// `DIR/services@20200101T000000Z -> /persist/victim`.
// Neither the filter's delete and show, nor a replication's garbage
// removal (through the filter or an unrestricted key), may follow it.
func TestTargetFilterNeverFollowsPlantedSymlinks(t *testing.T) {
	rs := storageRunners(t, "zippy", "c1")
	zippy, c1 := rs[0], rs[1]
	env := stateEnv(t)
	cleanServices(t, zippy, c1)
	keys := restrictC1Keys(t)
	must(t, c1, "btrfs subvolume delete /persist/victim >/dev/null 2>&1; btrfs subvolume create /persist/victim >/dev/null && echo precious > /persist/victim/data")
	t.Cleanup(func() { must(t, c1, "btrfs subvolume delete /persist/victim >/dev/null 2>&1; true") })
	victim, err := btrfs.ParseShow(must(t, c1, "btrfs subvolume show /persist/victim"))
	if err != nil {
		t.Fatal(err)
	}
	const link = "/persist/services-standby/services@20200101T000000Z"
	stream := newSendStream().subvol("services@20200101T000001Z", 1).symlink("../services@20200101T000000Z", "/persist/victim").bytes()
	refusedThroughTheFilter(t, c1, keys, stream, "services@20200101T000001Z")
	if code, stderr := sshStream(t, keys.receiveOnly, "ignored: the key's forced command runs", stream); code != 0 {
		t.Fatalf("planting the symlink: exit %d: %s", code, stderr)
	}
	if got := strings.TrimSpace(must(t, c1, "readlink "+link)); got != "/persist/victim" {
		t.Fatalf("the stream did not plant the link: %q", got)
	}
	victimThere := func(when string) {
		t.Helper()
		if out, err := c1.Run(context.Background(), sshexec.Cmd{Script: "grep -q precious /persist/victim/data"}); err != nil {
			t.Fatalf("%s: /persist/victim is gone: %v %s", when, err, out.Stderr)
		}
	}

	for _, cmd := range []string{"btrfs subvolume show " + link, "btrfs subvolume delete " + link} {
		code, stderr := sshStream(t, keys.filtered, cmd, nil)
		victimThere(cmd)
		if code == 0 || strings.Contains(stderr, victim.UUID) {
			t.Errorf("%s through the filter: exit %d, %s", cmd, code, stderr)
		}
	}
	out := hoctlEnv(t, keys.filteredInv, env, "snapshots", "c1")
	if strings.Contains(out.stdout+out.stderr, victim.UUID) {
		t.Errorf("listing through the filter showed the victim's UUID:\n%s%s", out.stdout, out.stderr)
	}

	must(t, zippy, "btrfs subvolume create /persist/services >/dev/null && echo data > /persist/services/f")
	for _, inv := range []string{keys.filteredInv, storage.Inventory} {
		r := hoctlEnv(t, inv, env, "--yes", "replicate", "--transport", "relay", "zippy", "c1")
		victimThere("replicate")
		if r.code != 0 {
			t.Fatalf("replicate beside the planted link: exit %d\n%s", r.code, r.stderr)
		}
		// Reported (issue 19), never taken for a snapshot.
		if strings.Contains(r.stderr, "receives: services@20200101T000000Z") || strings.Contains(r.stderr, "pruned services@20200101T000000Z") ||
			!strings.Contains(r.stderr, `"services@20200101T000000Z": symlink`) {
			t.Errorf("the planted link was taken for a snapshot, or not reported:\n%s", r.stderr)
		}
	}
}
