package replicate

import (
	"context"
	"testing"

	"github.com/hoctl/hoctl/pkg/btrfs"
	"github.com/hoctl/hoctl/pkg/inventory"
	"github.com/hoctl/hoctl/pkg/sshexec"
)

type fakeRunner struct {
	out, errOut string
	code        int
	got         string
}

func (f *fakeRunner) Name() string { return "c1" }
func (f *fakeRunner) Run(_ context.Context, c sshexec.Cmd) (*sshexec.Result, error) {
	f.got = c.Line()
	res := &sshexec.Result{Host: "c1", Stdout: []byte(f.out), Stderr: []byte(f.errOut), ExitCode: f.code}
	if f.code != 0 {
		return res, &sshexec.ExitError{Host: "c1", Code: f.code}
	}
	return res, nil
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
