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
// absence, reloads, and only then stops; the start on the new primary
// removes it first.
func TestFenceIsARuntimeDropIn(t *testing.T) {
	r := &Run{NFS: &inventory.NFSService{Unit: "nfs-server.service"}}
	cmd := r.fenceCmd()
	d := FenceDropIn("nfs-server.service")
	if d != "/run/systemd/system/nfs-server.service.d/50-hoctl-fence.conf" {
		t.Fatalf("drop-in path %s", d)
	}
	for _, want := range []string{"mkdir -p /run/systemd/system/nfs-server.service.d", "AssertPathExists=!" + d, "> " + d, "systemctl daemon-reload", "systemctl stop nfs-server.service"} {
		if !strings.Contains(cmd, want) {
			t.Errorf("fence lacks %q: %s", want, cmd)
		}
	}
	if strings.Contains(cmd, "mask") {
		t.Errorf("fence masks: %s", cmd)
	}
	if strings.Index(cmd, "daemon-reload") > strings.Index(cmd, "systemctl stop") {
		t.Errorf("fence stops before the drop-in is loaded: %s", cmd)
	}
	un := unfenceCmd("nfs-server.service")
	if i, j := strings.Index(un, "rm -f "+d), strings.Index(un, "systemctl start"); i < 0 || j < i {
		t.Errorf("unfence must remove the drop-in before starting: %s", un)
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
