package replicate

import (
	"os"
	"strings"
	"syscall"
	"testing"
)

// Real btrfs send streams of service data with setgid directories (shared
// group dirs) pass the privilege check, full and incremental: new ones,
// nested ones, an existing one made setgid and moved under a new setgid
// directory (send puts off that rename: the directory is set while it
// still has its old name). A setuid file and a setgid file in a real
// stream (issue 19, G3: a user's own file, chmod 4755) land without the
// bit, the filter saying so, and their owner and data as sent.
func TestRealSendsWithSetgidDirectoriesPass(t *testing.T) {
	// Sent from one filesystem, received on another: a received UUID
	// must be new to the target's.
	m, other := btrfsImage(t), btrfsImage(t)
	dst := other + "/dst"
	snap := func(n int) string { return "services@2026010" + string(rune('0'+n)) + "T000000Z" }
	sh(t, `mount -o remount,nosuid,nodev `+other+` && mkdir `+dst+` && cd `+m+` && mkdir src
btrfs -q subvolume create services && cd services
mkdir -p shared/a/b plain old/moved && echo x > shared/a/b/f && ln -s a/b/f shared/l
chmod 2775 shared shared/a/b && chmod 0755 plain && chgrp -R 100 shared
cd .. && btrfs -q subvolume snapshot -r services src/`+snap(1))
	send := func(n int, parent string) string {
		out := m + "/stream"
		sh(t, `cd `+m+` && btrfs send -q `+parent+` -f `+out+` src/`+snap(n))
		return out
	}
	receive := func(stream string) (int, string) {
		f, err := os.Open(stream)
		if err != nil {
			t.Fatal(err)
		}
		defer func() { _ = f.Close() }()
		return filterReceive(t, dst, f)
	}
	if code, out := receive(send(1, "")); code != 0 {
		t.Fatalf("full send: exit %d: %s", code, out)
	}
	sh(t, `cd `+m+`/services && mv shared shared2 && mkdir -p new/inner && chmod 2770 new new/inner && chmod g+s plain
mkdir top && chmod 2775 top old/moved && mv old/moved top/ && echo y > top/moved/g
cd .. && btrfs -q subvolume snapshot -r services src/`+snap(2))
	if code, out := receive(send(2, "-p src/"+snap(1))); code != 0 {
		t.Fatalf("incremental send: exit %d: %s", code, out)
	}
	for _, d := range []string{"shared2", "shared2/a/b", "new", "new/inner", "plain", "top", "top/moved"} {
		fi, err := os.Stat(dst + "/" + snap(2) + "/" + d)
		if err != nil || fi.Mode()&os.ModeSetgid == 0 {
			t.Errorf("%s in the received copy: %v, %v", d, fi.Mode(), err)
		}
	}
	sh(t, `cd `+m+`/services && printf '#!/bin/sh\necho hi\n' > user-tool && chown 1000:1000 user-tool && chmod 4755 user-tool &&
echo '#!/bin/sh' > run && chmod 2755 run && cd .. && btrfs -q subvolume snapshot -r services src/`+snap(3))
	code, out := receive(send(3, "-p src/"+snap(2)))
	t.Logf("the filter and receive: %s", out)
	if code != 0 {
		t.Fatalf("a setuid and a setgid file: exit %d: %s", code, out)
	}
	for _, want := range []string{
		StreamWarning + `cleared the setuid bit of "user-tool" (4755 -> 0755): the copy carries no privilege`,
		StreamWarning + `cleared the setgid bit of "run" (2755 -> 0755)`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("the filter does not say %q:\n%s", want, out)
		}
	}
	for _, f := range []string{"user-tool", "run"} {
		fi, err := os.Stat(dst + "/" + snap(3) + "/" + f)
		if err != nil {
			t.Fatal(err)
		}
		st := fi.Sys().(*syscall.Stat_t)
		if fi.Mode()&(os.ModeSetuid|os.ModeSetgid) != 0 || fi.Mode().Perm() != 0o755 || f == "user-tool" && (st.Uid != 1000 || st.Gid != 1000 || fi.Size() != 18) {
			t.Errorf("%s in the received copy: %v, owner %d:%d, %d bytes", f, fi.Mode(), st.Uid, st.Gid, fi.Size())
		}
	}
	if fi, err := os.Stat(dst + "/" + snap(3) + "/top"); err != nil || fi.Mode()&os.ModeSetgid == 0 {
		t.Errorf("the setgid directory top beside them: %v, %v", fi.Mode(), err)
	}
}
