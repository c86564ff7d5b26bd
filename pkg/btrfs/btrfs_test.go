package btrfs

import (
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/hoctl/hoctl/internal/hostile"
)

// Captured from btrfs-progs v6.2 on the lab.
const list62 = `ID 256 gen 7 cgen 7 top level 5 parent_uuid -                                    received_uuid -                                    uuid 396739e9-5e72-5e40-ae56-85c7449dc9af path services
ID 257 gen 7 cgen 7 top level 5 parent_uuid 396739e9-5e72-5e40-ae56-85c7449dc9af received_uuid -                                    uuid 9de60197-0408-9f44-8cef-0923fd0180b1 path services@20261126T084500Z
`

// btrfs-progs 5.x with -a and -s: FS_TREE prefix, otime, single spaces.
const list5 = `ID 258 gen 12 cgen 11 top level 5 otime 2026-11-26 08:50:00 parent_uuid - received_uuid 9de60197-0408-9f44-8cef-0923fd0180b1 uuid 11111111-2222-3333-4444-555555555555 path <FS_TREE>/services-standby/services@20261126T084500Z
ID 259 gen 13 cgen 13 top level 5 otime 2026-11-26 08:55:00 parent_uuid - received_uuid - uuid 66666666-2222-3333-4444-555555555555 path <FS_TREE>/services-standby/dir with space@x
`

const show62 = `services@20261126T084500Z
	Name: 			services@20261126T084500Z
	UUID: 			9de60197-0408-9f44-8cef-0923fd0180b1
	Parent UUID: 		396739e9-5e72-5e40-ae56-85c7449dc9af
	Received UUID: 		-
	Creation time: 		2026-11-26 10:33:04 +0000
	Subvolume ID: 		257
	Generation: 		7
	Gen at creation: 	7
	Parent ID: 		5
	Top level ID: 		5
	Flags: 			readonly
	Send transid: 		0
	Send time: 		2026-11-26 10:33:04 +0000
	Receive transid: 	0
	Receive time: 		-
	Snapshot(s):
`

// btrfs-progs 5.x: the path of the subvolume first, fewer fields.
const show5 = `/persist/services-standby/services@20261126T084500Z
	Name: 			services@20261126T084500Z
	UUID: 			11111111-2222-3333-4444-555555555555
	Parent UUID: 		-
	Received UUID: 		9de60197-0408-9f44-8cef-0923fd0180b1
	Creation time: 		2026-11-26 08:50:00 +0100
	Subvolume ID: 		258
	Generation: 		12
	Gen at creation: 	11
	Parent ID: 		5
	Top level ID: 		5
	Flags: 			readonly
	Snapshot(s):
`

func TestParseList(t *testing.T) {
	subs, err := ParseList(list62)
	if err != nil {
		t.Fatal(err)
	}
	want := []Subvolume{
		{ID: 256, Gen: 7, CGen: 7, TopLevel: 5, UUID: "396739e9-5e72-5e40-ae56-85c7449dc9af", Path: "services"},
		{ID: 257, Gen: 7, CGen: 7, TopLevel: 5, ParentUUID: "396739e9-5e72-5e40-ae56-85c7449dc9af", UUID: "9de60197-0408-9f44-8cef-0923fd0180b1", Path: "services@20261126T084500Z"},
	}
	if !reflect.DeepEqual(subs, want) {
		t.Fatalf("got %+v", subs)
	}
	subs, err = ParseList(list5)
	if err != nil {
		t.Fatal(err)
	}
	if subs[0].ReceivedUUID != "9de60197-0408-9f44-8cef-0923fd0180b1" || subs[0].Path != "services-standby/services@20261126T084500Z" ||
		subs[0].Name() != "services@20261126T084500Z" || subs[0].CGen != 11 || subs[1].Path != "services-standby/dir with space@x" {
		t.Fatalf("got %+v", subs)
	}
	for _, bad := range []string{"garbage", "ID x gen 1 path p", "ID 5 gen"} {
		if _, err := ParseList(bad); err == nil {
			t.Errorf("accepted %q", bad)
		}
	}
}

