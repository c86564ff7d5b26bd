package replicate

import (
	"testing"

	"github.com/hoctl/hoctl/pkg/btrfs"
	"github.com/hoctl/hoctl/pkg/inventory"
	"github.com/hoctl/hoctl/pkg/sshexec"
	"github.com/hoctl/hoctl/pkg/sshexec/sshexectest"
)

// answering is host c1 answering every command with out, errOut and
// code; the Hosts record what ran.
func answering(out, errOut string, code int) (*sshexectest.Hosts, sshexec.Runner) {
	h := &sshexectest.Hosts{Answer: func(string, sshexec.Cmd) sshexectest.Reply {
		return sshexectest.Reply{Stdout: out, Stderr: errOut, Code: code}
	}}
	return h, h.Runner("c1")
}

// lastLine is the last command line h ran.
func lastLine(h *sshexectest.Hosts) string {
	calls := h.Calls()
	if len(calls) == 0 {
		return ""
	}
	return calls[len(calls)-1].Cmd.Line()
}

func TestInvolving(t *testing.T) {
	inv, err := inventory.Parse("i.yaml", []byte(`
hosts: {zippy: {}, c1: {}, c2: {}}
replication:
  services: {source: {host: zippy, subvolume: /persist/services}, target: {host: c1, dir: /persist/standby}}
  media: {source: {host: c1, subvolume: /persist/media}, target: {host: zippy, dir: /persist/media-copy}}
`))
	if err != nil {
		t.Fatal(err)
	}
	got, err := Involving(inv, "c1", "")
	if err != nil || len(got) != 2 || got[0].Name != "media" || got[1].Base != "services" || got[1].SourceDir != "/persist/services-snapshots" {
		t.Fatalf("%+v %v", got, err)
	}
	if _, err := Involving(inv, "c2", ""); err == nil {
		t.Error("c2 takes part in nothing")
	}
	if _, err := Involving(inv, "c2", "services"); err == nil {
		t.Error("c2 is not in services")
	}
	if _, err := Involving(inv, "c1", "nope"); err == nil {
		t.Error("unknown name")
	}
}

func TestNewestCompleteSkipsGarbage(t *testing.T) {
	side := &Side{Snapshots: []btrfs.Snapshot{
		{Subvolume: btrfs.Subvolume{Path: "/s/services@20261126T084500Z", ReadOnly: true}},
		{Subvolume: btrfs.Subvolume{Path: "/s/services@20261126T090000Z", ReadOnly: true, ReceivedUUID: "r"}},
		{Subvolume: btrfs.Subvolume{Path: "/s/services@20261126T091000Z"}}, // an interrupted receive
	}}
	if s, ok := side.NewestComplete(); !ok || s.Name() != "services@20261126T090000Z" {
		t.Fatalf("%v %v", s.Name(), ok)
	}
	side.Snapshots = side.Snapshots[:1] // only a snapshot taken there: it counts
	if s, ok := side.NewestComplete(); !ok || s.Name() != "services@20261126T084500Z" {
		t.Fatalf("%v %v", s.Name(), ok)
	}
	if _, ok := (&Side{}).NewestComplete(); ok {
		t.Fatal("an empty side has no copy")
	}
}
