package replicate

import (
	"bytes"
	"path"
	"strings"
	"testing"

	"github.com/hoctl/hoctl/pkg/btrfs"
	"github.com/hoctl/hoctl/pkg/sshexec"
)

// Issue 19 (re-attack), finding 2: a key for one replication's dir could
// list, show and delete snapshots of any base there (services' key on
// db's snapshot dir deleted db@*). With BASE on the forced command
// (`hoctl target-filter DIR BASE`), the filter lets through only
// names of that base, however the op comes; everything a replication of
// that base sends still passes.
func TestFilterBaseRestrictsNames(t *testing.T) {
	f := Filter{Dir: standby, Base: "services"}
	native, argv := targetLines(t)
	for _, line := range append(append(native, argv...), legacyLines()...) {
		if _, err := f.Allow(line); err != nil {
			t.Errorf("the replication's own %q refused: %v", line, err)
		}
	}
	db := btrfs.Subvolume{ID: 270, Path: path.Join(standby, "db@20261126T084500Z")}
	for _, line := range []string{
		dirOpLine(standby, opList, "db"),
		dirOpLine(standby, opShow, "db@20261126T084500Z"),
		deleteCmd(nil, standby, []btrfs.Subvolume{db}).Line(),
		deleteCmd(nil, standby, []btrfs.Subvolume{{ID: 260, Path: path.Join(standby, "services@20261126T084500Z")}, db}).Line(),
		sshexec.QuoteArgv(append([]string{opPrefix}, opDelete, deleteArg(db))),
		sshexec.QuoteArgv(ListArgv(standby, "db")),
		sshexec.QuoteArgv([]string{"btrfs", "subvolume", "show", db.Path}),
		sshexec.QuoteArgv([]string{"btrfs", "subvolume", "delete", db.Path}),
	} {
		if req, err := f.Allow(line); err == nil {
			t.Errorf("allowed %q for base services: %+v", line, req)
		}
	}
	// A stream that makes a subvolume of another base.
	s := newTestStream(1).cmd(sendCmdSubvol, testAttr{sendAttrPath, []byte("db@20300101T000000Z")}, uuidAttr(sendAttrUUID, 0x55), u64Attr(testCtransid, 7)).file().end()
	err := checkStreamFor(&bytes.Buffer{}, bytes.NewReader(s), func() (map[[16]byte]bool, error) { return nil, nil }, "services", nil)
	if err == nil || !strings.Contains(err.Error(), `not services@<UTC time>`) {
		t.Errorf("a stream making db@… for base services: %v", err)
	}
	if err := checkStreamFor(&bytes.Buffer{}, bytes.NewReader(s), func() (map[[16]byte]bool, error) { return nil, nil }, "db", nil); err != nil {
		t.Errorf("the same stream for base db: %v", err)
	}
	if _, err := (Filter{Dir: standby, Base: "../x"}).Allow(dirOpLine(standby, opList, "services")); err == nil {
		t.Error("a filter with base ../x runs")
	}
}

// The primitive's snapshot op makes only a snapshot named for the
// subvolume it snapshots.
func TestHostOpSnapshotNamedForItsSubvolume(t *testing.T) {
	if _, err := HostOp(standby, []string{opSnapshot, "/persist/services", "db@20261126T090000Z"}); err == nil {
		t.Error("dir-op snapshots /persist/services as db@…")
	}
	if _, err := HostOp(standby, []string{opSnapshot, "/persist/services", "services@20261126T090000Z"}); err != nil {
		t.Errorf("dir-op refuses its own snapshot: %v", err)
	}
}
