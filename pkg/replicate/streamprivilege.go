package replicate

import (
	"encoding/binary"
	"fmt"
	"strings"
)

// What a stream may not make, and what the filter takes out of it: a
// privilege once failover promotes the copy out of the nosuid,nodev dir
// (device nodes and file capabilities are refused; setuid and setgid
// bits are cleared), and the directories it made whose setgid bit is
// kept until their mode is set.

// privilege refuses what would make a file in the copy a privilege on a
// mount without nosuid,nodev, and that only root on the source can make:
// a block or character device, file capabilities. The dir's mount keeps
// them inert, but failover's promote makes the copy the service's
// subvolume outside the dir, and btrfs send of service data carries
// neither. It says whether the command's setgid bit may stay: only a
// CHMOD of a directory (a setgid directory is data: new files take its
// group). Every other setuid or setgid bit is cleared (stripMode), not
// refused: any owner of a file in the service data may set one on it
// (an NFS client's user), and a refusal would stop every replication
// for as long as the file keeps it.
func (s *streamPaths) privilege(cmd uint16, p string, attrs streamAttrs) (keepSetgid bool, err error) {
	mode, hasMode := attrU64(attrs, sendAttrMode)
	switch {
	case cmd == sendCmdMknod && hasMode && (mode&modeType == modeBlock || mode&modeType == modeChar):
		return false, fmt.Errorf("%q would be a block or character device (mode %o): on a mount without nodev it reads and writes a disk of the host's", truncate(p, 80), mode)
	case cmd == sendCmdSetXattr && string(attrs[sendAttrXattrName]) == xattrCapabilty:
		return false, fmt.Errorf("%q would get file capabilities (%s): outside the nosuid dir, once promoted, it would run with them", truncate(p, 80), xattrCapabilty)
	case cmd == sendCmdChmod && mode&modeSetgid != 0:
		// Not known to be a directory (one the stream made, or the
		// parent's): a setgid file runs with its group once promoted.
		return s.isDir(p)
	}
	return false, nil
}

// u64Lengths refuses a mode, owner or device number that is not a u64,
// in any command: one of another length is read here as absent, and by
// some receive as its first 8 bytes (a 16-byte setuid MODE passed the
// check; btrfs-progs 6.2 refuses it, attack review 2).
func u64Lengths(p string, attrs streamAttrs) error {
	for _, typ := range []uint16{sendAttrMode, sendAttrRdev, sendAttrUID, sendAttrGID} {
		if v, ok := attrs[typ]; ok && len(v) != 8 {
			return fmt.Errorf("%q: attribute %d of %d bytes, not the 8 of a u64", truncate(p, 80), typ, len(v))
		}
	}
	return nil
}

// stripMode clears, in place, the setuid bit of the command's MODE, and
// its setgid bit unless keepSetgid (privilege), whatever the command: a
// MODE in any command btrfs receive might apply leaves it without them.
// It returns the mode before and after (equal: nothing cleared). attrs'
// values point into the command, whose crc the caller then recomputes;
// only those bits of those 8 bytes change.
func stripMode(attrs streamAttrs, keepSetgid bool) (before, after uint64) {
	v := attrs[sendAttrMode]
	if len(v) != 8 {
		return 0, 0 // none; another length is refused (u64Lengths)
	}
	before = binary.LittleEndian.Uint64(v)
	after = before &^ modeSetuid
	if !keepSetgid {
		after &^= modeSetgid
	}
	if after != before {
		binary.LittleEndian.PutUint64(v, after)
	}
	return before, after
}

// isDir is whether p is known to be a directory: the subvolume's root,
// a directory the stream made (until its mode is set), or the parent's
// directory.
func (s *streamPaths) isDir(p string) (bool, error) {
	if p == "" || s.newDirs[p] {
		return true, nil
	}
	k, err := s.kind(p)
	return k == kindDir, err
}

// newDir records p as a directory the stream made. btrfs send sets each
// new inode's mode once, when it is done with it, often after making
// other directories (the orphans a rename waits on), so until then p
// may be made setgid.
func (s *streamPaths) newDir(p string) {
	if s.newDirs == nil {
		s.newDirs = map[string]bool{}
	}
	if !s.newDirs[p] {
		s.newDirs[p] = true
		s.held += int64(len(p)) + heldPerEntry
	}
}

// followNewDirs keeps newDirs on the paths of those directories: a
// chmod sets the mode (p is done), a rename moves them with p, a removal
// or a rename over them drops them. Each scan counts as work: a stream
// btrfs send writes has a few at a time.
func (s *streamPaths) followNewDirs(cmd uint16, p, to string) error {
	if len(s.newDirs) == 0 {
		return nil
	}
	under := func(q, d string) bool { return q == d || strings.HasPrefix(q, d+"/") }
	drop := func(q string) {
		delete(s.newDirs, q)
		s.held -= int64(len(q)) + heldPerEntry
	}
	switch cmd {
	case sendCmdChmod:
		if s.newDirs[p] {
			drop(p)
		}
		return nil
	case sendCmdRename, sendCmdUnlink, sendCmdRmdir:
	default:
		return nil
	}
	if err := s.spend(len(s.newDirs)); err != nil {
		return err
	}
	var moved []string
	for q := range s.newDirs {
		switch {
		case cmd == sendCmdRename && under(q, p):
			moved = append(moved, q)
		case under(q, p) || cmd == sendCmdRename && under(q, to):
			drop(q)
		}
	}
	for _, q := range moved {
		drop(q)
	}
	for _, q := range moved {
		s.newDir(to + q[len(p):])
	}
	return nil
}

func attrU64(attrs streamAttrs, typ uint16) (uint64, bool) {
	v, ok := attrs[typ]
	if !ok || len(v) != 8 {
		return 0, false
	}
	return binary.LittleEndian.Uint64(v), true
}