func TestParseShow(t *testing.T) {
	sh, err := ParseShow(show62)
	if err != nil {
		t.Fatal(err)
	}
	if sh.Name != "services@20261126T084500Z" || sh.UUID != "9de60197-0408-9f44-8cef-0923fd0180b1" || sh.ReceivedUUID != "" ||
		!sh.ReadOnly || sh.ID != 257 || !sh.Created.Equal(time.Date(2026, 11, 26, 10, 33, 4, 0, time.UTC)) {
		t.Fatalf("%+v", sh)
	}
	sh, err = ParseShow(show5)
	if err != nil {
		t.Fatal(err)
	}
	if sh.ReceivedUUID != "9de60197-0408-9f44-8cef-0923fd0180b1" || sh.ParentUUID != "" || !sh.ReadOnly || sh.Generation != 12 ||
		!sh.Created.Equal(time.Date(2026, 11, 26, 7, 50, 0, 0, time.UTC)) {
		t.Fatalf("%+v", sh)
	}
	if _, err := ParseShow("ERROR: cannot find real path for 'x': No such file or directory\n"); err == nil {
		t.Fatal("accepted an error message")
	}
}

func TestSnapshotNames(t *testing.T) {
	ts := time.Date(2026, 11, 26, 8, 45, 0, 0, time.UTC)
	n := SnapshotName("services", ts.In(time.FixedZone("x", 3600)))
	if n != "services@20261126T084500Z" {
		t.Fatal(n)
	}
	b, got, ok := ParseSnapshotName(n)
	if !ok || b != "services" || !got.Equal(ts) {
		t.Fatalf("%q %v %v", b, got, ok)
	}
	for _, bad := range []string{"services", "services@", "@20261126T084500Z", "services@2026-11-26", "services@20261126T084500", "services@20261326T084500Z"} {
		if _, _, ok := ParseSnapshotName(bad); ok {
			t.Errorf("%q parsed as a replication snapshot", bad)
		}
	}
	if b, _, ok := ParseSnapshotName("a@b@20261126T084500Z"); !ok || b != "a@b" {
		t.Errorf("base with @: %q %v", b, ok)
	}
}

func snap(name, uuid, received string, ro bool) Subvolume {
	return Subvolume{Path: name, UUID: uuid, ReceivedUUID: received, ReadOnly: ro}
}

func TestParentByUUIDNotByName(t *testing.T) {
	src := Snapshots([]Subvolume{
		snap("services", "S", "", false),
		snap("services@20261126T080000Z", "A", "", true),
		snap("services@20261126T080500Z", "B", "", true),
		snap("services@20261126T081000Z", "C", "", true),
		snap("other@20261126T081500Z", "X", "", true),
	}, "services")
	if len(src) != 3 {
		t.Fatalf("snapshots: %+v", src)
	}
	// The target has a copy of A and a subvolume *named* like C that is
	// not a copy of C (different received UUID): A is the parent.
	dst := Snapshots([]Subvolume{
		snap("services@20261126T080000Z", "a", "A", true),
		snap("services@20261126T081000Z", "c", "ZZZ", true),
	}, "services")
	p, ok := Parent(src, dst)
	if !ok || p.Source.UUID != "A" || p.Target.UUID != "a" {
		t.Fatalf("parent %+v ok %v", p, ok)
	}
	// A writable copy does not count.
	dst[0].ReadOnly = false
	if _, ok := Parent(src, dst); ok {
		t.Fatal("a writable target was taken as a parent")
	}
}

func TestParentWhenSendingBackAfterFailover(t *testing.T) {
	// c1 received B from zippy (c1's copy has received_uuid B), then
	// became primary. Sending c1 -> zippy: c1's snapshot's received_uuid
	// equals zippy's B.
	c1 := Snapshots([]Subvolume{snap("services@20261126T080500Z", "b1", "B", true)}, "services")
	zippy := Snapshots([]Subvolume{snap("services@20261126T080500Z", "B", "", true)}, "services")
	p, ok := Parent(c1, zippy)
	if !ok || p.Source.UUID != "b1" || p.Target.UUID != "B" {
		t.Fatalf("%+v %v", p, ok)
	}
}

