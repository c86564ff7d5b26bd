// Package btrfs knows btrfs replication's facts, without running anything:
// it parses `btrfs subvolume list` and `show` output (btrfs-progs 5.x and
// 6.x), names and recognises replication snapshots, picks the parent of an
// incremental send by UUIDs (never by names), finds the garbage an
// interrupted receive leaves, and decides what retention prunes. The
// replicate command (issue 4) runs the commands and acts on these answers.
package btrfs

import (
	"bufio"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Subvolume is one line of `btrfs subvolume list -c -u -q -R`, plus its
// read-only flag (from a second `list -r` or from `show`).
type Subvolume struct {
	ID           uint64 `json:"id"`
	Gen          uint64 `json:"gen"`
	CGen         uint64 `json:"cgen"`
	TopLevel     uint64 `json:"top_level"`
	ParentUUID   string `json:"parent_uuid,omitempty"`
	ReceivedUUID string `json:"received_uuid,omitempty"`
	UUID         string `json:"uuid"`
	Path         string `json:"path"`
	ReadOnly     bool   `json:"readonly"`
	// Created is known from `show` only (zero from `list`).
	Created time.Time `json:"created,omitzero"`
}

// Name is the last element of the subvolume's path.
func (s Subvolume) Name() string {
	if i := strings.LastIndexByte(s.Path, '/'); i >= 0 {
		return s.Path[i+1:]
	}
	return s.Path
}

func uuidField(v string) string {
	if v == "-" {
		return ""
	}
	return v
}

// ParseList parses `btrfs subvolume list` output with any of the -c -u -q
// -R -g -s -a options. Fields are found by name, so column order and
// padding (which differ between btrfs-progs versions) do not matter; the
// path is the rest of the line. "-" means no UUID.
func ParseList(out string) ([]Subvolume, error) {
	var subs []Subvolume
	sc := bufio.NewScanner(strings.NewReader(out))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" {
			continue
		}
		s, err := parseListLine(line)
		if err != nil {
			return nil, fmt.Errorf("btrfs subvolume list, line %d: %w: %q", n, err, line)
		}
		subs = append(subs, s)
	}
	return subs, sc.Err()
}

func parseListLine(line string) (Subvolume, error) {
	var s Subvolume
	i := strings.Index(line, " path ")
	if !strings.HasPrefix(line, "ID ") || i < 0 {
		return s, fmt.Errorf("expected \"ID … path …\"")
	}
	s.Path = line[i+len(" path "):]
	s.Path = strings.TrimPrefix(s.Path, "<FS_TREE>/")
	f := strings.Fields(line[:i])
	num := func(v string) (uint64, error) { return strconv.ParseUint(v, 10, 64) }
	seenID := false
	for k := 0; k < len(f); k++ {
		key := f[k]
		if key == "top" && k+1 < len(f) && f[k+1] == "level" {
			key = "top level"
			k++
		}
		if key == "otime" { // a date and a time
			k += 2
			continue
		}
		if k+1 >= len(f) {
			return s, fmt.Errorf("field %q has no value", key)
		}
		v := f[k+1]
		k++
		var err error
		switch key {
		case "ID":
			s.ID, err = num(v)
			seenID = true
		case "gen":
			s.Gen, err = num(v)
		case "cgen":
			s.CGen, err = num(v)
		case "top level":
			s.TopLevel, err = num(v)
		case "parent_uuid":
			s.ParentUUID = uuidField(v)
		case "received_uuid":
			s.ReceivedUUID = uuidField(v)
		case "uuid":
			s.UUID = uuidField(v)
		default:
			// Unknown fields of newer btrfs-progs are skipped with their value.
		}
		if err != nil {
			return s, fmt.Errorf("field %q: %w", key, err)
		}
	}
	if !seenID {
		return s, fmt.Errorf("no ID")
	}
	return s, nil
}

// MarkReadOnly sets ReadOnly on the subvolumes whose IDs appear in ro, the
// output of `btrfs subvolume list -r`.
func MarkReadOnly(all, ro []Subvolume) []Subvolume {
	ids := map[uint64]bool{}
	for _, s := range ro {
		ids[s.ID] = true
	}
	out := make([]Subvolume, len(all))
	for i, s := range all {
		s.ReadOnly = ids[s.ID]
		out[i] = s
	}
	return out
}

// Show is `btrfs subvolume show` output.
type Show struct {
	Name         string
	UUID         string
	ParentUUID   string
	ReceivedUUID string
	Created      time.Time
	ID           uint64
	Generation   uint64
	ReadOnly     bool
	Fields       map[string]string // every "Key: value" line, as printed
}

