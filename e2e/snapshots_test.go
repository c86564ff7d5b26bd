package e2e

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/hoctl/hoctl/pkg/sshexec"
)

// storageRunners connects to the storage lab's hosts.
func storageRunners(t *testing.T, names ...string) []sshexec.Runner {
	t.Helper()
	return labRunners(t, storage, names...)
}

func must(t *testing.T, r sshexec.Runner, script string) string {
	t.Helper()
	res, err := r.Run(context.Background(), sshexec.Cmd{Script: script})
	if err != nil {
		t.Fatalf("%s: %s: %v", r.Name(), script, err)
	}
	return string(res.Stdout)
}

type snapRow struct {
	Name         string `json:"name"`
	UUID         string `json:"uuid"`
	ReceivedUUID string `json:"received_uuid"`
	ReadOnly     bool   `json:"readonly"`
	Common       bool   `json:"common"`
	NextParent   bool   `json:"next_parent"`
	Role         string `json:"role"`
}

func snapshots(t *testing.T, host string) []snapRow {
	t.Helper()
	r := hoctl(t, storage.Inventory, "--json", "snapshots", host)
	if r.code != 0 {
		t.Fatalf("snapshots %s: exit %d\n%s", host, r.code, r.stderr)
	}
	var rows []snapRow
	for _, l := range strings.Split(strings.TrimSpace(r.stdout), "\n") {
		if l == "" {
			continue
		}
		var row snapRow
		if err := json.Unmarshal([]byte(l), &row); err != nil {
			t.Fatalf("%q: %v", l, err)
		}
		rows = append(rows, row)
	}
	return rows
}

// Real btrfs on both lab hosts: snapshots sent by hand are matched by
// UUID, the newest shared one is the next parent, and a snapshot named
// like a shared one but not received from it is not.
func TestSnapshotsMatchByUUID(t *testing.T) {
	rs := storageRunners(t, "zippy", "c1")
	zippy, c1 := rs[0], rs[1]
	must(t, zippy, "btrfs subvolume create /persist/services >/dev/null && echo data > /persist/services/f")
	must(t, c1, "mkdir -p /persist/services-standby")
	must(t, zippy, "mkdir -p /persist/services-snapshots")
	t.Cleanup(func() {
		_, _ = zippy.Run(context.Background(), sshexec.Cmd{Script: "btrfs subvolume delete /persist/services-snapshots/services@* /persist/services >/dev/null 2>&1"})
		_, _ = c1.Run(context.Background(), sshexec.Cmd{Script: "btrfs subvolume delete /persist/services-standby/services@* >/dev/null 2>&1"})
	})
	for _, ts := range []string{"20261126T080000Z", "20261126T080500Z"} {
		must(t, zippy, "btrfs subvolume snapshot -r /persist/services /persist/services-snapshots/services@"+ts+" >/dev/null")
	}
	send := func(name string) {
		if _, err := sshexec.Pipe(context.Background(), zippy, sshexec.Cmd{Argv: []string{"btrfs", "send", "/persist/services-snapshots/" + name}},
			c1, sshexec.Cmd{Argv: []string{"btrfs", "receive", "/persist/services-standby"}}, nil); err != nil {
			t.Fatal(err)
		}
	}
	send("services@20261126T080000Z")
	// A look-alike: same name as zippy's newer snapshot, but a fresh
	// read-only subvolume of c1's own, not a received copy.
	must(t, c1, "btrfs subvolume create /persist/services-standby/tmpl >/dev/null && btrfs subvolume snapshot -r /persist/services-standby/tmpl /persist/services-standby/services@20261126T080500Z >/dev/null && btrfs subvolume delete /persist/services-standby/tmpl >/dev/null")

	rows := snapshots(t, "zippy")
	if len(rows) != 2 || rows[0].Role != "source" {
		t.Fatalf("zippy rows %+v", rows)
	}
	if !rows[0].Common || !rows[0].NextParent || rows[1].Common {
		t.Fatalf("want only the first snapshot shared (by UUID, not name): %+v", rows)
	}
	c1rows := snapshots(t, "c1")
	if len(c1rows) != 2 || c1rows[0].ReceivedUUID != rows[0].UUID || !c1rows[0].NextParent || c1rows[1].Common {
		t.Fatalf("c1 rows %+v", c1rows)
	}
	plain := hoctl(t, storage.Inventory, "snapshots", "zippy")
	if !strings.Contains(plain.stdout, "yes (next parent)") || !strings.Contains(plain.stdout, "zippy:/persist/services-snapshots → c1:/persist/services-standby") {
		t.Fatalf("plain output:\n%s", plain.stdout)
	}
	if r := hoctl(t, storage.Inventory, "snapshots", "zipy"); r.code != 2 || !strings.Contains(r.stderr, "did you mean") {
		t.Fatalf("unknown host: exit %d %s", r.code, r.stderr)
	}
}
