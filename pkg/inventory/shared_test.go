package inventory

import (
	"fmt"
	"math/rand"
	"path"
	"strings"
	"testing"
	"time"

	"github.com/hoctl/hoctl/pkg/retention"
)

// Two replications of one subvolume into one snapshot directory (issue
// 22, item 6) are refused where the second is written, naming both, the
// keeps that would fight, and the field to change.
func TestSharedSnapshotsAreRefused(t *testing.T) {
	const hosts = "hosts: {zippy: {}, c1: {}, c2: {}}\nreplication:\n"
	for name, c := range map[string]struct{ repl, want string }{
		"one source, two keeps": {
			"  to-c1:\n    source: {host: zippy, subvolume: /persist/services, snapshot_dir: /persist/services-snapshots}\n    target: {host: c1, dir: /standby}\n    keep: {source: 12}\n" +
				"  to-c2:\n    source: {host: zippy, subvolume: /persist/services}\n    target: {host: c2, dir: /standby}\n    keep: {source: 3}\n",
			"test.yaml:8:13: replication.to-c2.source.snapshot_dir: replications to-c1 and to-c2 both keep snapshots as services@* in zippy:/persist/services-snapshots " +
				"(to-c1's source, to-c2's source): each one's retention prunes the other's snapshots (to-c1 keeps newest 12, to-c2 keeps newest 3), " +
				"the parent of the other's next incremental send among them; set replication.to-c2.source.snapshot_dir to a directory of to-c2's own " +
				"(create it on zippy), such as /persist/services-snapshots-to-c2",
		},
		// The same keep does not make it safe: each run protects only its
		// own parent, so a replication that lags loses its parent.
		"same keep": {
			"  a: {source: {host: zippy, subvolume: /persist/services}, target: {host: c1, dir: /standby}}\n" +
				"  b: {source: {host: zippy, subvolume: /persist/services}, target: {host: c2, dir: /standby}}\n",
			"replication.b.source.snapshot_dir: replications a and b both keep snapshots as services@* in zippy:/persist/services-snapshots (a's source, b's source): each one's retention prunes the other's snapshots (a keeps newest 12, b keeps newest 12)",
		},
		"two sources, one target dir": {
			"  a: {source: {host: zippy, subvolume: /persist/services}, target: {host: c1, dir: /standby}}\n" +
				"  b: {source: {host: c2, subvolume: /data/services}, target: {host: c1, dir: /standby}}\n",
			"test.yaml:4:78: replication.b.target.dir: replications a and b both keep snapshots as services@* in c1:/standby (a's target, b's target): each one's retention prunes the other's snapshots (a keeps newest 48, b keeps newest 48), the parent of the other's next incremental send among them; set replication.b.target.dir to a directory of b's own (create it on c1), such as /standby-b",
		},
		"one's target is another's source": {
			"  a: {source: {host: zippy, subvolume: /persist/services}, target: {host: c1, dir: /standby}}\n" +
				"  b: {source: {host: c1, subvolume: /data/services, snapshot_dir: /standby}, target: {host: c2, dir: /backup}}\n",
			"replication.b.source.snapshot_dir: replications a and b both keep snapshots as services@* in c1:/standby (a's target, b's source)",
		},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := parse(t, hosts+c.repl)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error = %v\nwant it to contain %q", err, c.want)
			}
		})
	}
	// The fix the message gives is accepted: one subvolume to two
	// standbys, each replication with its own snapshots.
	inv, err := parse(t, hosts+
		"  to-c1: {source: {host: zippy, subvolume: /persist/services}, target: {host: c1, dir: /standby}, keep: {source: 12}}\n"+
		"  to-c2: {source: {host: zippy, subvolume: /persist/services, snapshot_dir: /persist/services-to-c2}, target: {host: c2, dir: /standby}, keep: {source: 3}}\n")
	if err != nil || len(inv.Replication) != 2 {
		t.Fatalf("own snapshot dirs: %v", err)
	}
}

