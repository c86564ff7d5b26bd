package failover

import "testing"

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
