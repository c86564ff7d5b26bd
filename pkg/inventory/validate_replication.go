package inventory

import (
	"fmt"
	"path"
	"sort"
	"strings"

	"github.com/hoctl/hoctl/pkg/retention"

	"github.com/hoctl/hoctl/pkg/yamlerr"
)

func (v *validator) replication(name string, r *Replication) {
	at := "replication." + name
	if r == nil {
		v.at(at, "expected source and target")
		return
	}
	r.Name = name
	if !nameRE.MatchString(name) {
		v.at(at, "replication name %q: expected letters, digits, '-' and '_'", name)
	}
	v.hostRef(at+".source.host", r.Source.Host)
	v.absPath(at+".source.subvolume", r.Source.Subvolume)
	if r.Source.SnapshotDir == "" && r.Source.Subvolume != "" {
		r.Source.SnapshotDir = DefaultSnapshotDir(r.Source.Subvolume)
	} else if r.Source.SnapshotDir != "" {
		v.absPath(at+".source.snapshot_dir", r.Source.SnapshotDir)
	}
	for i, n := range r.Source.ExcludeNested {
		if n == "" || path.IsAbs(n) || path.Clean(n) != n || n == "." || n == ".." || strings.HasPrefix(n, "../") {
			v.at(fmt.Sprintf("%s.source.exclude_nested.%d", at, i), "expected a clean path relative to the subvolume, like cache or docker/btrfs, got %q", n)
		}
	}
	v.hostRef(at+".target.host", r.Target.Host)
	v.absPath(at+".target.dir", r.Target.Dir)
	if r.Source.Host != "" && r.Source.Host == r.Target.Host && r.Target.Dir == r.Source.SnapshotDir {
		v.at(at+".target.dir", "target dir is the source's snapshot dir on the same host")
	}
	r.Keep.Source = v.keep(at+".keep.source", r.Keep.RawSource, DefaultKeepSource)
	r.Keep.Target = v.keep(at+".keep.target", r.Keep.RawTarget, DefaultKeepTarget)
	switch r.Transport {
	case "":
		r.Transport = TransportRelay
	case TransportRelay, TransportDirect:
	default:
		v.at(at+".transport", "expected relay or direct, got %q", r.Transport)
	}
	switch r.Compress {
	case "":
		r.Compress = "none"
	case "none", "zstd":
	default:
		v.at(at+".compress", "expected none or zstd, got %q", r.Compress)
	}
}

// snapshotSet is where one end of a replication keeps its snapshots:
// every <base>@<time> in dir on host. Retention prunes by listing exactly
// that, so two replications with one set prune each other's snapshots.
type snapshotSet struct{ host, dir, base string }

// sharedSnapshots refuses two replications whose ends keep snapshots in
// one set. Each run protects only its own newest common snapshot, so the
// other's retention (a shorter keep, or the same keep while the other lags)
// deletes the parent of its next incremental send, whatever the keeps say.
// Each end in its own directory needs no joint retention at all.
func (v *validator) sharedSnapshots() {
	names := make([]string, 0, len(v.inv.Replication))
	for n, r := range v.inv.Replication {
		if r != nil {
			names = append(names, n)
		}
	}
	// File order, so the problem is reported on the later one: the one
	// an operator most likely just added.
	sort.Slice(names, func(i, j int) bool {
		li, lj := v.line("replication."+names[i]), v.line("replication."+names[j])
		if li != lj {
			return li < lj
		}
		return names[i] < names[j]
	})
	type end struct {
		name, side string
		keep       retention.Policy
	}
	seen := map[snapshotSet]end{}
	for _, n := range names {
		r := v.inv.Replication[n]
		base := path.Base(r.Source.Subvolume)
		for _, e := range []struct {
			side, field string
			set         snapshotSet
			keep        retention.Policy
		}{
			{"source", "source.snapshot_dir", snapshotSet{r.Source.Host, r.Source.SnapshotDir, base}, r.Keep.Source},
			{"target", "target.dir", snapshotSet{r.Target.Host, r.Target.Dir, base}, r.Keep.Target},
		} {
			if e.set.host == "" || e.set.dir == "" || r.Source.Subvolume == "" {
				continue
			}
			first, dup := seen[e.set]
			if !dup {
				seen[e.set] = end{n, e.side, e.keep}
				continue
			}
			if first.name == n {
				continue // the same-host check in replication says it
			}
			v.at("replication."+n+"."+e.field,
				"replications %s and %s both keep snapshots as %s@* in %s:%s (%s's %s, %s's %s): each one's retention prunes the other's snapshots (%s keeps %s, %s keeps %s), the parent of the other's next incremental send among them; set replication.%s.%s to a directory of %s's own (create it on %s), such as %s",
				first.name, n, e.set.base, e.set.host, e.set.dir, first.name, first.side, n, e.side,
				first.name, first.keep, n, e.keep, n, e.field, n, e.set.host, path.Join(path.Dir(e.set.dir), path.Base(e.set.dir)+"-"+n))
		}
	}
}

// line is the line of a field in the file, 0 when it has none.
func (v *validator) line(field string) int {
	return yamlerr.At(v.name, v.ast, field, "").Line
}

