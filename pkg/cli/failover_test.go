package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestFailoverWithoutNFSSectionSaysSo(t *testing.T) {
	h := newHarness(t)
	if code := h.runLine("failover", "--to", "c1"); code != ExitUsage {
		t.Fatalf("exit %d: %s", code, h.err)
	}
	if !strings.Contains(h.err.String(), "no nfs section") || strings.Contains(h.err.String(), "()") {
		t.Fatalf("stderr: %s", h.err)
	}
}

// With Consul down, --dry-run still prints the plan, the failing checks
// marked, and exits 3 as deploy --dry-run does; nothing is run.
func TestFailoverDryRunWithConsulDownPrintsThePlan(t *testing.T) {
	h := newHarness(t)
	inv := filepath.Join(t.TempDir(), "inventory.yaml")
	body := completionInventory + `
consul:
  address: http://127.0.0.1:1
`
	if err := os.WriteFile(inv, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	state := t.TempDir()
	h.f.Getenv = func(k string) string {
		return map[string]string{"HOCTL_INVENTORY": inv, "XDG_STATE_HOME": state}[k]
	}
	code := h.runLine("--dry-run", "failover", "--to", "c1")
	out := h.out.String()
	if code != ExitRefused {
		t.Fatalf("exit %d, want 3\nstdout:\n%s\nstderr:\n%s", code, out, h.err)
	}
	for _, want := range []string{"fence zippy", "promote", "FAILS now"} {
		if !strings.Contains(out+h.err.String(), want) {
			t.Errorf("plan lacks %q:\n%s\n%s", want, out, h.err)
		}
	}
}
