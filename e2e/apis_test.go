package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hoctl/hoctl/internal/lab"
)

// The review's case on the real cluster: c1's Consul and Nomad servers
// gone (the review killed c1), c2 and c3 still up. With the servers listed under
// addresses, status reaches Consul and Nomad through c2 and says so.
func TestAPIAddressesSurviveAKilledServer(t *testing.T) {
	l := realCluster(t)
	data, err := os.ReadFile(l.Inventory)
	if err != nil {
		t.Fatal(err)
	}
	list := func(port int) string {
		var b strings.Builder
		b.WriteString("  addresses:\n")
		for _, h := range []string{"c1", "c2", "c3"} {
			fmt.Fprintf(&b, "    - http://%s:%d\n", l.Host(h).Addr, port)
		}
		return b.String()
	}
	inv := string(data)
	for _, r := range []struct{ single, several string }{
		{fmt.Sprintf("  address: http://%s:%d\n", l.Host("c1").Addr, lab.ConsulPort), list(lab.ConsulPort)},
		{fmt.Sprintf("  address: http://%s:%d\n", l.Host("c1").Addr, lab.NomadPort), list(lab.NomadPort)},
	} {
		if !strings.Contains(inv, r.single) {
			t.Fatalf("the lab's inventory does not point at c1 with %q:\n%s", r.single, inv)
		}
		inv = strings.Replace(inv, r.single, r.several, 1)
	}
	path := filepath.Join(t.TempDir(), "inventory.yaml")
	if err := os.WriteFile(path, []byte(inv), 0o600); err != nil {
		t.Fatal(err)
	}
	if r := hoctl(t, path, "check"); r.code != 0 {
		t.Fatalf("check of the inventory with addresses: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}

	// c1's Consul and Nomad servers stopped (their APIs refuse, as a
	// killed c1's do), not the machine: the tests after this one on the
	// same cluster find c1 as the lab booted it.
	mustInMachine(t, l, "c1", "systemctl stop consul nomad")
	t.Cleanup(func() {
		if out, err := inMachine(l, "c1", "systemctl start consul nomad"); err != nil {
			t.Errorf("c1: starting consul and nomad again: %v\n%s", err, out)
		}
		clusterAsFound(t, l)
	})
	// Status right after the kill may see an election in progress (a
	// 500 from c2: an answer, not a reason to move on); it must never
	// see a refused API, and must reach both through c2.
	wants := []string{
		fmt.Sprintf("(asked at http://%s:%d)", l.Host("c2").Addr, lab.ConsulPort),
		fmt.Sprintf("(asked at http://%s:%d)", l.Host("c2").Addr, lab.NomadPort),
	}
	var r result
	if !waitEvery(t, 3*time.Second, 90*time.Second, "status to reach both APIs through c2 after the stop", func() error {
		r = hoctl(t, path, "status")
		if strings.Contains(r.stdout, "refused the connection") {
			t.Fatalf("status reports a refused API although c2 answers:\n%s%s", r.stdout, r.stderr)
		}
		for _, w := range wants {
			if !strings.Contains(r.stdout, w) {
				return fmt.Errorf("status does not say %q (exit %d):\n%s%s", w, r.code, r.stdout, r.stderr)
			}
		}
		return nil
	}) {
		t.FailNow()
	}
	t.Logf("status with c1's servers stopped (exit %d):\n%s", r.code, r.stdout)
}
