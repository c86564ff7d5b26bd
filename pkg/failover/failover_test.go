package failover

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hoctl/hoctl/pkg/inventory"
)

func TestMountUnit(t *testing.T) {
	for in, want := range map[string]string{
		"/data/services":    "data-services.mount",
		"/data/services/":   "data-services.mount",
		"/mnt/my-share":     `mnt-my\x2dshare.mount`,
		"/srv/a b":          `srv-a\x20b.mount`,
		"/persist/.hidden":  "persist-.hidden.mount", // systemd-escape -p --suffix=mount gave these
		"/data/v1.2/backup": "data-v1.2-backup.mount",
	} {
		if got := MountUnit(in); got != want {
			t.Errorf("MountUnit(%q) = %q, want %q", in, got, want)
		}
	}
}

// The fence must not be `systemctl mask --runtime`, which real systemd
// ignores for a unit in /etc/systemd/system (the e2e test on the real
// cluster shows it): it writes a runtime drop-in asserting its own
// absence and reloads (armed, before the owner key moves); the fence
// stops the unit only once systemd has that drop-in loaded, arming it
// itself when not; the start on the new primary removes it first.
func TestFenceIsARuntimeDropIn(t *testing.T) {
	r := &Run{NFS: &inventory.NFSService{Unit: "nfs-server.service"}}
	d := FenceDropIn("nfs-server.service")
	if d != "/run/systemd/system/nfs-server.service.d/50-hoctl-fence.conf" {
		t.Fatalf("drop-in path %s", d)
	}
	arm := armCmd("nfs-server.service")
	for _, want := range []string{"mkdir -p /run/systemd/system/nfs-server.service.d", "AssertPathExists=!" + d, "> " + d, "systemctl daemon-reload"} {
		if !strings.Contains(arm, want) {
			t.Errorf("arming lacks %q: %s", want, arm)
		}
	}
	cmd := r.fenceCmd()
	for _, c := range []string{arm, cmd} {
		if strings.Contains(c, "mask") {
			t.Errorf("fence masks: %s", c)
		}
	}
	if strings.Contains(arm, "systemctl stop") {
		t.Errorf("arming stops the unit: %s", arm)
	}
	loaded, armed, stop := strings.Index(cmd, "systemctl show -p DropInPaths --value nfs-server.service"), strings.Index(cmd, arm), strings.Index(cmd, "systemctl stop nfs-server.service")
	if loaded < 0 || armed < loaded || stop < armed {
		t.Errorf("the fence must check the drop-in is loaded, else arm it, and only then stop: %s", cmd)
	}
	un := unfenceCmd("nfs-server.service")
	if i, j := strings.Index(un, "rm -f "+d), strings.Index(un, "systemctl start"); i < 0 || j < i {
		t.Errorf("unfence must remove the drop-in before starting: %s", un)
	}
}

// A fence already armed (systemd lists the drop-in as loaded) stops the
// unit with no reload in the outage.
func TestFenceArmedStopsWithoutReloading(t *testing.T) {
	dir := t.TempDir()
	calls := filepath.Join(dir, "calls")
	d := FenceDropIn("nfs-server.service")
	fake := "#!/bin/sh\necho \"$*\" >> " + calls + "\nif [ \"$1\" = show ]; then echo /etc/systemd/system/nfs-server.service.d/x.conf " + d + "; fi\n"
	if err := os.WriteFile(filepath.Join(dir, "systemctl"), []byte(fake), 0o755); err != nil {
		t.Fatal(err)
	}
	r := &Run{NFS: &inventory.NFSService{Unit: "nfs-server.service"}}
	cmd := exec.Command("sh", "-c", r.fenceCmd())
	cmd.Env = append(os.Environ(), "PATH="+dir+":"+os.Getenv("PATH"))
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	got, _ := os.ReadFile(calls)
	if string(got) != "show -p DropInPaths --value nfs-server.service\nstop nfs-server.service\n" {
		t.Errorf("systemctl calls on an armed host:\n%swant only the show and the stop", got)
	}
}

// Starting the unit on the new primary happens while nothing serves:
// on a host that was never fenced, the only systemctl call is the start
// (every daemon-reload, and `systemctl unmask`, which is one, took 2-4 s
// on a loaded host; the unfence used to do both before every start).
func TestUnfenceStartsWithoutReloading(t *testing.T) {
	if _, err := os.Lstat(FenceDropIn("nfs-server.service")); err == nil {
		t.Skip("this machine has the fence drop-in itself")
	}
	dir := t.TempDir()
	calls := filepath.Join(dir, "calls")
	fake := "#!/bin/sh\necho \"$*\" >> " + calls + "\n"
	if err := os.WriteFile(filepath.Join(dir, "systemctl"), []byte(fake), 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("sh", "-c", unfenceCmd("nfs-server.service"))
	cmd.Env = append(os.Environ(), "PATH="+dir+":"+os.Getenv("PATH"))
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	got, _ := os.ReadFile(calls)
	if string(got) != "start nfs-server.service\n" {
		t.Errorf("systemctl calls on an unfenced host:\n%swant only the start", got)
	}
}

// A start the unit's checks refuse (Consul electing a leader) is tried
// again; a fence left by an earlier failover is lifted once, before.
func TestStartTriesAgain(t *testing.T) {
	if _, err := os.Lstat(FenceDropIn("nfs-server.service")); err == nil {
		t.Skip("this machine has the fence drop-in itself")
	}
	dir := t.TempDir()
	calls, failed := filepath.Join(dir, "calls"), filepath.Join(dir, "failed")
	// The first start fails, the second succeeds.
	fake := "#!/bin/sh\necho \"$*\" >> " + calls + "\nif [ \"$1\" = start ] && [ ! -e " + failed + " ]; then touch " + failed + "; exit 1; fi\n"
	if err := os.WriteFile(filepath.Join(dir, "systemctl"), []byte(fake), 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("sh", "-c", unfenceCmd("nfs-server.service"))
	cmd.Env = append(os.Environ(), "PATH="+dir+":"+os.Getenv("PATH"))
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	got, _ := os.ReadFile(calls)
	if string(got) != "start nfs-server.service\nstart nfs-server.service\n" {
		t.Errorf("systemctl calls:\n%swant two starts", got)
	}
}
