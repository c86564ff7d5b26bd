package replicate

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/hoctl/hoctl/pkg/sshexec"
)

// The target's inspect op on real btrfs, with a planted name of every
// kind: the one answer holds the free space and the mount options read
// from the dir's descriptor, and each planted name is an entry of its
// real kind, never a snapshot; the real copy is the one snapshot.
func TestInspectTargetOnBtrfs(t *testing.T) {
	l := newLab(t)
	for i, what := range planted {
		plant(t, l.dst, "services@2030010"+string(rune('1'+i))+"T000000Z", what, l.outside)
	}
	plant(t, l.dst, "services@x\n\tName: \t\t\tservices@20200101T000000Z", "directory", "")
	var out bytes.Buffer
	if err := open(t, l.dst).inspectTarget("services", &out); err != nil {
		t.Fatal(err)
	}
	in, err := ParseTargetInspection(out.Bytes())
	if err != nil {
		t.Fatalf("%v: %s", err, out.String())
	}
	if in.Avail <= 0 || strings.Join(in.MissingMount, ",") != "nosuid,nodev" || len(in.Entries) != len(planted)+2 {
		t.Fatalf("%+v", in)
	}
	side := sideOf("c1", l.dst, "services", in.Entries)
	if len(side.Snapshots) != 1 || side.Snapshots[0].Name() != l.one || len(side.Problems) != len(planted)+1 {
		t.Fatalf("snapshots %+v, problems %q", side.Snapshots, side.Problems)
	}
	l.canaryIntact(t)
}

// The source's inspect op, run as a run builds it (this test binary
// stands in for hoctl, TestMain): the subvolume's show line (its path
// from the filesystem's top, as btrfs prints it), no nested
// subvolume, the dir's snapshots, and the estimate from the newest one.
func TestInspectSourceOnBtrfs(t *testing.T) {
	l := newLab(t)
	plant(t, l.src, "services@20300101T000000Z", "symlink", l.outside)
	local := sshexec.NewLocal(&sshexec.Target{Name: "zippy"})
	e := Ends{Name: "services", Base: "services", SourceHost: "zippy", SourceDir: l.src, Subvolume: l.sub}
	res, err := local.Run(context.Background(), sourceInspectCmd(local, e))
	if err != nil {
		t.Fatal(sshexec.FirstLine(res, err))
	}
	in, err := ParseSourceInspection(res.Stdout)
	if err != nil {
		t.Fatalf("%v: %s", err, res.Stdout)
	}
	if in.ShowError != "" || in.Show != "services" || in.NestedError != "" || len(nestedOf(e, in.Show, in.Nested)) != 0 {
		t.Fatalf("%+v", in)
	}
	side := sideOf("zippy", l.src, "services", in.Entries)
	if len(side.Snapshots) != 2 || len(side.Problems) != 1 {
		t.Fatalf("snapshots %+v, problems %q", side.Snapshots, side.Problems)
	}
	if in.Estimate.Parent != l.two || in.Estimate.Gen != side.Snapshots[1].Gen || in.Estimate.Error != "" {
		t.Fatalf("estimate %+v, want from %s", in.Estimate, l.two)
	}
	// Not a subvolume: said, never a guess.
	e.Subvolume = l.mnt + "/src"
	e.Base = "src"
	if res, err = local.Run(context.Background(), sourceInspectCmd(local, e)); err != nil {
		t.Fatal(sshexec.FirstLine(res, err))
	}
	if in, err = ParseSourceInspection(res.Stdout); err != nil || in.ShowError == "" {
		t.Fatalf("%+v %v", in, err)
	}
}
