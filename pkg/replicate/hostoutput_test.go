package replicate

import (
	"strings"
	"testing"
	"time"

	"github.com/hoctl/hoctl/pkg/btrfs"
)

// hostileOutputs is output a hostile or broken host may answer with:
// nothing, blank lines, the corpus's names (internal/hostile), endless
// lines and numbers out of range.
func hostileOutputs() []string {
	out := []string{"", "\n", " \t\n", "Avail\n", "Avail\n\n", "Avail\n-1\n", "Avail\n99999999999999999999999\n", "Avail\n12abc\n",
		strings.Repeat("y", 1<<16), "Avail\n1\n2\n3\n", "\x00\xff"}
	return append(out, HostileNames...)
}

// Issue 19 (after the dir primitive), finding 5: an empty `df` answer
// panicked the workstation (index out of range [-1]). Whatever the host
// answers, df's free space is a number or an error.
func TestDfAvailHostileOutput(t *testing.T) {
	for _, out := range hostileOutputs() {
		n, err := dfAvail([]byte(out))
		if err == nil && n < 0 {
			t.Errorf("%q: %d bytes free", out, n)
		}
	}
	if n, err := dfAvail([]byte("   Avail\n123456789\n")); err != nil || n != 123456789 {
		t.Errorf("real df output: %d, %v", n, err)
	}
	for _, out := range []string{"", "Avail\n", "Avail\n12abc\n", "Avail\n-5\n"} {
		if _, err := dfAvail([]byte(out)); err == nil {
			t.Errorf("%q read as a free space", out)
		}
	}
}

func FuzzDfAvail(f *testing.F) {
	for _, out := range hostileOutputs() {
		f.Add([]byte(out))
	}
	f.Fuzz(func(t *testing.T, out []byte) {
		if n, err := dfAvail(out); err == nil && n < 0 {
			t.Fatalf("%q: %d bytes free", out, n)
		}
	})
}

// Issue 19 (after the dir primitive), finding 6: a far-future name
// planted in the source's dir (services@99991231T235959Z, through the
// reverse filter) made the next run name its snapshot newest+1s,
// services@100000101T000000Z, which nothing parses: every run after
// failed. A snapshot later than now (and a small skew) is foreign, left
// alone and reported, and a name that does not parse is never used.
func TestFarFutureSnapshotIsForeign(t *testing.T) {
	now := time.Date(2026, 12, 7, 11, 30, 0, 0, time.UTC)
	snap := func(name string) btrfs.Snapshot {
		_, tm, ok := btrfs.ParseSnapshotName(name)
		if !ok {
			t.Fatalf("bad test name %q", name)
		}
		return btrfs.Snapshot{Subvolume: btrfs.Subvolume{ID: 300, UUID: "u", Path: "/persist/services-snapshots/" + name, ReadOnly: true}, Time: tm}
	}
	side := &Side{Host: "zippy", Dir: "/persist/services-snapshots", Snapshots: []btrfs.Snapshot{snap("services@20261207T110000Z"), snap("services@99991231T235959Z")}}
	side.ignoreFuture(now)
	name, err := nextName("services", now, side)
	if err != nil || name != "services@20261207T113000Z" {
		t.Fatalf("next name %q, %v", name, err)
	}
	if len(side.Snapshots) != 1 || len(side.Problems) != 1 || !strings.Contains(side.Problems[0], "services@99991231T235959Z") {
		t.Fatalf("snapshots %v, problems %q", side.Snapshots, side.Problems)
	}
	// Within the skew, a clock behind the newest: the second after it.
	side = &Side{Snapshots: []btrfs.Snapshot{snap("services@20261207T113500Z")}}
	side.ignoreFuture(now)
	if name, err := nextName("services", now, side); err != nil || name != "services@20261207T113501Z" {
		t.Fatalf("a newest snapshot a few minutes ahead: %q, %v", name, err)
	}
	// A name that would not parse is refused, never taken.
	if name, err := nextName("services", time.Date(9999, 12, 31, 23, 59, 59, 0, time.UTC), &Side{Snapshots: []btrfs.Snapshot{snap("services@99991231T235959Z")}}); err == nil {
		t.Fatalf("took %q", name)
	}
}