// ParseShow parses `btrfs subvolume show` output of btrfs-progs 5.x and
// 6.x ("Key: value" lines, tab-indented; the first line is the path).
func ParseShow(out string) (*Show, error) {
	sh := &Show{Fields: map[string]string{}}
	for _, line := range strings.Split(out, "\n") {
		// Fields are indented; the unindented first line is the path.
		if !strings.HasPrefix(line, "\t") && !strings.HasPrefix(line, " ") {
			continue
		}
		k, v, ok := strings.Cut(strings.TrimSpace(line), ":")
		if !ok {
			continue
		}
		sh.Fields[strings.TrimSpace(k)] = strings.TrimSpace(v)
	}
	get := func(k string) string { return sh.Fields[k] }
	sh.Name = get("Name")
	sh.UUID = uuidField(get("UUID"))
	sh.ParentUUID = uuidField(get("Parent UUID"))
	sh.ReceivedUUID = uuidField(get("Received UUID"))
	if sh.UUID == "" {
		return nil, fmt.Errorf("btrfs subvolume show: no UUID in output")
	}
	sh.ID, _ = strconv.ParseUint(get("Subvolume ID"), 10, 64)
	sh.Generation, _ = strconv.ParseUint(get("Generation"), 10, 64)
	for _, fl := range strings.Fields(strings.ReplaceAll(get("Flags"), ",", " ")) {
		if fl == "readonly" {
			sh.ReadOnly = true
		}
	}
	if c := get("Creation time"); c != "" && c != "-" {
		if t, err := time.Parse("2006-01-02 15:04:05 -0700", c); err == nil {
			sh.Created = t
		}
	}
	return sh, nil
}

// SnapshotLayout is how replication snapshots are named:
// <subvolume-name>@<UTC timestamp>, e.g. services@20261126T084500Z.
const SnapshotLayout = "20060102T150405Z"

// SnapshotName names the snapshot of base taken at t.
func SnapshotName(base string, t time.Time) string {
	return base + "@" + t.UTC().Format(SnapshotLayout)
}

// ParseSnapshotName splits a replication snapshot's name; ok is false for
// anything hoctl did not name, which is then never touched.
func ParseSnapshotName(name string) (base string, t time.Time, ok bool) {
	i := strings.LastIndexByte(name, '@')
	if i <= 0 {
		return "", time.Time{}, false
	}
	t, err := time.Parse(SnapshotLayout, name[i+1:])
	if err != nil || name[i+1:] != t.Format(SnapshotLayout) {
		return "", time.Time{}, false
	}
	return name[:i], t, true
}

// Snapshot is a replication snapshot on one side.
type Snapshot struct {
	Subvolume
	Time time.Time
}

// Snapshots keeps the subvolumes named base@<timestamp>, oldest first.
func Snapshots(subs []Subvolume, base string) []Snapshot {
	var out []Snapshot
	for _, s := range subs {
		b, t, ok := ParseSnapshotName(s.Name())
		if ok && b == base {
			out = append(out, Snapshot{Subvolume: s, Time: t})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Time.Before(out[j].Time) })
	return out
}

// Related reports whether target holds a copy of src, by UUIDs: the usual
// forward case (target received src), sending back after a failover (src
// was received from target), or both received from one origin. Only a
// read-only target counts: a writable one may have changed.
func Related(src, target Subvolume) bool {
	if !target.ReadOnly || !src.ReadOnly {
		return false
	}
	switch {
	case target.ReceivedUUID != "" && target.ReceivedUUID == src.UUID:
		return true
	case src.ReceivedUUID != "" && src.ReceivedUUID == target.UUID:
		return true
	case src.ReceivedUUID != "" && src.ReceivedUUID == target.ReceivedUUID:
		return true
	}
	return false
}

// Common is a source snapshot and its copy on the target.
type Common struct {
	Source Snapshot
	Target Snapshot
}

// CommonSnapshots pairs source snapshots with their copies on the target,
// newest first.
func CommonSnapshots(src, dst []Snapshot) []Common {
	var out []Common
	for i := len(src) - 1; i >= 0; i-- {
		for _, d := range dst {
			if Related(src[i].Subvolume, d.Subvolume) {
				out = append(out, Common{Source: src[i], Target: d})
				break
			}
		}
	}
	return out
}

// Parent picks the parent of the next incremental send: the newest source
// snapshot that the target holds, matched by UUID. ok is false when there
// is none, and the send must be full.
func Parent(src, dst []Snapshot) (Common, bool) {
	c := CommonSnapshots(src, dst)
	if len(c) == 0 {
		return Common{}, false
	}
	return c[0], true
}

// Garbage finds what an interrupted receive leaves in the target dir: a
// subvolume with hoctl's naming that is writable and has no received
// UUID. Anything else (another name, a finished receive, a writable copy
// someone promoted) is never garbage.
func Garbage(dst []Subvolume, base string) []Subvolume {
	var out []Subvolume
	for _, s := range dst {
		b, _, ok := ParseSnapshotName(s.Name())
		if ok && b == base && !s.ReadOnly && s.ReceivedUUID == "" {
			out = append(out, s)
		}
	}
	return out
}

// NestedPaths reads `btrfs subvolume list -o SUBVOL` (the subvolumes
// directly inside SUBVOL, with paths from the filesystem's top) and returns
// their paths relative to SUBVOL, whose own path from the top is own (the
// first line of `btrfs subvolume show`; "/" or "<FS_TREE>" for the top
// itself). Deeper ones live inside these and need no listing: a snapshot
// leaves out the whole nested subvolume, whatever it holds.
func NestedPaths(own, list string) []string {
	own = strings.Trim(strings.TrimSpace(own), "/")
	if own == "<FS_TREE>" {
		own = ""
	}
	var out []string
	for _, line := range strings.Split(list, "\n") {
		_, p, ok := strings.Cut(line, " path ")
		if !ok || !strings.HasPrefix(line, "ID ") {
			continue
		}
		p = strings.TrimPrefix(strings.TrimSpace(p), "<FS_TREE>/")
		if own != "" {
			rel, found := strings.CutPrefix(p, own+"/")
			if !found {
				continue
			}
			p = rel
		}
		out = append(out, p)
	}
	sort.Strings(out)
	return out
}
