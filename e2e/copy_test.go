package e2e

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestCopyToTheFleet: hoctl copy puts one file on 20 real sshd hosts
// (each with its own /data), checked on each host by sha256sum and stat;
// a second copy changes nothing; a host whose file drifted is the only
// one --dry-run says would change, and the only one written again; a
// runbook's copy: step does the same through the same code.
func TestCopyToTheFleet(t *testing.T) {
	src := filepath.Join(t.TempDir(), "payload.bin")
	data := make([]byte, 3<<20+17)
	if _, err := rand.Read(data); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(src, data, 0o600); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(data)
	want := hex.EncodeToString(sum[:])
	dest := fmt.Sprintf("/data/copy-%d.bin", time.Now().UnixNano())
	t.Cleanup(func() { hoctl(t, fleet.Inventory, "run", "fleet", "--", "rm -f "+dest) })

	r := hoctl(t, fleet.Inventory, "--yes", "copy", "fleet", src, dest, "--mode", "0640")
	if r.code != 0 || strings.Count(r.stderr, "written (new file, 3145745 bytes)") != fleetSize {
		t.Fatalf("copy: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	out := onHosts(t, "fleet", "sha256sum < "+dest+" | cut -d' ' -f1; stat -c %a "+dest+"; ls -a "+filepath.Dir(dest)+" | grep -c hoctl- || true")
	if n := strings.Count(out, want); n != fleetSize {
		t.Fatalf("%d hosts have sha256 %s, want %d:\n%s", n, want, fleetSize, out)
	}
	if n := strings.Count(out, "| 640\n"); n != fleetSize {
		t.Errorf("%d hosts have mode 640:\n%s", n, out)
	}
	if n := strings.Count(out, "| 0\n"); n != fleetSize {
		t.Errorf("temporary files left behind:\n%s", out)
	}

	// Nothing to do: every host unchanged.
	r = hoctl(t, fleet.Inventory, "--yes", "copy", "fleet", src, dest, "--mode", "0640")
	if r.code != 0 || strings.Count(r.stderr, "run") == 0 || strings.Count(r.stderr, ": unchanged") < fleetSize {
		t.Fatalf("second copy: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}

	// h03's copy drifts: only h03 would change, and only h03 is written.
	onHosts(t, "h03", "echo drift >> "+dest)
	r = hoctl(t, fleet.Inventory, "--dry-run", "copy", "fleet", src, dest, "--mode", "0640")
	// The plan groups hosts with the same action: h03 alone is to write.
	if r.code != 0 || !strings.Contains(r.stdout, "on h01, h02, h04, h05") || !strings.Contains(r.stdout, "is unchanged") ||
		!strings.Contains(r.stdout, "   on h03\n") || strings.Count(r.stdout, ": content;") != 1 {
		t.Fatalf("dry run after drift: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	r = hoctl(t, fleet.Inventory, "--yes", "copy", "fleet", src, dest, "--mode", "0640")
	if r.code != 0 || strings.Count(r.stderr, "written (content, 3145745 bytes)") != 1 || !strings.Contains(r.stderr, "h03 run") {
		t.Fatalf("copy after drift: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if out := onHosts(t, "h03", "sha256sum < "+dest); !strings.Contains(out, want) {
		t.Fatalf("h03 after the copy: %s", out)
	}

	// The journal has it: history lists the run as ok.
	r = hoctl(t, fleet.Inventory, "history", "last")
	if r.code != 0 || !strings.Contains(r.stdout, "copy payload.bin to "+dest) {
		t.Errorf("history last: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}

	// A copy: step in a runbook, to the odd hosts, with the mode changed.
	rb := writeRunbook(t, fmt.Sprintf("name: copy\nsteps:\n  - title: payload\n    hosts: odd\n    copy: {src: %s, dest: %s, mode: '0600'}\n", src, dest))
	r = hoctl(t, fleet.Inventory, "--yes", "runbook", "run", rb)
	if r.code != 0 || strings.Count(r.stderr, "written (mode 0640 → 0600, 3145745 bytes)") != fleetSize/2 {
		t.Fatalf("runbook copy: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	out = onHosts(t, "fleet", "stat -c %a "+dest)
	if strings.Count(out, "| 600\n") != fleetSize/2 || strings.Count(out, "| 640\n") != fleetSize/2 {
		t.Errorf("modes after the runbook:\n%s", out)
	}
}
