package failover

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/hoctl/hoctl/pkg/inventory"
	"github.com/hoctl/hoctl/pkg/tasks"
)

// opOn is what step s does on host (its action, as planned), and on which
// host: "" when the step runs on this machine.
func actionOn(t *testing.T, s *tasks.Step) (host, action string) {
	t.Helper()
	h := &inventory.Host{Name: "local", Address: inventory.LocalAddress}
	if len(s.Hosts) > 0 {
		h, host = s.Hosts[0], s.Hosts[0].Name
	}
	d, err := s.Action.Describe(h)
	if err != nil {
		t.Fatalf("step %q: %v", s.Title, err)
	}
	return host, d
}

// The failover's safety is its order: the owner key moves and the old
// primary stops (fence) before its last writes are sent (final sync),
// the copy is promoted only after that, and NFS starts on the new
// primary last, after a check that needs the steps before it. A change
// of order fails here, not in the lab.
func TestFailoverStepOrder(t *testing.T) {
	inv := parseInv(t, resolveInv)
	consulFn := func(context.Context) (Consul, error) { return ownerConsul{"zippy"}, nil }
	for _, down := range []bool{false, true} {
		t.Run(fmt.Sprintf("primary-down=%v", down), func(t *testing.T) {
			rb, err := Resolve(context.Background(), inv, consulFn, Options{To: "c1", PrimaryDown: down})
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, s := range rb.Steps {
				host, act := actionOn(t, s)
				var what string
				switch {
				case strings.HasPrefix(s.Title, "Consul has a leader"):
					what = "lock"
				case strings.HasPrefix(s.Title, "assess:"):
					what = "assess"
				case strings.HasPrefix(s.Title, "fence zippy") && strings.Contains(act, "consul kv cas hoctl/nfs/data-services/owner zippy → c1"):
					what = "fence"
					if !down && !strings.Contains(act, "on zippy: "+(&Run{NFS: inv.NFS["data-services"]}).fenceCmd()) {
						t.Errorf("the fence does not stop nfs on zippy: %s", act)
					}
				case strings.HasPrefix(s.Title, "arm the fence on zippy") && act == "on zippy: "+armCmd("nfs-server.service"):
					what = "arm"
				case strings.HasPrefix(s.Title, "final sync: inspect"), strings.HasPrefix(s.Title, "final sync: remove garbage"):
					what = "final sync inspect"
				case strings.HasPrefix(s.Title, "final sync: send"):
					what = "final sync send"
				case strings.HasPrefix(s.Title, "final sync: prune"):
					what = "prune"
				case strings.HasPrefix(s.Title, "final sync:"):
					what = "final sync"
				case strings.HasPrefix(s.Title, "wait out zippy's guard lease"):
					what = "guard lease"
				case strings.HasPrefix(s.Title, "promote") && host == "c1" && strings.Contains(act, "hoctl dir-op /persist/services-standby promote "):
					what = "promote"
				case strings.HasPrefix(s.Title, "start nfs-server.service on c1") && host == "c1" && act == startCmd("nfs-server.service"):
					what = "start"
					if !s.NeedsPrevious {
						t.Error("the start's before check runs at plan time, before the fence moved the key")
					}
				case strings.HasPrefix(s.Title, "Consul: exactly one passing"):
					what = "served"
				case strings.HasPrefix(s.Title, "record the direction"):
					what = "direction"
				case strings.HasPrefix(s.Title, "remount") && host == "c1":
					what = "remount"
				default:
					t.Fatalf("unexpected step %q on %q: %s", s.Title, host, act)
				}
				if len(got) == 0 || got[len(got)-1] != what {
					got = append(got, what)
				}
			}
			// Pruning is not what serving needs: it runs once the clients
			// read the new primary, still under the final sync's host locks.
			// The final sync's inspection (under its host locks) and its
			// garbage removal come before the fence: they do not need
			// the old primary stopped, so they are not in the outage.
			want := "lock assess final sync inspect arm fence final sync final sync send promote start served direction remount prune"
			if down {
				want = "lock assess fence guard lease promote start served direction remount"
			}
			if strings.Join(got, " ") != want {
				t.Fatalf("steps in the order\n  %s\nwant\n  %s", strings.Join(got, " "), want)
			}
		})
	}
}
