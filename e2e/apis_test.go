package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hoctl/hoctl/internal/lab"
)

// The review's case on the real cluster: c1 (a Consul server and a Nomad
// server) killed, c2 and c3 still up. With the servers listed under
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

	if err := l.Kill("c1"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		if err := l.Restart(ctx, "c1"); err != nil {
			t.Errorf("restarting c1: %v", err)
		}
	})
	// Status right after the kill may see an election in progress (a
	// 500 from c2: an answer, not a reason to move on); it must never
	// see a refused API, and must reach both through c2.
	wants := []string{
		fmt.Sprintf("(asked at http://%s:%d)", l.Host("c2").Addr, lab.ConsulPort),
		fmt.Sprintf("(asked at http://%s:%d)", l.Host("c2").Addr, lab.NomadPort),
	}
	deadline := time.Now().Add(90 * time.Second)
	for {
		r := hoctl(t, path, "status")
		if strings.Contains(r.stdout, "refused the connection") {
			t.Fatalf("status reports a refused API although c2 answers:\n%s%s", r.stdout, r.stderr)
		}
		missing := ""
		for _, w := range wants {
			if !strings.Contains(r.stdout, w) {
				missing = w
			}
		}
		if missing == "" {
			t.Logf("status with c1 killed (exit %d):\n%s", r.code, r.stdout)
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("status does not say %q within 90s of the kill (exit %d):\n%s%s", missing, r.code, r.stdout, r.stderr)
		}
		time.Sleep(3 * time.Second)
	}
}
