package cli

import (
	"strings"
	"testing"

	"github.com/hoctl/hoctl/pkg/sshexec"
)

// A target dir that does not exist gets what to do about it, not only
// stat's complaint.
func TestReplicateMissingTargetDirHint(t *testing.T) {
	h := newHarness(t)
	h.inventory(t, t.TempDir(), completionInventory)
	h.conn.handler = func(host string, c sshexec.Cmd) (string, string, int) {
		line := c.Line()
		switch {
		case host == "c1" && strings.Contains(line, "hoctl-dir inspect"):
			// The inspect op opens the dir first, as the primitive says it.
			return "", "ERROR: /persist/services-standby: No such file or directory\n", 1
		case host == "c1" && strings.HasPrefix(line, "stat -f"):
			return "", "stat: cannot read file system information for '/persist/services-standby': No such file or directory\n", 1
		case strings.Contains(line, "subvolume list"):
			return "", "", 0
		}
		return "services\n", "", 0
	}
	code := h.runLine("--dry-run", "replicate", "zippy", "c1")
	all := h.out.String() + h.err.String()
	if code == 0 || !strings.Contains(all, "/persist/services-standby does not exist") || !strings.Contains(all, "hoctl run c1 -- mkdir -p /persist/services-standby") || !strings.Contains(all, "btrfs") {
		t.Fatalf("exit %d:\n%s", code, all)
	}
}
