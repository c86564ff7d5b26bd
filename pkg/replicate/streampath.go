package replicate

import (
	"fmt"
	"strings"
)

// A send stream names files by path inside the subvolume it makes, and
// btrfs receive applies those paths with plain path calls under its
// chroot (the target dir): a ".." component, or a symlink the stream made
// earlier (or one in the snapshot's parent) used as a directory, reaches
// the dir itself and every other snapshot in it, and a write, truncate or
// chmod through a symlink lands on whatever it names there (the
// direction file, another snapshot's entry). btrfs send never emits any
// of these: its paths are clean, each component of a path is a
// directory, and it writes only to regular files. So streamPaths holds a
// stream to that shape, which confines it to its own subvolume.
//
// It tracks only what can break confinement: the symlinks and special
// files the stream makes (and where renames move them), and, for an
// incremental stream, which of its paths now name something other than
// the parent's entry there (renamed parent entries, deleted ones). The
// parent's own entries are looked up on disk, where they cannot change
// (a read-only snapshot directly in the dir). Regular files and
// directories the stream makes are not tracked (a directory only until
// its mode is set: newDirs): that keeps memory proportional to the links
// and renames, not to the files sent, and maxTrackHeld bounds it.
//
// It also refuses what would make a file a privilege once failover
// promotes the copy out of the nosuid,nodev dir (privilege).
//
// maxStreamPath is receive's own PATH_MAX: a longer path is no stream
// btrfs send writes, and costs the checks (each directory of a path is
// looked up) more than it should.
const maxStreamPath = 4096

// maxTrackWork bounds what renames and removals of directories holding
// tracked entries may cost the check in all (entries moved or looked
// at): a stream that renames such a directory back and forth would
// otherwise hold the dir, and a core, for hours.
const maxTrackWork = 1 << 22

// The check's path lookups (bytes of paths hashed or read on disk, as
// it looks paths up and tracks or untracks them) may
// cost lookBase plus lookPerByte per byte of the stream so far. btrfs
// send's paths cost a few bytes of lookups per stream byte; a stream
// built to cost more (deep paths among tracked links: the lookups grow
// with the square of the depth) would otherwise hold the dir, and a
// core, for as long as its sender likes.
const (
	lookBase    = 1 << 26
	lookPerByte = 64
)

// maxTrackHeld bounds what the check holds of a stream's paths: the
// bytes of the paths tracked and of the directories on the way to them,
// plus heldPerEntry for each (the maps' own share). At the bound the
// filter's memory is about 100 MB; a stream that would need more (by
// tens of thousands of links at long paths, or a few hundred thousand at
// short ones) is refused.
const (
	maxTrackHeld = 64 << 20
	heldPerEntry = 256
)

type streamPaths struct {
	// inSubvol is the kind of a path in a subvolume directly in the dir
	// (by UUID or received UUID), read from disk; nil when there is no
	// dir to read (then an incremental's parent entries count as plain).
	inSubvol func(u [16]byte, rel string) (pathKind, error)
	own      [16]byte // the subvolume received
	parent   [16]byte // its parent, for a SNAPSHOT; zero for a SUBVOL
	nodes    map[string]pathNode
	// dirs holds each directory with tracked nodes below it: how many,
	// and its entries on the way to them. A directory is moved or
	// removed with what is tracked below it at the cost of that subtree,
	// not of every tracked node, and a path is looked up only as deep
	// as something is tracked (walk).
	dirs map[string]*dirNode
	work int // entries scanned so far (maxTrackWork)
	// newDirs are the directories the stream made whose mode it has not
	// set yet (newDir).
	newDirs map[string]bool
	looked  int64 // bytes of paths looked up
	read    int64 // bytes of the stream read so far, this command's included
	held    int64 // what the tracked paths hold (maxTrackHeld)
}

type pathKind uint8

