package failover

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hoctl/hoctl/pkg/inventory"
	"github.com/hoctl/hoctl/pkg/replicate"
	"github.com/hoctl/hoctl/pkg/sshexec"
)

// TestMain lets this test binary stand in for hoctl on a "local" host:
// the promote command failover builds runs `<this binary> dir-op ...`.
func TestMain(m *testing.M) {
	if len(os.Args) > 2 && os.Args[1] == "dir-op" {
		req, err := replicate.HostOp(os.Args[2], os.Args[3:])
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(126)
		}
		code, err := req.Exec(context.Background(), os.Stdin, os.Stdout, os.Stderr)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
		}
		os.Exit(code)
	}
	if len(os.Args) > 1 && os.Args[1] == "target-filter" {
		// Not this binary's job: running the tests again from here
		// would recurse without end.
		fmt.Fprintln(os.Stderr, "the failover test binary runs dir-op only")
		os.Exit(126)
	}
	os.Exit(m.Run())
}

func shell(t *testing.T, script string) string {
	t.Helper()
	out, err := exec.Command("sh", "-ec", script).CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v: %s", script, err, out)
	}
	return string(out)
}

// The command failover's promote step sends, run as it runs on a host: a
// symlink planted in the replication dir under the name of the copy the
// plan chose (to a read-only received subvolume outside the dir, which
// the old `btrfs subvolume snapshot DIR/NAME SUB` followed and promoted)
// is refused and nothing is made at the service's path; the real copy is
// promoted, with its marker.
func TestPromoteCommandNeverFollowsAPlantedCopy(t *testing.T) {
	m := loopBtrfs(t)
	copyName := "services@20260101T000000Z"
	shell(t, "cd "+m+` && mkdir src standby victim
btrfs -q subvolume create data && echo real > data/f && btrfs -q subvolume snapshot -r data src/`+copyName+`
btrfs send -q src/`+copyName+` | btrfs receive -q standby
echo secret > data/f && btrfs -q subvolume snapshot -r data src/services@20260101T000100Z
btrfs send -q src/services@20260101T000100Z | btrfs receive -q victim`)
	uuid := func(p string) string {
		for _, l := range strings.Split(shell(t, "btrfs subvolume show "+p), "\n") {
			if k, v, ok := strings.Cut(strings.TrimSpace(l), ":"); ok && k == "UUID" {
				return strings.TrimSpace(v)
			}
		}
		t.Fatalf("no UUID for %s", p)
		return ""
	}
	r := &Run{Opts: Options{Service: "data-services", To: "c1", Token: "tok", Now: func() time.Time { return time.Unix(1e9, 0) }},
		NFS: &inventory.NFSService{Subvolume: m + "/services"}, Ends: replicate.Ends{TargetDir: m + "/standby"}}
	local := sshexec.NewLocal(&sshexec.Target{Name: "c1"})
	planted := "services@20260101T000200Z"
	if err := os.Symlink(m+"/victim/services@20260101T000100Z", filepath.Join(m, "standby", planted)); err != nil {
		t.Fatal(err)
	}
	if res, err := local.Run(context.Background(), r.promoteCmd(local, planted, uuid(m+"/victim/services@20260101T000100Z"))); err == nil {
		t.Fatalf("the planted symlink was promoted: %s", res.Stdout)
	}
	if _, err := os.Lstat(m + "/services"); err == nil {
		b, _ := os.ReadFile(m + "/services/f")
		t.Fatalf("promote through the planted symlink made %s (it holds %q)", m+"/services", b)
	}
	if res, err := local.Run(context.Background(), r.promoteCmd(local, copyName, uuid(m+"/standby/"+copyName))); err != nil {
		t.Fatalf("promoting the real copy: %s", sshexec.FirstLine(res, err))
	}
	if b, _ := os.ReadFile(m + "/services/f"); string(b) != "real\n" {
		t.Fatalf("promoted data %q", b)
	}
	if b, _ := os.ReadFile(m + "/services/.hoctl-failover"); string(b) != r.marker()+"\n" {
		t.Fatalf("marker %q", b)
	}
}

