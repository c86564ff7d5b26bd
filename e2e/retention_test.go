package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/hoctl/hoctl/pkg/sshexec"
)

// Calendar retention on real btrfs: snapshots named for the last ten days
// are pruned by btrbk's rules on each side, the plan names what goes and
// why, and `snapshots` says which rule keeps each one.
func TestReplicateCalendarRetention(t *testing.T) {
	rs := storageRunners(t, "zippy", "c1")
	zippy, c1 := rs[0], rs[1]
	env := stateEnv(t)
	cleanServices(t, zippy, c1)
	t.Cleanup(func() {
		_, _ = c1.Run(context.Background(), sshexec.Cmd{Script: "btrfs subvolume delete /persist/scratch >/dev/null 2>&1"})
	})
	must(t, zippy, "btrfs subvolume create /persist/services >/dev/null && echo v1 > /persist/services/f")
	inv := labInventory(t, storage, "keep: {source: 12, target: 48}",
		"keep: {source: {daily: 3}, target: {min: 2, daily: 5, timezone: UTC}}")
	replicateOnce(t, env, "zippy", "c1")
	firstName := strings.TrimPrefix(newest(t, zippy, "/persist/services-snapshots"), "/persist/services-snapshots/")

	// Ten days back, two a day, on both sides: zippy's are snapshots of
	// the subvolume, c1's of a scratch one (retention goes by name and
	// read-only flag, not by content).
	today := time.Now().UTC().Truncate(24 * time.Hour)
	var old []string
	for d := 1; d <= 10; d++ {
		for _, h := range []int{0, 12} {
			old = append(old, "services@"+today.AddDate(0, 0, -d).Add(time.Duration(h)*time.Hour).Format("20060102T150405Z"))
		}
	}
	var zs, cs strings.Builder
	cs.WriteString("set -e\nbtrfs subvolume create /persist/scratch >/dev/null\n")
	zs.WriteString("set -e\n")
	for _, n := range old {
		fmt.Fprintf(&zs, "btrfs subvolume snapshot -r /persist/services /persist/services-snapshots/%s >/dev/null\n", n)
		fmt.Fprintf(&cs, "btrfs subvolume snapshot -r /persist/scratch /persist/services-standby/%s >/dev/null\n", n)
	}
	must(t, zippy, zs.String())
	must(t, c1, cs.String())
	day := func(d int) string { return "services@" + today.AddDate(0, 0, -d).Format("20060102T150405Z") }

	// The plan names what each side's policy prunes, and why the rest stay.
	plan := hoctlEnv(t, inv, env, "--dry-run", "replicate", "zippy", "c1")
	if plan.code != 0 {
		t.Fatalf("dry run: exit %d\n%s%s", plan.code, plan.stdout, plan.stderr)
	}
	for _, want := range []string{"prune zippy (keep 3 daily)", "prune c1 (keep min 2, 5 daily)",
		day(4), "keeps 5 of 22 (4 daily, 1 newest common snapshot), prunes 17",
		"keeps 7 of 22 (6 daily, 2 min, 1 newest common snapshot), prunes 15"} {
		if !strings.Contains(plan.stdout+plan.stderr, want) {
			t.Errorf("plan lacks %q:\n%s%s", want, plan.stdout, plan.stderr)
		}
	}

	// `snapshots` gives the rule for each snapshot on the target.
	r := hoctlEnv(t, inv, env, "--json", "snapshots", "c1")
	if r.code != 0 {
		t.Fatalf("snapshots: exit %d\n%s", r.code, r.stderr)
	}
	why := map[string]string{}
	kept := map[string]bool{}
	for _, l := range strings.Split(strings.TrimSpace(r.stdout), "\n") {
		var row struct {
			Name string `json:"name"`
			Kept bool   `json:"kept"`
			Why  string `json:"why"`
		}
		if err := json.Unmarshal([]byte(l), &row); err != nil {
			t.Fatalf("%q: %v", l, err)
		}
		why[row.Name], kept[row.Name] = row.Why, row.Kept
	}
	if got := why[day(2)]; got != "daily: first of the day, 2 days ago" {
		t.Errorf("why %s = %q", day(2), got)
	}
	if !strings.Contains(why[firstName], "newest common snapshot") {
		t.Errorf("why %s = %q", firstName, why[firstName])
	}
	if kept[day(7)] || !strings.Contains(why[day(7)], "no rule keeps it") {
		t.Errorf("%s: kept %v, why %q", day(7), kept[day(7)], why[day(7)])
	}

	r = hoctlEnv(t, inv, env, "--yes", "replicate", "zippy", "c1")
	if r.code != 0 {
		t.Fatalf("replicate: exit %d\n%s", r.code, r.stderr)
	}
	list := func(run func() string) []string {
		names := strings.Fields(run())
		sort.Strings(names)
		return names
	}
	onZippy := list(func() string { return must(t, zippy, "cd /persist/services-snapshots && ls -1d services@*") })
	onC1 := list(func() string { return must(t, c1, "cd /persist/services-standby && ls -1d services@*") })
	newName := strings.TrimPrefix(newest(t, zippy, "/persist/services-snapshots"), "/persist/services-snapshots/")
	wantZ := []string{day(3), day(2), day(1), firstName, newName}
	wantC := []string{day(5), day(4), day(3), day(2), day(1), firstName, newName}
	sort.Strings(wantZ)
	sort.Strings(wantC)
	if !reflect.DeepEqual(onZippy, wantZ) {
		t.Errorf("zippy keeps %v,\nwant %v", onZippy, wantZ)
	}
	if !reflect.DeepEqual(onC1, wantC) {
		t.Errorf("c1 keeps %v,\nwant %v", onC1, wantC)
	}
}