const (
	kindPlain pathKind = iota // a regular file (or, in the stream's view, a directory it made)
	kindDir                   // a directory in the parent
	kindLink                  // a symlink
	kindOther                 // a device, FIFO or socket
	kindGone                  // nothing: removed, renamed away, or never there
	kindRef                   // the parent's entry at ref, renamed here
)

type pathNode struct {
	kind pathKind
	ref  string // kindRef: the path in the parent
}

// Commands and attributes (btrfs send.h) whose paths streamPaths checks.
const (
	sendCmdMkfile    = 3
	sendCmdMkdir     = 4
	sendCmdMknod     = 5
	sendCmdMkfifo    = 6
	sendCmdMksock    = 7
	sendCmdSymlink   = 8
	sendCmdRename    = 9
	sendCmdLink      = 10
	sendCmdUnlink    = 11
	sendCmdRmdir     = 12
	sendCmdSetXattr  = 13
	sendCmdWrite     = 15
	sendCmdTruncate  = 17
	sendCmdChmod     = 18
	sendCmdChown     = 19
	sendCmdFallocate = 23
	sendCmdFileattr  = 24

	sendAttrMode      = 5
	sendAttrUID       = 6
	sendAttrGID       = 7
	sendAttrRdev      = 8
	sendAttrXattrName = 13
	sendAttrXattrData = 14
	sendAttrPathTo    = 16
	sendAttrPathLink  = 17
	sendAttrClonePath = 22
)

// follows is whether receive opens a command's PATH following a final
// symlink (creat, open, truncate, chmod), and so needs a regular file or
// nothing there (or, for chmod, anything but a symlink). The others use
// the l* calls, or calls that never follow a final symlink (mkdir, mknod,
// symlink, link, rename, unlink, rmdir).
func follows(cmd uint16) (fileOnly, set bool) {
	switch cmd {
	case sendCmdMkfile, sendCmdWrite, sendCmdClone, sendCmdTruncate, sendCmdUpdateExtent, sendCmdFallocate,
		sendCmdFileattr, sendCmdEncodedWrite, sendCmdEnableVerity:
		return true, true
	case sendCmdChmod:
		return false, true
	}
	return false, false
}

// cleanStreamPath is a path btrfs send could emit: relative, no empty,
// "." or ".." component ("" is the subvolume's root).
func cleanStreamPath(p string) bool {
	if p == "" {
		return true
	}
	for _, c := range strings.Split(p, "/") {
		if c == "" || c == "." || c == ".." {
			return false
		}
	}
	return true
}

// lookup is what the stream's view says is at p: a tracked node, the
// parent's entry (kindRef), or the stream's own untracked entry.
func (s *streamPaths) lookup(p string) pathNode {
	n, _ := s.walk(p, nil)
	return n
}

// walk resolves p from the subvolume's root down, calling dir (when
// set) with each directory of p on the way and what is there, and says
// what is at p itself. What a path holds is decided by the nearest
// tracked node at or above it: one pass from the root finds it, and
// looks a prefix up among the tracked nodes only while something is
// tracked below the prefix before (dirs), so a path costs its length,
// plus each prefix's length where tracked nodes lie deeper. Each lookup
// counts in looked.
func (s *streamPaths) walk(p string, dir func(q string, n pathNode) error) (pathNode, error) {
	var (
		near    pathNode
		nearAt  = -1
		probing = len(s.nodes) > 0
	)
	probe := func(q string) {
		if !probing {
			return
		}
		s.looked += int64(len(q))
		if n, ok := s.nodes[q]; ok {
			near, nearAt = n, len(q)
		}
		if s.dirs[q] == nil {
			probing = false
		}
	}
	at := func(q string) pathNode {
		switch {
		case nearAt == len(q):
			return near
		case nearAt >= 0 && near.kind == kindRef:
			return pathNode{kind: kindRef, ref: near.ref + q[nearAt:]}
		case nearAt >= 0:
			// Below a link the checks refused already; below anything
			// else tracked, what is there is the stream's own.
			return pathNode{kind: kindPlain}
		case s.inSubvol == nil || s.parent == ([16]byte{}) || q == "":
			return pathNode{kind: kindPlain}
		}
		return pathNode{kind: kindRef, ref: q}
	}
	for i := strings.IndexByte(p, '/'); i > 0; i = nextSlash(p, i) {
		probe(p[:i])
		if dir != nil {
			if err := dir(p[:i], at(p[:i])); err != nil {
				return pathNode{}, err
			}
		}
	}
	if p != "" {
		probe(p)
	}
	return at(p), nil
}

