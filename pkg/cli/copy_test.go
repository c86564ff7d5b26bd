package cli

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hoctl/hoctl/pkg/inventory"
	"github.com/hoctl/hoctl/pkg/sshexec"
)

// localConnector runs every host's commands on this machine for real.
type localConnector struct{}

func (localConnector) Runner(_ context.Context, h *inventory.Host) (sshexec.Runner, error) {
	return sshexec.NewLocal(&sshexec.Target{Name: h.Name, Address: "local", Become: "none"}), nil
}
func (localConnector) Close() error { return nil }

func copyHarness(t *testing.T) (*harness, string, string) {
	t.Helper()
	h := newHarness(t)
	dir := t.TempDir()
	h.inventory(t, dir, "hosts:\n  me: {address: local}\n")
	h.f.Connect = func(*inventory.Inventory) (Connector, error) { return localConnector{}, nil }
	src := filepath.Join(dir, "motd")
	if err := os.WriteFile(src, []byte("welcome\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return h, src, filepath.Join(t.TempDir(), "motd")
}

func (h *harness) reset() {
	h.out.Reset()
	h.err.Reset()
}

func TestCopyConfirmsPlansWritesAndIsUnchangedTheSecondTime(t *testing.T) {
	h, src, dest := copyHarness(t)

	// No terminal, no --yes: refused, nothing written.
	if code := h.runLine("copy", "me", src, dest); code != ExitNotConfirmed {
		t.Fatalf("without --yes: exit %d\n%s%s", code, h.out, h.err)
	}
	if _, err := os.Stat(dest); !os.IsNotExist(err) {
		t.Fatalf("written without confirmation: %v", err)
	}

	// --dry-run reads the host's state and says what would change.
	h.reset()
	if code := h.runLine("--dry-run", "copy", "me", src, dest, "--mode", "600"); code != 0 {
		t.Fatalf("dry run: exit %d\n%s%s", code, h.out, h.err)
	}
	if !strings.Contains(h.out.String(), "new file; 8 bytes") || !strings.Contains(h.out.String(), "mode 0600") {
		t.Errorf("dry-run plan:\n%s", h.out)
	}
	if _, err := os.Stat(dest); !os.IsNotExist(err) {
		t.Fatalf("written by --dry-run: %v", err)
	}

	h.reset()
	if code := h.runLine("--yes", "copy", "me", src, dest, "--mode", "600"); code != 0 {
		t.Fatalf("copy: exit %d\n%s%s", code, h.out, h.err)
	}
	if b, err := os.ReadFile(dest); err != nil || string(b) != "welcome\n" {
		t.Fatalf("dest %q %v", b, err)
	}
	if fi, _ := os.Stat(dest); fi.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v", fi.Mode())
	}
	if !strings.Contains(h.err.String(), "written (new file, 8 bytes)") {
		t.Errorf("output:\n%s", h.err)
	}

	// Again, as JSON: every line an event, the host unchanged.
	h.reset()
	if code := h.runLine("--json", "--yes", "copy", "me", src, dest, "--mode", "0600"); code != 0 {
		t.Fatalf("second copy: exit %d\n%s%s", code, h.out, h.err)
	}
	unchanged := false
	for _, line := range strings.Split(strings.TrimSpace(h.out.String()), "\n") {
		var ev map[string]any
		if err := json.Unmarshal([]byte(line), &ev); err != nil {
			t.Fatalf("not JSON: %q", line)
		}
		if ev["schema"] == nil || ev["event"] == nil {
			t.Errorf("event without schema or event: %s", line)
		}
		if ev["event"] == "action" && ev["host"] == "me" && ev["output"] == "unchanged" {
			unchanged = true
		}
	}
	if !unchanged {
		t.Errorf("no action event saying unchanged:\n%s", h.out)
	}

	// history lists both runs, and shows the last one's host unchanged.
	h.reset()
	if code := h.runLine("history"); code != 0 || strings.Count(h.out.String(), " ok ") != 2 {
		t.Errorf("history (exit %d):\n%s%s", code, h.out, h.err)
	}
	h.reset()
	if code := h.runLine("history", "last"); code != 0 || !strings.Contains(h.out.String(), "unchanged") || !strings.Contains(h.out.String(), "copy motd to "+dest) {
		t.Errorf("history last (exit %d):\n%s%s", code, h.out, h.err)
	}
}

func TestCopyUsageErrors(t *testing.T) {
	h, src, dest := copyHarness(t)
	for _, args := range [][]string{
		{"copy", "me", src},
		{"copy", "me", src, "relative/dest"},
		{"copy", "me", src, dest, "--mode", "rw-r--r--"},
		{"copy", "me", src, dest, "--owner", "a b"},
		{"copy", "me", src + ".missing", dest},
		{"copy", "mee", src, dest},
	} {
		h.reset()
		if code := h.runLine(append([]string{"--yes"}, args...)...); code != ExitUsage {
			t.Errorf("%q: exit %d, want 2\n%s", args, code, h.err)
		}
	}
	if _, err := os.Stat(dest); !os.IsNotExist(err) {
		t.Fatalf("written by a refused command: %v", err)
	}
}

// A directory DEST takes the file under SRC's name, as scp and Ansible's
// copy do (it was refused: "exists and is not a regular file"); the plan
// and the journal name the file written.
func TestCopyIntoADirectory(t *testing.T) {
	h, src, _ := copyHarness(t)
	dir := t.TempDir()
	file := filepath.Join(dir, "motd")

	if code := h.runLine("--dry-run", "copy", "me", src, dir); code != 0 {
		t.Fatalf("dry run: exit %d\n%s%s", code, h.out, h.err)
	}
	if !strings.Contains(h.out.String(), "write "+src+" to "+file+" ") || !strings.Contains(h.out.String(), "new file; 8 bytes") {
		t.Errorf("dry-run plan does not name %s:\n%s", file, h.out)
	}
	h.reset()
	if code := h.runLine("--yes", "copy", "me", src, dir+"/"); code != 0 {
		t.Fatalf("copy: exit %d\n%s%s", code, h.out, h.err)
	}
	if b, err := os.ReadFile(file); err != nil || string(b) != "welcome\n" {
		t.Fatalf("%s: %q %v", file, b, err)
	}
	if !strings.Contains(h.err.String(), file+": written (new file, 8 bytes)") {
		t.Errorf("output:\n%s", h.err)
	}
	h.reset()
	if code := h.runLine("--yes", "copy", "me", src, dir); code != 0 || !strings.Contains(h.err.String(), file+": unchanged") {
		t.Fatalf("second copy: exit %d\n%s%s", code, h.out, h.err)
	}
	h.reset()
	if code := h.runLine("history", "last"); code != 0 || !strings.Contains(h.out.String(), "nothing: "+file+" is unchanged") {
		t.Errorf("history last (exit %d):\n%s%s", code, h.out, h.err)
	}
	// A trailing slash says DEST is a directory: a file there is refused.
	h.reset()
	if code := h.runLine("--yes", "copy", "me", src, file+"/"); code != ExitRefused {
		t.Errorf("DEST %s/: exit %d, want %d\n%s%s", file, code, ExitRefused, h.out, h.err)
	}
}
