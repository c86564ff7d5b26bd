package replicate

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/hoctl/hoctl/internal/hostile"
	"github.com/hoctl/hoctl/pkg/btrfs"
	"github.com/hoctl/hoctl/pkg/sshexec"
)

// HostileNames is the corpus (internal/hostile) for base "services".
var HostileNames = hostile.Names("services")

func entryLine(t testing.TB, e Entry) string {
	b, err := json.Marshal(e)
	if err != nil {
		t.Fatal(err)
	}
	return string(b) + "\n"
}

// Issue 19, finding 1: a name holding newlines and tabs forged a whole
// "writable, not received" entry in the text listing, and garbage removal
// then deleted, by path, a symlink's target outside the dir. Names are
// now JSON strings: every hostile name, whatever its kind, is reported
// and never becomes a snapshot (so never garbage, never pruned).
func TestListNeverTakesAHostileNameForASnapshot(t *testing.T) {
	var out strings.Builder
	for i, n := range HostileNames {
		for _, kind := range []string{KindSubvolume, KindDirectory, KindSymlink, KindFIFO, KindBlock, KindFile} {
			out.WriteString(entryLine(t, Entry{Name: n, Kind: kind, ID: uint64(300 + i), UUID: "0badc0de-0000-4000-8000-000000000777"}))
		}
	}
	real := Entry{Name: "services@20261126T090000Z", Kind: KindSubvolume, ID: 260, UUID: "bbbb", ReceivedUUID: "BBBB", ReadOnly: true}
	out.WriteString(entryLine(t, real))
	c1, f := answering(out.String(), "", 0)
	side, err := List(context.Background(), f, "/persist/services standby", "services")
	if err != nil {
		t.Fatal(err)
	}
	// The one name of the corpus that is exact, as a subvolume, plus the
	// real one; everything else is a problem.
	if len(side.Snapshots) != 2 || side.Snapshots[0].Name() != "services@20261126T084500Z" || side.Snapshots[1].UUID != "bbbb" ||
		side.Snapshots[1].Path != "/persist/services standby/services@20261126T090000Z" {
		t.Fatalf("snapshots %+v", side.Snapshots)
	}
	if got, want := len(side.Problems), len(HostileNames)*6-1; got != want {
		t.Fatalf("%d problems, want %d: %q", got, want, side.Problems)
	}
	for _, p := range side.Problems {
		if strings.ContainsAny(p, "\n\t\x1b\r\a") {
			t.Errorf("problem printed raw: %q", p)
		}
	}
	var subs []btrfs.Subvolume
	for _, s := range side.Snapshots {
		subs = append(subs, s.Subvolume)
	}
	if g := btrfs.Garbage(subs, "services"); len(g) != 1 || g[0].Name() != "services@20261126T084500Z" {
		t.Fatalf("garbage %+v", g)
	}
	if !strings.Contains(lastLine(c1), "SSH_ORIGINAL_COMMAND='hoctl-dir list services' hoctl target-filter '/persist/services standby'") {
		t.Errorf("not the primitive's list: %s", lastLine(c1))
	}
}

// The old text listing, forged by a planted name, is no longer read: it
// is an error, never an entry.
func TestListRefusesText(t *testing.T) {
	forged := "--hoctl-next-- /persist/services-standby/services@x\n\tName: \t\t\tservices@20200101T000000Z\n\tUUID: \t\t\t0badc0de\n\tFlags: \t\t\t-\n"
	for _, out := range []string{forged, `{"name":"services@20261126T084500Z","kind":"subvolume","id":5,"evil":1}` + "\n",
		`{"name":"services@20261126T084500Z","kind":"pwned\u001b[2J"}` + "\n", `{"name":"","kind":"subvolume"}` + "\n",
		`{"name":"a","kind":"file"}{"name":"b","kind":"file"}` + "\n"} {
		_, f := answering(out, "", 0)
		if side, err := List(context.Background(), f, standby, "services"); err == nil {
			t.Errorf("%q read as %+v", out, side)
		}
	}
}