// Whatever inventory validation accepts, no replication's retention ever
// prunes the parent another replication's next send needs. The model
// follows pkg/replicate: a run snapshots <base>@<time> into its source
// set and its target set (host, dir, base), then prunes each set with that
// side's keep over every <base>@* listed there, protecting only its own
// new snapshot. Random inventories over a few hosts, directories and
// subvolumes of one name; random orders of runs.
func TestNoRetentionPrunesAnotherReplicationsParent(t *testing.T) {
	rng := rand.New(rand.NewSource(22))
	subvolumes := []string{"/p/s", "/q/s"}
	dirs := []string{"", "/p", "/q", "/snap", "/t"}
	hosts := []string{"z", "c"}
	accepted, refused := 0, 0
	for i := 0; i < 3000; i++ {
		var b strings.Builder
		b.WriteString("hosts: {z: {}, c: {}}\nreplication:\n")
		n := 2 + rng.Intn(2)
		for r := 0; r < n; r++ {
			snapDir := dirs[rng.Intn(len(dirs))]
			src := fmt.Sprintf("{host: %s, subvolume: %s", hosts[rng.Intn(2)], subvolumes[rng.Intn(2)])
			if snapDir != "" {
				src += ", snapshot_dir: " + snapDir
			}
			fmt.Fprintf(&b, "  r%d: {source: %s}, target: {host: %s, dir: %s}, keep: {source: %d, target: %d}}\n",
				r, src, hosts[rng.Intn(2)], dirs[1+rng.Intn(len(dirs)-1)], 1+rng.Intn(4), 1+rng.Intn(4))
		}
		inv, err := Parse("test.yaml", []byte(b.String()))
		if err != nil {
			refused++
			continue
		}
		accepted++
		if bad := simulateRuns(inv, rng); bad != "" {
			t.Fatalf("accepted inventory:\n%s\n%s", b.String(), bad)
		}
	}
	if accepted == 0 || refused == 0 {
		t.Fatalf("accepted %d, refused %d: the cases do not cover both", accepted, refused)
	}
}

// simulateRuns runs the inventory's replications in a random order and
// says which parent a prune removed, or "".
func simulateRuns(inv *Inventory, rng *rand.Rand) string {
	type set struct{ host, dir, base string }
	held := map[set][]retention.Item{}
	parent := map[string]string{}
	var names []string
	for n := range inv.Replication {
		names = append(names, n)
	}
	sortStrings(names)
	start := time.Date(2026, 12, 7, 0, 0, 0, 0, time.UTC)
	ends := func(r *Replication) (set, set) {
		base := path.Base(r.Source.Subvolume)
		return set{r.Source.Host, r.Source.SnapshotDir, base}, set{r.Target.Host, r.Target.Dir, base}
	}
	has := func(s set, name string) bool {
		for _, it := range held[s] {
			if it.Name == name {
				return true
			}
		}
		return false
	}
	for step := 0; step < 40; step++ {
		n := names[rng.Intn(len(names))]
		r := inv.Replication[n]
		now := start.Add(time.Duration(step) * time.Minute)
		snap := path.Base(r.Source.Subvolume) + "@" + now.Format("20060102T150405Z")
		src, dst := ends(r)
		held[src] = append(held[src], retention.Item{Name: snap, Time: now})
		held[dst] = append(held[dst], retention.Item{Name: snap, Time: now})
		parent[n] = snap
		for _, side := range []struct {
			s    set
			keep retention.Policy
		}{{src, r.Keep.Source}, {dst, r.Keep.Target}} {
			var kept []retention.Item
			for _, v := range side.keep.Apply(held[side.s], now, map[string]string{snap: "newest common"}) {
				if v.Keep {
					kept = append(kept, v.Item)
				}
			}
			held[side.s] = kept
		}
		for _, m := range names {
			p, ok := parent[m]
			if !ok {
				continue
			}
			ms, md := ends(inv.Replication[m])
			if !has(ms, p) || !has(md, p) {
				return fmt.Sprintf("step %d: %s's run pruned %s, the parent of %s's next send", step, n, p, m)
			}
		}
	}
	return ""
}
