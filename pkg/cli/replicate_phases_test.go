package cli

import (
	"regexp"
	"strings"
	"testing"

	"github.com/hoctl/hoctl/pkg/sshexec"
)

// -v ends a replication with where its time went: each phase it reached
// and its share of the command's wall time, and the rest. Here the hosts
// answer the locks and nothing else, so the run is refused at its plan
// after connecting and locking.
func TestReplicateVerbosePrintsPhases(t *testing.T) {
	h := newHarness(t)
	h.inventory(t, t.TempDir(), completionInventory)
	h.conn.handler = func(host string, c sshexec.Cmd) (string, string, int) {
		if strings.Contains(c.Line(), "hoctl-dir lock") {
			return "locked \n", "", 0
		}
		return "", "no such command here\n", 1
	}
	code := h.runLine("-v", "--yes", "replicate", "zippy", "c1")
	line := regexp.MustCompile(`replication services phases, of [0-9.]+[mµ]?s: connect [0-9.]+[mµ]?s \([0-9]+%\), lock [0-9.]+[mµ]?s \([0-9]+%\), other [0-9.]+[mµ]?s \([0-9]+%\)`)
	if code == 0 || !line.MatchString(h.err.String()) {
		t.Fatalf("exit %d, no phase line:\n%s", code, h.err.String())
	}
}