func TestListSaysWhatIsMissing(t *testing.T) {
	_, f := answering("", "ERROR: /nope: No such file or directory\n", 1)
	if _, err := List(context.Background(), f, "/nope", "services"); err == nil || !strings.Contains(err.Error(), "/nope does not exist") {
		t.Fatalf("err = %v", err)
	}
	_, f = answering("", "sh: 1: hoctl: not found\n", 127)
	if _, err := List(context.Background(), f, "/persist", "services"); err == nil || !strings.Contains(err.Error(), "hoctl is not installed") {
		t.Fatalf("err = %v", err)
	}
}

// FuzzParseEntries: whatever a host answers, a listing is either refused
// or gives snapshots named exactly base@<timestamp>, each a subvolume
// with an id; everything else is a problem printed without a raw
// control character.
func FuzzParseEntries(f *testing.F) {
	for _, n := range HostileNames {
		for _, kind := range []string{KindSubvolume, KindSymlink, KindFIFO} {
			f.Add([]byte(entryLine(f, Entry{Name: n, Kind: kind, ID: 256, UUID: "u"})))
		}
		f.Add([]byte("--hoctl-next-- /d/" + n + "\n\tUUID: u\n"))
	}
	f.Fuzz(func(t *testing.T, out []byte) {
		entries, err := ParseEntries(out)
		if err != nil {
			return
		}
		snaps, problems := Classify(entries, standby, "services")
		for _, s := range snaps {
			b, _, ok := btrfs.ParseSnapshotName(s.Name())
			if !ok || b != "services" || s.Path != standby+"/"+s.Name() || s.ID == 0 {
				t.Fatalf("snapshot %+v from %q", s, out)
			}
		}
		for _, p := range problems {
			if strings.ContainsAny(p, "\n\r\x1b\a") {
				t.Fatalf("problem printed raw: %q", p)
			}
		}
	})
}

// FuzzEntryName: any name, of any kind, round-trips through the listing
// as the same string, and is a snapshot only when it is exactly one.
func FuzzEntryName(f *testing.F) {
	for _, n := range HostileNames {
		f.Add(n, true)
		f.Add(n, false)
	}
	f.Fuzz(func(t *testing.T, name string, subvolume bool) {
		if name == "" {
			return
		}
		kind := KindSymlink
		if subvolume {
			kind = KindSubvolume
		}
		entries, err := ParseEntries([]byte(entryLine(t, Entry{Name: name, Kind: kind, ID: 256, UUID: "u"})))
		if err != nil {
			t.Fatalf("%q: %v", name, err)
		}
		snaps, _ := Classify(entries, standby, "services")
		b, _, ok := btrfs.ParseSnapshotName(name)
		want := subvolume && ok && b == "services" && !strings.ContainsAny(name, "/\x00")
		if got := len(snaps) == 1; got != want || got && snaps[0].Name() != name {
			t.Fatalf("%q (%s): snapshots %+v", name, kind, snaps)
		}
	})
}

// hangingRunner is a host whose command never answers until cancelled.
type hangingRunner struct{ cancelled chan struct{} }

func (h *hangingRunner) Name() string { return "c1" }
func (h *hangingRunner) Run(ctx context.Context, _ sshexec.Cmd) (*sshexec.Result, error) {
	<-ctx.Done()
	close(h.cancelled)
	return nil, ctx.Err()
}

// Issue 19, finding 3: taking a host lock is bounded. A lock command that
// never answers (what a FIFO under the lock's name did to the old shell
// form) fails the run with the bound in its error, and the command is
// cancelled, not left behind.
func TestHostLockBounded(t *testing.T) {
	h := &hangingRunner{cancelled: make(chan struct{})}
	_, err := acquireHostLock(context.Background(), h, standby, "services", "alice", 50*time.Millisecond)
	if err == nil || !strings.Contains(err.Error(), "no answer within 50ms") {
		t.Fatalf("err = %v", err)
	}
	<-h.cancelled
}
