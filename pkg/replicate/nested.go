package replicate

import (
	"context"
	"fmt"
	"path"
	"strings"

	"github.com/hoctl/hoctl/pkg/btrfs"
	"github.com/hoctl/hoctl/pkg/sshexec"
)

// Nested lists the subvolumes nested in the source subvolume that a
// snapshot of it leaves out (they arrive on the target as empty
// directories, the seed's "nested snapshots appear as empty dirs"), as
// paths relative to it: all but those the inventory excludes on purpose
// and hoctl's own snapshots when the snapshot dir is inside it.
func Nested(ctx context.Context, run sshexec.Runner, e Ends) ([]string, error) {
	q := sshexec.Quote(e.Subvolume)
	res, err := run.Run(ctx, sshexec.Cmd{Script: "btrfs subvolume show " + q + " | head -n 1 && echo -- && btrfs subvolume list -o " + q})
	if err != nil {
		return nil, fmt.Errorf("%s: listing subvolumes nested in %s: %w", run.Name(), e.Subvolume, sshexec.OneLine(res, err))
	}
	own, list, _ := strings.Cut(string(res.Stdout), "\n--\n")
	return nestedOf(e, own, list), nil
}

// nestedOf reads the first line of the subvolume's show (own) and its
// `btrfs subvolume list -o` (list): the nested subvolumes a snapshot of
// it leaves out, as Nested says.
func nestedOf(e Ends, own, list string) []string {
	var out []string
	for _, rel := range btrfs.NestedPaths(own, list) {
		if excluded(rel, e.ExcludeNested) {
			continue
		}
		full := path.Join(e.Subvolume, rel)
		if b, _, ok := btrfs.ParseSnapshotName(path.Base(full)); ok && b == e.Base && path.Dir(full) == e.SourceDir {
			continue
		}
		out = append(out, rel)
	}
	return out
}

// excluded reports whether rel is, or lies inside, a path excluded on
// purpose.
func excluded(rel string, ex []string) bool {
	for _, x := range ex {
		if rel == x || strings.HasPrefix(rel, x+"/") {
			return true
		}
	}
	return false
}

// NestedError refuses a replication that would silently leave data out.
func NestedError(host string, e Ends, nested []string) error {
	return fmt.Errorf("%s: %s holds nested subvolumes that no snapshot of it contains (they would arrive on %s as empty directories): %s. "+
		"Move their data into %s, replicate them on their own, or list them under replication.%s.source.exclude_nested to leave them out on purpose",
		host, e.Subvolume, e.TargetHost, strings.Join(nested, ", "), e.Subvolume, e.Name)
}