// `replicate` with no arguments runs every replication of the inventory:
// one plan, each its own run, a replication whose before check fails is
// left out without stopping the others, one summary and one exit code.
func TestReplicateEveryReplication(t *testing.T) {
	rs := storageRunners(t, "zippy", "c1")
	zippy, c1 := rs[0], rs[1]
	env := stateEnv(t)
	cleanServices(t, zippy, c1)
	t.Cleanup(func() {
		_, _ = zippy.Run(context.Background(), sshexec.Cmd{Script: "btrfs subvolume delete /persist/media-snapshots/media@* /persist/media >/dev/null 2>&1; rm -rf /persist/media-snapshots"})
		_, _ = c1.Run(context.Background(), sshexec.Cmd{Script: "btrfs subvolume delete /persist/media-standby/media@* >/dev/null 2>&1; rmdir /persist/media-standby"})
	})
	must(t, zippy, "btrfs subvolume create /persist/services >/dev/null && echo s > /persist/services/f && btrfs subvolume create /persist/media >/dev/null && echo m > /persist/media/f && mkdir -p /persist/media-snapshots")
	must(t, c1, "mkdir -p /persist/media-standby")
	inv := labInventory(t, storage, "replication:\n", `replication:
  media:
    source: {host: zippy, subvolume: /persist/media, snapshot_dir: /persist/media-snapshots}
    target: {host: c1, dir: /persist/media-standby}
  attic:
    source: {host: zippy, subvolume: /persist/attic, snapshot_dir: /persist/attic-snapshots}
    target: {host: c1, dir: /persist/attic-standby}
`)
	plan := hoctlEnv(t, inv, env, "--dry-run", "replicate")
	if plan.code != 3 || !strings.Contains(plan.stderr, "3 replication(s) in 3 wave(s)") {
		t.Fatalf("dry run: exit %d, want 3 (attic's check fails)\n%s%s", plan.code, plan.stdout, plan.stderr)
	}
	r := hoctlEnv(t, inv, env, "--yes", "replicate")
	if r.code != 3 {
		t.Fatalf("exit %d, want 3 (attic refused, the others done)\n%s", r.code, r.stderr)
	}
	for _, want := range []string{"✓ media zippy → c1", "✓ services zippy → c1", "✗ attic zippy → c1", "2 of 3 replication(s) done, 1 failed"} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("summary lacks %q:\n%s", want, r.stderr)
		}
	}
	if got := must(t, c1, "ls /persist/media-standby/ /persist/services-standby/ | grep -c @"); strings.TrimSpace(got) != "2" {
		t.Errorf("c1 holds %s copies, want one of each", got)
	}
	// Journaled as two runs of their own.
	h := hoctlEnv(t, inv, env, "--json", "history")
	if n := strings.Count(h.stdout, "replicate media") + strings.Count(h.stdout, "replicate services"); n < 2 {
		t.Errorf("history shows %d of the two runs:\n%s", n, h.stdout)
	}
}

// The seed's warning, on real btrfs: a subvolume nested in the replicated
// one is never in its snapshots (it arrives as an empty directory), so
// replicate refuses, naming it, until the inventory leaves it out on
// purpose; status shows it as a problem.
func TestReplicateRefusesNestedSubvolumes(t *testing.T) {
	rs := storageRunners(t, "zippy", "c1")
	zippy, c1 := rs[0], rs[1]
	env := stateEnv(t)
	cleanServices(t, zippy, c1)
	t.Cleanup(func() {
		_, _ = zippy.Run(context.Background(), sshexec.Cmd{Script: "btrfs subvolume delete /persist/services/docker /persist/services/immich/cache >/dev/null 2>&1"})
	})
	must(t, zippy, `set -e
btrfs subvolume create /persist/services >/dev/null
mkdir -p /persist/services/immich
echo keep > /persist/services/immich/app.conf
btrfs subvolume create /persist/services/docker >/dev/null
btrfs subvolume create /persist/services/immich/cache >/dev/null
echo lost > /persist/services/docker/data`)
	r := hoctlEnv(t, storage.Inventory, env, "--yes", "replicate", "zippy", "c1")
	if r.code != 3 || !strings.Contains(r.stdout+r.stderr, "holds nested subvolumes that no snapshot of it contains (they would arrive on c1 as empty directories): docker, immich/cache") {
		t.Fatalf("exit %d, want 3 naming both nested subvolumes\n%s%s", r.code, r.stdout, r.stderr)
	}
	if out := must(t, c1, "ls /persist/services-standby"); strings.TrimSpace(out) != "" {
		t.Fatalf("refused, yet c1 holds %q", out)
	}
	st := hoctlEnv(t, storage.Inventory, env, "status")
	if !strings.Contains(st.stdout+st.stderr, "holds nested subvolumes no snapshot contains: docker, immich/cache") {
		t.Errorf("status does not show the nested subvolumes:\n%s%s", st.stdout, st.stderr)
	}

	inv := labInventory(t, storage, "source: {host: zippy, subvolume: /persist/services, snapshot_dir: /persist/services-snapshots}",
		"source: {host: zippy, subvolume: /persist/services, snapshot_dir: /persist/services-snapshots, exclude_nested: [docker, immich]}")
	r = hoctlEnv(t, inv, env, "--yes", "replicate", "zippy", "c1")
	if r.code != 0 {
		t.Fatalf("with exclude_nested: exit %d\n%s", r.code, r.stderr)
	}
	copyDir := newest(t, c1, "/persist/services-standby")
	if got := must(t, c1, "cat "+copyDir+"/immich/app.conf; ls -A "+copyDir+"/docker | wc -l"); got != "keep\n0\n" {
		t.Fatalf("copy: %q, want the file and an empty docker dir", got)
	}
}
