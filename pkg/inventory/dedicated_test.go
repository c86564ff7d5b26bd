package inventory

import (
	"strings"
	"testing"
)

// Issue 19 (re-attack), finding 2: a replication dir checked only against
// its own subvolume. On a host, no replication's dir may hold or equal
// another replication's subvolume, snapshot dir or target dir: a stream
// received into it could write over the other's live data, and the
// other's retention and its key's deletes would act on it.
func TestReplicationDirMustNotHoldAnotherReplications(t *testing.T) {
	const head = "hosts: {z: {}, c: {}, d: {}}\nreplication:\n"
	db := "  db:\n    source: {host: c, subvolume: /persist/area/db, snapshot_dir: /persist/db-snapshots}\n    target: {host: d, dir: /persist/db-standby}\n"
	for _, c := range []struct{ name, src, want string }{
		{"a target dir holding another's subvolume", head + db +
			"  services:\n    source: {host: z, subvolume: /persist/services}\n    target: {host: c, dir: /persist/area}\n",
			"replication.services.target.dir: /persist/area is or holds /persist/area/db, replication db's subvolume on c"},
		{"a target dir that is another's snapshot dir", head + db +
			"  services:\n    source: {host: z, subvolume: /persist/services}\n    target: {host: c, dir: /persist/db-snapshots}\n",
			"replication.services.target.dir: /persist/db-snapshots is or holds /persist/db-snapshots, replication db's snapshot dir on c"},
		{"a snapshot dir that is another's target dir", head + db +
			"  services:\n    source: {host: d, subvolume: /data/services, snapshot_dir: /persist/db-standby}\n    target: {host: z, dir: /persist/services-standby}\n",
			"replication.services.source.snapshot_dir: /persist/db-standby is or holds /persist/db-standby, replication db's target dir on d"},
		{"a target dir holding another's subvolume on its target host", head + db +
			"  services:\n    source: {host: z, subvolume: /persist/services}\n    target: {host: d, dir: /persist/area}\n",
			"replication.services.target.dir: /persist/area is or holds /persist/area/db, replication db's subvolume on d"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := parse(t, c.src)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error = %v\nwant it to contain %q", err, c.want)
			}
		})
	}
	// Other hosts, or sibling dirs: accepted.
	for _, ok := range []string{
		head + db + "  services:\n    source: {host: z, subvolume: /persist/services}\n    target: {host: c, dir: /persist/services-standby}\n",
		head + db + "  services:\n    source: {host: z, subvolume: /persist/services, snapshot_dir: /persist/area}\n    target: {host: d, dir: /persist/services-standby}\n",
	} {
		if _, err := parse(t, ok); err != nil {
			t.Errorf("dedicated dirs refused: %v\n%s", err, ok)
		}
	}
}