// kind resolves p to what is there now.
func (s *streamPaths) kind(p string) (pathKind, error) {
	return s.resolve(s.lookup(p))
}

// resolve is what n names now: a parent's entry is read on disk.
func (s *streamPaths) resolve(n pathNode) (pathKind, error) {
	if n.kind != kindRef {
		return n.kind, nil
	}
	return s.onDisk(s.parent, n.ref)
}

// onDisk is inSubvol, counted in looked.
func (s *streamPaths) onDisk(u [16]byte, rel string) (pathKind, error) {
	s.looked += int64(len(rel))
	return s.inSubvol(u, rel)
}

// pathShape refuses a path no btrfs send writes.
func pathShape(p string) error {
	if len(p) > maxStreamPath {
		return fmt.Errorf("a path of %d bytes (receive takes at most %d)", len(p), maxStreamPath)
	}
	if !cleanStreamPath(p) {
		return fmt.Errorf("the path %q is not one btrfs send writes (an empty, \".\" or \"..\" component): it could leave the subvolume received", truncate(p, 80))
	}
	return nil
}

func throughLink(p, q string) error {
	return fmt.Errorf("the path %q goes through the symlink %q: receive would follow it out of the subvolume received", truncate(p, 80), truncate(q, 80))
}

// through refuses a path unless each of its directories is one in the
// stream's view.
func (s *streamPaths) through(p string) error {
	if err := pathShape(p); err != nil {
		return err
	}
	_, err := s.walk(p, func(q string, n pathNode) error {
		k, err := s.resolve(n)
		if err != nil {
			return fmt.Errorf("looking up %q: %w", truncate(q, 80), err)
		}
		if k == kindLink {
			return throughLink(p, q)
		}
		return nil
	})
	return err
}

// throughOn refuses a path unless each of its directories is one in the
// subvolume kind reads (on disk).
func throughOn(p string, kind func(string) (pathKind, error)) error {
	if err := pathShape(p); err != nil {
		return err
	}
	for i := strings.IndexByte(p, '/'); i > 0; i = nextSlash(p, i) {
		k, err := kind(p[:i])
		if err != nil {
			return fmt.Errorf("looking up %q: %w", truncate(p[:i], 80), err)
		}
		if k == kindLink {
			return throughLink(p, p[:i])
		}
	}
	return nil
}

func nextSlash(p string, i int) int {
	j := strings.IndexByte(p[i+1:], '/')
	if j < 0 {
		return -1
	}
	return i + 1 + j
}

// opens refuses a path receive opens following its last component
// unless a regular file is there (or, !fileOnly, anything but a link).
func opens(cmd uint16, p string, fileOnly bool, kind func(string) (pathKind, error)) error {
	k, err := kind(p)
	if err != nil {
		return fmt.Errorf("looking up %q: %w", truncate(p, 80), err)
	}
	if k == kindLink || (fileOnly && k == kindOther) {
		return fmt.Errorf("command %d on %q, a symlink or a special file: receive would follow it out of the subvolume received", cmd, truncate(p, 80))
	}
	return nil
}

