package replicate

import (
	"errors"
	"testing"

	"github.com/hoctl/hoctl/pkg/btrfs"
	"github.com/hoctl/hoctl/pkg/sshexec"
)

// The host ops reach outside the dir by design (promote writes the
// service's subvolume, snapshot and send read the source's), so a
// restricted key must never get them: the target filter refuses each,
// as the line hoctl sends (dir-op), as an op of its own primitive, and
// as the primitive's SSH_ORIGINAL_COMMAND line.
func TestFilterRefusesHostOps(t *testing.T) {
	uuid := "0badc0de-0000-4000-8000-000000000777"
	r := &Run{Ends: Ends{SourceDir: standby, Base: "services"}, newName: "services@20261126T090000Z",
		parent: &btrfs.Common{Source: btrfs.Snapshot{Subvolume: btrfs.Subvolume{UUID: uuid, Path: standby + "/services@20261126T084500Z"}}}}
	ops := [][]string{
		{opPromote, "services@20261126T084500Z=" + uuid, "/persist/services", "/persist/services.aside", "marker"},
		{opSend, "services@20261126T090000Z", "services@20261126T084500Z=" + uuid},
		{opSnapshot, "/persist/services", "services@20261126T090000Z"},
	}
	lines := []string{
		PromoteCmd(nil, standby, "services@20261126T084500Z", uuid, "/persist/services", "/persist/services.aside", "marker").Line(),
		snapshotCmd(nil, standby, "/persist/services", "services@20261126T090000Z").Line(),
		r.senderCmd(nil).Line(),
	}
	for _, op := range ops {
		if _, err := HostOp(standby, op); err != nil {
			t.Fatalf("dir-op refuses its own op %q: %v", op, err)
		}
		lines = append(lines, sshexec.QuoteArgv(append([]string{opPrefix}, op...)), dirOpLine(standby, op...))
	}
	for _, line := range lines {
		req, err := Filter{Dir: standby}.Allow(line)
		var refused *DeniedError
		if !errors.As(err, &refused) {
			t.Errorf("the target filter allows the host op %q: %+v, %v", line, req, err)
		}
	}
}

// dir-op parses its ops strictly: names of the scheme, a UUID where one
// is listed, absolute clean paths, a one-line marker.
func TestHostOpRefusesMalformedOps(t *testing.T) {
	uuid := "0badc0de-0000-4000-8000-000000000777"
	for _, op := range [][]string{
		{opPromote, "services@20261126T084500Z", "/persist/services", "/persist/a", "m"},
		{opPromote, "../x=" + uuid, "/persist/services", "/persist/a", "m"},
		{opPromote, "services@20261126T084500Z=" + uuid, "persist/services", "/persist/a", "m"},
		{opPromote, "services@20261126T084500Z=" + uuid, "/persist/services", "/persist/a", "m\nx"},
		{opSend, "services@x"},
		{opSend, "services@20261126T090000Z", "services@20261126T084500Z"},
		{opSnapshot, "/persist/../services", "services@20261126T090000Z"},
		{opSnapshot, "/persist/services", "services@20261126T090000Z/x"},
		{"rm", "-rf", "/"},
	} {
		if _, err := HostOp(standby, op); err == nil {
			t.Errorf("dir-op accepts %q", op)
		}
	}
}
