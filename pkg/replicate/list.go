// Package replicate is hoctl's btrfs replication between hosts: reading
// each side's replication snapshots (list.go, also behind `hoctl
// snapshots`) and the replication runbook that snapshots, sends, verifies
// and prunes (replicate.go).
package replicate

import (
	"context"
	"fmt"
	"github.com/hoctl/hoctl/pkg/retention"
	"path"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/hoctl/hoctl/pkg/btrfs"
	"github.com/hoctl/hoctl/pkg/inventory"
	"github.com/hoctl/hoctl/pkg/sshexec"
)

// separator starts each entry of a listing, followed by its path.
const separator = "--hoctl-next--"

// ListArgv shows every subvolume named base@* in dir: one command, one
// round trip, whatever the number of snapshots. `show` is asked per entry
// rather than `subvolume list` for the whole filesystem, so paths never
// have to be mapped between the mount and the filesystem's top. It is one
// argv, not a script, so that a target's forced-command filter can parse
// and allow it (filter.go), which runs its own listing instead. -type d:
// a symlink a stream planted under a snapshot's name is never shown
// (`show` would follow it) and so never chosen for deletion.
func ListArgv(dir, base string) []string {
	return []string{"find", dir, "-mindepth", "1", "-maxdepth", "1", "-type", "d", "-name", base + "@*",
		"-printf", separator + " %p\\n", "-exec", "btrfs", "subvolume", "show", "{}", ";"}
}

// legacyListArgv is what hoctl before -type d sent; the filter allows it.
func legacyListArgv(dir, base string) []string {
	return slices.Delete(ListArgv(dir, base), 5, 7)
}

// Side is one host's replication snapshots in one directory.
type Side struct {
	Host      string
	Dir       string
	Snapshots []btrfs.Snapshot // oldest first
	Problems  []string         // entries that are not snapshots, ignored
}

// NewestComplete is the newest snapshot on this side that holds whole
// data: read-only, whether received or (an old primary after a failover)
// taken here. Garbage of an interrupted receive is writable and never
// counts. Failover promotes it; status measures lag by it.
func (s *Side) NewestComplete() (btrfs.Snapshot, bool) {
	for i := len(s.Snapshots) - 1; i >= 0; i-- {
		if s.Snapshots[i].ReadOnly {
			return s.Snapshots[i], true
		}
	}
	return btrfs.Snapshot{}, false
}

// futureSkew is how far ahead of now a snapshot's time may be (another
// host's clock, a timer on the source host) and still be one of hoctl's.
const futureSkew = time.Hour

// ignoreFuture moves snapshots named later than now (and futureSkew) to
// Problems: hoctl never named them, something planted them (a send
// stream, through `..`), and taken as the newest they would push every
// later name past what a name can hold.
func (s *Side) ignoreFuture(now time.Time) {
	kept := s.Snapshots[:0]
	for _, sn := range s.Snapshots {
		if sn.Time.After(now.Add(futureSkew)) {
			s.Problems = append(s.Problems, fmt.Sprintf("%q: named later than now (%s): ignored, never deleted (something planted it, a send stream perhaps: check and remove it by hand)",
				sn.Name(), now.UTC().Format(time.RFC3339)))
			continue
		}
		kept = append(kept, sn)
	}
	s.Snapshots = kept
}

// Complete is the side's snapshots that hold whole data (read-only),
// oldest first: what retention decides on. Writable entries are receives
// in progress or their garbage, which retention never touches.
func (s *Side) Complete() []btrfs.Snapshot {
	var out []btrfs.Snapshot
	for _, sn := range s.Snapshots {
		if sn.ReadOnly {
			out = append(out, sn)
		}
	}
	return out
}

// List reads the snapshots named base@<timestamp> in dir on r: one
// command, one round trip, whatever the number of snapshots. The dir
// primitive (dirop.go) lists the dir through its own descriptor and
// answers in JSON lines; an entry that is not exactly a snapshot (another
// name, or a symlink, file, FIFO or plain directory under a snapshot's
// name) is reported in Problems and never acted on.
func List(ctx context.Context, r sshexec.Runner, dir, base string) (*Side, error) {
	// Empty input, not none: a key forced to `btrfs receive` then fails
	// at once with "empty stream" (recognised below) instead of waiting
	// for a stream on the open input of a command without one.
	cmd := dirCmd(r, dir, opList, base)
	cmd.Stdin = strings.NewReader("")
	res, err := r.Run(ctx, cmd)
	if err != nil {
		if isEmptyStream(res) {
			return nil, restrictedKeyError(r.Name())
		}
		if res != nil && strings.Contains(string(res.Stderr), "No such file or directory") {
			return nil, fmt.Errorf("%s: %s does not exist", r.Name(), dir)
		}
		return nil, dirOpError(r.Name(), res, err)
	}
	entries, err := ParseEntries(res.Stdout)
	if err != nil {
		return nil, fmt.Errorf("%s: listing %s: %w", r.Name(), dir, err)
	}
	side := &Side{Host: r.Name(), Dir: dir}
	var subs []btrfs.Subvolume
	subs, side.Problems = Classify(entries, dir, base)
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
	KeepSource retention.Policy
	KeepTarget retention.Policy
	// ExcludeNested are subvolumes nested in Subvolume left out on purpose.
	ExcludeNested []string
	Transport     string // inventory.TransportRelay or TransportDirect
	Compress      string // "none" or "zstd"
}

// EndsOf describes a replication of the inventory.
func EndsOf(r *inventory.Replication) Ends {
	return Ends{Name: r.Name, Base: path.Base(r.Source.Subvolume), SourceHost: r.Source.Host, SourceDir: r.Source.SnapshotDir,
		TargetHost: r.Target.Host, TargetDir: r.Target.Dir, Subvolume: r.Source.Subvolume, KeepSource: r.Keep.Source, KeepTarget: r.Keep.Target, ExcludeNested: r.Source.ExcludeNested,
		Transport: r.Transport, Compress: r.Compress}
}

// Keep is the retention policy of the source side, or of the target.
func (e Ends) Keep(source bool) retention.Policy {
	if source {
		return e.KeepSource
	}
	return e.KeepTarget
}

// Reverse is the replication sent back after a failover: the standby,
// now serving the subvolume at the same path, is the source, and its
// snapshots live beside the received copies, where the next incremental's
// parent already is; the old primary receives them beside its own old
// snapshots, which hold the other end of that parent (btrfs.Related). The
// name, and so the lock, stays the same: one direction runs at a time.
func (e Ends) Reverse() Ends {
	r := e
	r.SourceHost, r.SourceDir, r.TargetHost, r.TargetDir = e.TargetHost, e.TargetDir, e.SourceHost, e.SourceDir
	r.KeepSource, r.KeepTarget = e.KeepTarget, e.KeepSource
	return r
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