// check refuses a command whose paths could leave the subvolume, then
// records what it makes, moves or removes; keepSetgid: the command's
// setgid bit may stay (privilege).
func (s *streamPaths) check(cmd uint16, attrs streamAttrs) (keepSetgid bool, err error) {
	if keepSetgid, err = s.checkPaths(cmd, attrs); err != nil {
		return false, err
	}
	if s.held > maxTrackHeld {
		return false, fmt.Errorf("the stream makes more links, special files and moved entries than the check holds (%d MiB of their paths): a stream of service data with that many is refused, rather than the filter's memory growing with it", maxTrackHeld>>20)
	}
	if s.looked > lookBase+lookPerByte*s.read {
		return false, fmt.Errorf("the stream's paths cost the check more than %d bytes of lookups per stream byte (%d after %d bytes): no stream btrfs send writes", lookPerByte, s.looked, s.read)
	}
	return keepSetgid, s.spend(0)
}

func (s *streamPaths) checkPaths(cmd uint16, attrs streamAttrs) (keepSetgid bool, err error) {
	p, hasPath := attrs[sendAttrPath]
	if !hasPath {
		// Receive refuses it; still, it names no device or capability,
		// and its MODE loses setuid and setgid (no directory named).
		_, err := s.privilege(cmd, "", attrs)
		return false, err
	}
	path := string(p)
	if err := s.through(path); err != nil {
		return false, err
	}
	if fileOnly, ok := follows(cmd); ok {
		if err := opens(cmd, path, fileOnly, s.kind); err != nil {
			return false, err
		}
	}
	if keepSetgid, err = s.privilege(cmd, path, attrs); err != nil {
		return false, err
	}
	if err := s.followNewDirs(cmd, path, string(attrs[sendAttrPathTo])); err != nil {
		return false, err
	}
	return keepSetgid, s.records(cmd, path, attrs)
}

// records notes what a checked command makes, moves or removes.
func (s *streamPaths) records(cmd uint16, path string, attrs streamAttrs) error {
	switch cmd {
	case sendCmdMkdir:
		s.newDir(path)
		return s.makes(path, kindPlain)
	case sendCmdMkfile:
		return s.makes(path, kindPlain)
	case sendCmdMknod, sendCmdMkfifo, sendCmdMksock:
		return s.makes(path, kindOther)
	case sendCmdSymlink:
		return s.makes(path, kindLink)
	case sendCmdLink:
		target := string(attrs[sendAttrPathLink])
		if err := s.through(target); err != nil {
			return err
		}
		k, err := s.kind(target)
		if err != nil {
			return err
		}
		if k != kindLink && k != kindOther {
			k = kindPlain
		}
		return s.makes(path, k)
	case sendCmdUnlink, sendCmdRmdir:
		return s.removes(path)
	case sendCmdRename:
		to := string(attrs[sendAttrPathTo])
		if err := s.through(to); err != nil {
			return err
		}
		return s.renames(path, to)
	case sendCmdClone:
		return s.cloneSource(attrs)
	}
	return nil
}

// Mode bits and the one xattr that make a file a privilege rather than
// data (stat.h, capability.h).
const (
	modeType       = 0o170000
	modeBlock      = 0o060000
	modeChar       = 0o020000
	modeSetuid     = 0o4000
	modeSetgid     = 0o2000
	xattrCapabilty = "security.capability"
)

// cloneSource checks the path receive opens, following links, in the
// clone's source: the subvolume received (the stream's view) or one
// directly in the dir (on disk).
func (s *streamPaths) cloneSource(attrs streamAttrs) error {
	src, _ := attrs.uuid(sendAttrCloneUUID)
	p := string(attrs[sendAttrClonePath])
	if src == s.own {
		if err := s.through(p); err != nil {
			return err
		}
		return opens(sendCmdClone, p, true, s.kind)
	}
	kind := func(rel string) (pathKind, error) {
		if s.inSubvol == nil {
			return kindPlain, nil
		}
		return s.onDisk(src, rel)
	}
	if err := throughOn(p, kind); err != nil {
		return err
	}
	return opens(sendCmdClone, p, true, kind)
}

// dirNode is a directory with tracked nodes below it.
type dirNode struct {
	below int             // tracked nodes below it
	kids  map[string]bool // its entries on the way to them
}