func (v *validator) nfs(name string, s *NFSService) {
	at := "nfs." + name
	if s == nil {
		v.at(at, "expected export, subvolume and primary")
		return
	}
	s.Name = name
	v.absPath(at+".export", s.Export)
	v.absPath(at+".subvolume", s.Subvolume)
	if s.Replication != "" {
		if _, ok := v.inv.Replication[s.Replication]; !ok {
			v.at(at+".replication", "%q is not a replication of this inventory", s.Replication)
		}
	}
	v.hostRef(at+".primary", s.Primary)
	for i, sb := range s.Standbys {
		v.hostRef(fmt.Sprintf("%s.standbys.%d", at, i), sb)
		if sb == s.Primary {
			v.at(fmt.Sprintf("%s.standbys.%d", at, i), "%q is the primary; a standby must be another host", sb)
		}
	}
	if s.Unit == "" {
		s.Unit = DefaultNFSUnit
	}
	if s.OwnerKey == "" {
		s.OwnerKey = "hoctl/nfs/" + name + "/owner"
	}
	if s.MaxLag == 0 {
		s.MaxLag = DefaultMaxLag
	} else if s.MaxLag < 0 {
		v.at(at+".max_lag", "expected a positive duration such as 15m")
	}
	if s.Clients != "" {
		if _, err := v.inv.Select(s.Clients); err != nil {
			v.at(at+".clients", "%v", err)
		}
	}
}

// DefaultSnapshotDir is where a subvolume's source snapshots go when the
// inventory does not say: a directory of their own beside it
// (/persist/services-snapshots), never its parent, which holds the
// subvolume itself (dedicatedDirs).
func DefaultSnapshotDir(subvolume string) string {
	return subvolume + "-snapshots"
}

// within reports whether p is dir or below it.
func within(p, dir string) bool {
	return p == dir || strings.HasPrefix(p, strings.TrimSuffix(dir, "/")+"/")
}

// dedicatedDirs refuses a replication dir that holds the replicated
// subvolume or anything an NFS service serves. Both dirs receive send
// streams (the target's forward, the source's after a failover), and a
// stream may write anywhere inside its dir: with the subvolume's parent
// as the dir, `../services/f` is inside it, and over the live data.
func (v *validator) dedicatedDirs(name string, r *Replication) {
	if r == nil {
		return
	}
	at := "replication." + name
	fix := "a stream received there could write over it: use a dedicated directory that holds only the snapshots, such as " + DefaultSnapshotDir(r.Source.Subvolume)
	for _, d := range []struct{ field, host, dir string }{{at + ".source.snapshot_dir", r.Source.Host, r.Source.SnapshotDir}, {at + ".target.dir", r.Target.Host, r.Target.Dir}} {
		if d.dir == "" || !path.IsAbs(d.dir) {
			continue
		}
		if r.Source.Subvolume != "" && within(r.Source.Subvolume, d.dir) {
			v.at(d.field, "%s holds the replicated subvolume %s: %s", d.dir, r.Source.Subvolume, fix)
			continue
		}
		if p := v.othersHeld(name, d.host, d.dir); p != "" {
			v.at(d.field, "%s is or holds %s: a stream received there could write over it, and each replication's retention and deletes would act on the other's: use a dedicated directory of %s's own", d.dir, p, name)
			continue
		}
		for _, sn := range sortedNames(v.inv.NFS) {
			s := v.inv.NFS[sn]
			if s == nil {
				continue
			}
			for _, p := range []string{s.Export, s.Subvolume} {
				if p != "" && within(p, d.dir) {
					v.at(d.field, "%s holds %s, which NFS service %s serves: %s", d.dir, p, sn, fix)
				}
			}
		}
	}
}

// othersHeld is what dir on host holds or is of another replication:
// its subvolume (on its source host, and on its target host, where a
// failover promotes it), its snapshot dir or its target dir; "" when
// nothing. A dir equal to another's with the same snapshot base is
// sharedSnapshots' to report.
func (v *validator) othersHeld(name, host, dir string) string {
	if host == "" {
		return ""
	}
	dir = path.Clean(dir)
	base := path.Base(v.inv.Replication[name].Source.Subvolume)
	for _, on := range sortedNames(v.inv.Replication) {
		o := v.inv.Replication[on]
		if on == name || o == nil {
			continue
		}
		oBase := path.Base(o.Source.Subvolume)
		for _, p := range []struct{ what, host, path string }{
			{"subvolume", o.Source.Host, o.Source.Subvolume},
			{"subvolume", o.Target.Host, o.Source.Subvolume},
			{"snapshot dir", o.Source.Host, o.Source.SnapshotDir},
			{"target dir", o.Target.Host, o.Target.Dir},
		} {
			if p.host != host || p.path == "" || !path.IsAbs(p.path) {
				continue
			}
			held := path.Clean(p.path)
			if p.what != "subvolume" && held == dir && oBase == base {
				continue
			}
			if within(held, dir) {
				return fmt.Sprintf("%s, replication %s's %s on %s", p.path, on, p.what, host)
			}
		}
	}
	return ""
}