func TestGarbageOnlyOurUnfinishedReceives(t *testing.T) {
	dst := []Subvolume{
		snap("services@20261126T080000Z", "a", "A", true),  // complete
		snap("services@20261126T080500Z", "b", "", false),  // interrupted receive
		snap("services", "w", "", false),                   // the promoted writable copy
		snap("notes@20261126T080500Z", "n", "", false),     // another replication
		snap("services@manual", "m", "", false),            // not our naming
		snap("services@20261126T081000Z", "c", "C", false), // received, then made writable: not garbage
	}
	g := Garbage(dst, "services")
	if len(g) != 1 || g[0].UUID != "b" {
		t.Fatalf("%+v", g)
	}
}

func TestMarkReadOnly(t *testing.T) {
	all, _ := ParseList(list62)
	ro, _ := ParseList("ID 257 gen 7 top level 5 path services@20261126T084500Z\n")
	got := MarkReadOnly(all, ro)
	if got[0].ReadOnly || !got[1].ReadOnly {
		t.Fatalf("%+v", got)
	}
}

func FuzzParseList(f *testing.F) {
	f.Add(list62)
	f.Add(list5)
	for _, n := range hostile.Names("services") {
		f.Add("ID 257 gen 9 top level 5 parent_uuid - received_uuid - uuid 0badc0de path standby/" + n + "\n")
		f.Add("/persist/standby/" + n + "\n\tName: \t\t\t" + n + "\n\tUUID: \t\t\tu\n\tFlags: \t\t\t-\n")
	}
	f.Fuzz(func(t *testing.T, s string) {
		subs, err := ParseList(s)
		if err == nil {
			for _, sb := range subs {
				_ = sb.Name()
			}
		}
		_, _ = ParseShow(s)
	})
}

func TestNestedPaths(t *testing.T) {
	list := "ID 257 gen 7 top level 256 path services/a\nID 259 gen 7 top level 256 path services/dir/b\n"
	if got := NestedPaths("services\n", list); !reflect.DeepEqual(got, []string{"a", "dir/b"}) {
		t.Fatalf("got %v", got)
	}
	// The top-level subvolume itself: paths are already relative to it.
	if got := NestedPaths("/", "ID 256 gen 7 top level 5 path services\n"); !reflect.DeepEqual(got, []string{"services"}) {
		t.Fatalf("top: got %v", got)
	}
	if got := NestedPaths("@/persist", "ID 300 gen 1 top level 299 path <FS_TREE>/@/persist/x\n"); !reflect.DeepEqual(got, []string{"x"}) {
		t.Fatalf("FS_TREE: got %v", got)
	}
	if got := NestedPaths("services", ""); len(got) != 0 {
		t.Fatalf("none: got %v", got)
	}
}

// FuzzNestedPaths: whatever `btrfs subvolume list -o` prints, the paths
// returned are below the subvolume, never `..` out of it.
func FuzzNestedPaths(f *testing.F) {
	for _, n := range hostile.Names("services") {
		f.Add("services", "ID 257 gen 7 top level 256 path services/"+n+"\n")
		f.Add("/", "ID 257 gen 7 top level 5 path "+n+"\n")
	}
	f.Fuzz(func(t *testing.T, own, list string) {
		for _, p := range NestedPaths(own, list) {
			if strings.Contains(p, "\n") {
				t.Fatalf("%q: a path with a newline: %q", list, p)
			}
		}
	})
}

// FuzzSnapshotName: a name is a replication snapshot only when it is
// exactly what SnapshotName makes, so Snapshots and Garbage never take a
// planted name that merely looks like one ("never guessed").
func FuzzSnapshotName(f *testing.F) {
	for _, n := range hostile.Names("services") {
		f.Add(n)
	}
	f.Fuzz(func(t *testing.T, name string) {
		base, at, ok := ParseSnapshotName(name)
		if !ok {
			if g := Garbage([]Subvolume{{Path: "/d/" + name}}, "services"); len(g) != 0 && !strings.Contains(name, "/") {
				t.Fatalf("%q is garbage but no snapshot name", name)
			}
			return
		}
		if SnapshotName(base, at) != name {
			t.Fatalf("%q parsed as %q at %s, which names %q", name, base, at, SnapshotName(base, at))
		}
	})
}
