package replicate

import "testing"

// A resumed run sends the snapshot its snapshot step journaled taking:
// the name is read back only from that step's own command for these
// ends, never from another command or another subvolume's.
func TestTookSnapshotReadsOnlyTheSnapshotStepsCommand(t *testing.T) {
	e := Ends{SourceDir: "/persist/services-snapshots", Subvolume: "/persist/services", Base: "services"}
	name := "services@20261207T204755Z"
	if got := TookSnapshot(e, snapshotCmd(nil, e.SourceDir, e.Subvolume, name).Line()); got != name {
		t.Fatalf("TookSnapshot of the step's command = %q, want %q", got, name)
	}
	for _, cmd := range []string{
		"",
		sendCmdLine(e, name),
		snapshotCmd(nil, "/elsewhere", e.Subvolume, name).Line(),
		snapshotCmd(nil, e.SourceDir, "/persist/db", "db@20261207T204755Z").Line(),
		snapshotCmd(nil, e.SourceDir, e.Subvolume, "services@yesterday").Line(),
	} {
		if got := TookSnapshot(e, cmd); got != "" {
			t.Errorf("TookSnapshot(%q) = %q, want none", cmd, got)
		}
	}
}

func sendCmdLine(e Ends, name string) string {
	return "hoctl dir-op " + e.SourceDir + " send " + name
}