// A directory named like the marker in the copy's data (an NFS client's
// root can make one) failed the promote after the fence; it is moved
// aside in the new subvolume, kept, and the step's line says where.
func TestPromoteStepSaysItMovedADirectoryNamedLikeTheMarker(t *testing.T) {
	m := loopBtrfs(t)
	copyName := "services@20260101T000000Z"
	shell(t, "cd "+m+` && mkdir standby
btrfs -q subvolume create data && mkdir data/.hoctl-failover && echo keep > data/.hoctl-failover/keep
btrfs -q subvolume snapshot -r data standby/`+copyName)
	var uuid string
	for _, l := range strings.Split(shell(t, "btrfs subvolume show "+m+"/standby/"+copyName), "\n") {
		if k, v, ok := strings.Cut(strings.TrimSpace(l), ":"); ok && k == "UUID" {
			uuid = strings.TrimSpace(v)
		}
	}
	r := &Run{Opts: Options{Service: "data-services", To: "c1", Token: "tok", Now: func() time.Time { return time.Unix(1e9, 0) }},
		NFS: &inventory.NFSService{Subvolume: m + "/services"}, Ends: replicate.Ends{TargetDir: m + "/standby", Base: "services"}}
	local := sshexec.NewLocal(&sshexec.Target{Name: "c1"})
	res, err := local.Run(context.Background(), r.promoteCmd(local, copyName, uuid))
	if err != nil {
		t.Fatalf("promoting a copy with a directory named like the marker: %s", sshexec.FirstLine(res, err))
	}
	if b, _ := os.ReadFile(m + "/services/.hoctl-failover"); string(b) != r.marker()+"\n" {
		t.Fatalf("marker %q", b)
	}
	moved, _ := filepath.Glob(m + "/services/.hoctl-failover.moved-*/keep")
	if len(moved) != 1 {
		t.Fatalf("the directory's content moved to %v", moved)
	}
	if said := r.promoted(copyName, res.Stdout); !strings.Contains(said, "moved "+m+"/services/.hoctl-failover (is a directory) aside to "+filepath.Dir(moved[0])) {
		t.Fatalf("the step's line does not say the move: %q", said)
	}
}

// After a failback c1 → zippy, the newest complete copy in c1's dir is
// c1's own read-only snapshot that the failback's final sync sent (c1 was
// the source then): exactly the data zippy started serving from. The
// assessment takes it as the newest complete copy (replicate.Side's
// NewestComplete), so the promote command must serve it too; it used to
// refuse it as "not a received copy" after the owner key had moved, and
// nothing served.
func TestPromoteCommandServesTheHostsOwnSnapshot(t *testing.T) {
	m := loopBtrfs(t)
	own := "services@20260101T000100Z"
	// standby is c1's replication dir: a received copy from zippy's
	// time, then c1's own snapshot of what it served, taken when it
	// was the source of the failback's final sync.
	shell(t, "cd "+m+` && mkdir src standby
btrfs -q subvolume create data && echo old > data/f && btrfs -q subvolume snapshot -r data src/services@20260101T000000Z
btrfs send -q src/services@20260101T000000Z | btrfs receive -q standby
btrfs -q subvolume snapshot standby/services@20260101T000000Z services && echo served-by-c1 > services/f
btrfs -q subvolume snapshot -r services standby/`+own)
	r := &Run{Opts: Options{Service: "data-services", To: "c1", Token: "tok", Now: func() time.Time { return time.Unix(1e9, 0) }},
		NFS: &inventory.NFSService{Subvolume: m + "/services"}, Ends: replicate.Ends{TargetDir: m + "/standby", Base: "services"}}
	local := sshexec.NewLocal(&sshexec.Target{Name: "c1"})
	var uuid string
	for _, l := range strings.Split(shell(t, "btrfs subvolume show "+m+"/standby/"+own), "\n") {
		if k, v, ok := strings.Cut(strings.TrimSpace(l), ":"); ok && k == "UUID" {
			uuid = strings.TrimSpace(v)
		}
	}
	if res, err := local.Run(context.Background(), r.promoteCmd(local, own, uuid)); err != nil {
		t.Fatalf("promoting the copy the assessment chose: %s", sshexec.FirstLine(res, err))
	}
	if b, _ := os.ReadFile(m + "/services/f"); string(b) != "served-by-c1\n" {
		t.Fatalf("promoted data %q", b)
	}
	if b, _ := os.ReadFile(m + "/services/.hoctl-failover"); string(b) != r.marker()+"\n" {
		t.Fatalf("marker %q", b)
	}
	// The snapshot promoted from stays read-only: the next replication
	// back finds it as the parent by UUID.
	if out := shell(t, "btrfs property get -ts "+m+"/standby/"+own+" ro"); strings.TrimSpace(out) != "ro=true" {
		t.Fatalf("the promoted snapshot is %s", out)
	}
}

// loopBtrfs mounts a fresh btrfs loop image for the test (root only) and
// returns its mount point, unmounted at the test's end.
func loopBtrfs(t *testing.T) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: mounts a btrfs loop image")
	}
	if _, err := exec.LookPath("mkfs.btrfs"); err != nil {
		t.Skip("mkfs.btrfs missing")
	}
	tmp := t.TempDir()
	m := tmp + "/mnt"
	shell(t, "truncate -s 256M "+tmp+"/fs.img && mkfs.btrfs -q "+tmp+"/fs.img && mkdir "+m+" && mount -o loop,nosuid,nodev "+tmp+"/fs.img "+m)
	t.Cleanup(func() {
		if out, err := exec.Command("umount", m).CombinedOutput(); err != nil {
			t.Errorf("umount: %v: %s", err, out)
		}
	})
	return m
}
