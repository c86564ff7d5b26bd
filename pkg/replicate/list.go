// Package replicate is hoctl's btrfs replication between hosts: reading
// each side's replication snapshots (list.go, also behind `hoctl
// snapshots`) and the replication runbook that snapshots, sends, verifies
// and prunes (replicate.go).
package replicate

import (
	"context"
	"fmt"
	"path"
	"sort"
	"strings"

	"github.com/hoctl/hoctl/pkg/btrfs"
	"github.com/hoctl/hoctl/pkg/inventory"
	"github.com/hoctl/hoctl/pkg/sshexec"
)

// separator ends each `btrfs subvolume show` in a listing.
const separator = "--hoctl-next--"

// listScript shows every subvolume named base@* in dir: one command, one
// round trip, whatever the number of snapshots. `show` is asked per entry
// rather than `subvolume list` for the whole filesystem, so paths never
// have to be mapped between the mount and the filesystem's top.
func listScript(dir, base string) string {
	return fmt.Sprintf(`cd %s || exit 3
for d in %s@*; do
  [ -e "$d" ] || continue
  btrfs subvolume show "$d" || echo "ERROR: not a subvolume: $d"
  echo %s
done`, sshexec.Quote(dir), sshexec.Quote(base), separator)
}

// Side is one host's replication snapshots in one directory.
type Side struct {
	Host      string
	Dir       string
	Snapshots []btrfs.Snapshot // oldest first
	Problems  []string         // entries that are not subvolumes
}

// List reads the snapshots named base@<timestamp> in dir on r.
func List(ctx context.Context, r sshexec.Runner, dir, base string) (*Side, error) {
	res, err := r.Run(ctx, sshexec.Cmd{Script: listScript(dir, base)})
	if err != nil {
		if res != nil && res.ExitCode == 3 {
			return nil, fmt.Errorf("%s: %s does not exist", r.Name(), dir)
		}
		return nil, err
	}
	side := &Side{Host: r.Name(), Dir: dir}
	var subs []btrfs.Subvolume
	for _, chunk := range strings.Split(string(res.Stdout), separator+"\n") {
		chunk = strings.TrimLeft(chunk, "\n")
		if strings.TrimSpace(chunk) == "" {
			continue
		}
		if strings.HasPrefix(chunk, "ERROR") {
			side.Problems = append(side.Problems, strings.TrimSpace(chunk))
			continue
		}
		sh, err := btrfs.ParseShow(chunk)
		if err != nil {
			side.Problems = append(side.Problems, err.Error())
			continue
		}
		subs = append(subs, btrfs.Subvolume{ID: sh.ID, Gen: sh.Generation, UUID: sh.UUID, ParentUUID: sh.ParentUUID,
			ReceivedUUID: sh.ReceivedUUID, Path: path.Join(dir, sh.Name), ReadOnly: sh.ReadOnly, Created: sh.Created})
	}
	side.Snapshots = btrfs.Snapshots(subs, base)
	return side, nil
}

// Ends are the two directories of a replication.
type Ends struct {
	Name       string
	Base       string // the subvolume's name: snapshots are Base@<time>
	SourceHost string
	SourceDir  string
	TargetHost string
	TargetDir  string
	Subvolume  string
	KeepSource int
	KeepTarget int
}

// EndsOf describes a replication of the inventory.
func EndsOf(r *inventory.Replication) Ends {
	return Ends{Name: r.Name, Base: path.Base(r.Source.Subvolume), SourceHost: r.Source.Host, SourceDir: r.Source.SnapshotDir,
		TargetHost: r.Target.Host, TargetDir: r.Target.Dir, Subvolume: r.Source.Subvolume, KeepSource: r.Keep.Source, KeepTarget: r.Keep.Target}
}

// Involving returns the inventory's replications in which host takes
// part, sorted by name; name, when set, selects one.
func Involving(inv *inventory.Inventory, host, name string) ([]Ends, error) {
	if name != "" {
		r := inv.Replication[name]
		if r == nil {
			return nil, fmt.Errorf("no replication %q in the inventory", name)
		}
		if host != "" && r.Source.Host != host && r.Target.Host != host {
			return nil, fmt.Errorf("host %s takes no part in replication %q (%s → %s)", host, name, r.Source.Host, r.Target.Host)
		}
		return []Ends{EndsOf(r)}, nil
	}
	var out []Ends
	for _, r := range inv.Replication {
		if r.Source.Host == host || r.Target.Host == host {
			out = append(out, EndsOf(r))
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	if len(out) == 0 {
		return nil, fmt.Errorf("host %s takes part in no replication of the inventory", host)
	}
	return out, nil
}
