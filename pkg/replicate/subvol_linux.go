package replicate

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"sort"
	"strings"
	"time"
	"unsafe"

	"github.com/hoctl/hoctl/pkg/btrfs"
	"golang.org/x/sys/unix"
)

// The target filter's own show, list and delete of snapshots in its dir.
// `btrfs subvolume show|delete DIR/NAME` resolve the path themselves and
// follow a symlink a stream planted there (DIR/services@... ->
// /persist/victim). Here every entry is opened by its one name relative to
// DIR's descriptor without following links, checked to be a subvolume root
// whose parent is DIR itself on DIR's filesystem, and shown or deleted
// through that descriptor and its subvolume id: nothing is looked up by
// path again, so nothing can be swapped in between.

// Kernel interface (linux/btrfs.h).
const (
	btrfsSuperMagic   = 0x9123683e
	btrfsFirstFreeIno = 256 // the root directory of every subvolume
	btrfsSubvolRdonly = 1 << 0
	btrfsSpecByID     = 1 << 4
	// _IOR(0x94, 60, struct btrfs_ioctl_get_subvol_info_args[504])
	iocGetSubvolInfo = 2<<30 | 504<<16 | 0x94<<8 | 60
	// _IOR(0x94, 31, struct btrfs_ioctl_fs_info_args[1024])
	iocFsInfo = 2<<30 | 1024<<16 | 0x94<<8 | 31
	// _IOW(0x94, 63, struct btrfs_ioctl_vol_args_v2[4096])
	iocSnapDestroyV2 = 1<<30 | 4096<<16 | 0x94<<8 | 63
)

// subvolInfo is what BTRFS_IOC_GET_SUBVOL_INFO says of a subvolume.
type subvolInfo struct {
	TreeID, ParentID, DirID, Generation, Flags, OTransID uint64
	Name                                                 string
	UUID, ParentUUID, ReceivedUUID                       [16]byte
	Created                                              time.Time
}

func getSubvolInfo(fd int) (subvolInfo, error) {
	var buf [504]byte
	if err := ioctl(fd, iocGetSubvolInfo, unsafe.Pointer(&buf[0])); err != nil {
		return subvolInfo{}, err
	}
	le := func(off int) uint64 {
		var v uint64
		for i := 7; i >= 0; i-- {
			v = v<<8 | uint64(buf[off+i])
		}
		return v
	}
	name := buf[8:264]
	if i := strings.IndexByte(string(name), 0); i >= 0 {
		name = name[:i]
	}
	si := subvolInfo{TreeID: le(0), Name: string(name), ParentID: le(264), DirID: le(272), Generation: le(280), Flags: le(288),
		OTransID: le(352), Created: time.Unix(int64(le(392)), int64(uint32(le(400)))).UTC()}
	copy(si.UUID[:], buf[296:312])
	copy(si.ParentUUID[:], buf[312:328])
	copy(si.ReceivedUUID[:], buf[328:344])
	return si, nil
}

func fsid(fd int) ([16]byte, error) {
	var buf [1024]byte
	var id [16]byte
	if err := ioctl(fd, iocFsInfo, unsafe.Pointer(&buf[0])); err != nil {
		return id, err
	}
	copy(id[:], buf[16:32])
	return id, nil
}

func ioctl(fd int, req uintptr, arg unsafe.Pointer) error {
	if _, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), req, uintptr(arg)); errno != 0 {
		return errno
	}
	return nil
}

// targetDir is the filter's dir, held open.
type targetDir struct {
	path string
	fd   int
	ino  uint64
	tree uint64
	fsid [16]byte
	// uuids of the subvolumes directly in the dir, read once when first
	// needed (parentInDir).
	uuids map[[16]byte]bool
	// ids of the subvolumes directly in the dir, read once when first
	// needed (resolvesInDir).
	ids map[uint64]bool
	// roots and kinds serve kindIn: subvolumes by UUID, held open, and
	// what paths in them are.
	roots map[[16]byte][]int
	kinds map[kindKey]pathKind
}

func openTargetDir(dir string) (*targetDir, error) {
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if errors.Is(err, unix.ENOENT) {
		return nil, fmt.Errorf("%s: No such file or directory", dir) // as find says it: List recognises it
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", dir, err)
	}
	d := &targetDir{path: dir, fd: fd}
	var st unix.Stat_t
	if err = unix.Fstat(fd, &st); err == nil {
		d.ino = st.Ino
		var si subvolInfo
		if si, err = getSubvolInfo(fd); err == nil {
			d.tree = si.TreeID
			d.fsid, err = fsid(fd)
		}
	}
	if err != nil {
		_ = unix.Close(fd)
		return nil, fmt.Errorf("%s: not on btrfs: %w", dir, err)
	}
	return d, nil
}

func (d *targetDir) close() {
	for _, fds := range d.roots {
		for _, fd := range fds {
			_ = unix.Close(fd)
		}
	}
	_ = unix.Close(d.fd)
}

// errNotSnapshot is an entry of DIR that is not a subvolume directly in it.
var errNotSnapshot = errors.New("not a subvolume directly in the target dir (a symlink, a plain directory or file, or another filesystem)")

// snapshot opens name (one component) in d as a subvolume whose parent is
// d itself; the caller closes the descriptor.
func (d *targetDir) snapshot(name string) (int, subvolInfo, error) {
	if name == "" || name == "." || name == ".." || strings.Contains(name, "/") {
		return -1, subvolInfo{}, errNotSnapshot
	}
	fd, err := unix.Openat(d.fd, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		if errors.Is(err, unix.ENOENT) {
			return -1, subvolInfo{}, fmt.Errorf("no such subvolume")
		}
		return -1, subvolInfo{}, errNotSnapshot
	}
	fail := func(err error) (int, subvolInfo, error) {
		_ = unix.Close(fd)
		return -1, subvolInfo{}, err
	}
	var st unix.Stat_t
	var sfs unix.Statfs_t
	if unix.Fstat(fd, &st) != nil || st.Ino != btrfsFirstFreeIno || unix.Fstatfs(fd, &sfs) != nil || sfs.Type != btrfsSuperMagic {
		return fail(errNotSnapshot)
	}
	if id, err := fsid(fd); err != nil || id != d.fsid {
		return fail(errNotSnapshot)
	}
	si, err := getSubvolInfo(fd)
	if err != nil || si.ParentID != d.tree || si.DirID != d.ino {
		return fail(errNotSnapshot)
	}
	return fd, si, nil
}

// showText is the part of `btrfs subvolume show` output hoctl reads
// (btrfs.ParseShow), in its layout.
func showText(p string, si subvolInfo) string {
	flags := "-"
	if si.Flags&btrfsSubvolRdonly != 0 {
		flags = "readonly"
	}
	return fmt.Sprintf("%s\n\tName: \t\t\t%s\n\tUUID: \t\t\t%s\n\tParent UUID: \t\t%s\n\tReceived UUID: \t\t%s\n\tCreation time: \t\t%s\n\tSubvolume ID: \t\t%d\n\tGeneration: \t\t%d\n\tGen at creation: \t%d\n\tParent ID: \t\t%d\n\tFlags: \t\t\t%s\n",
		p, si.Name, uuidText(si.UUID), uuidText(si.ParentUUID), uuidText(si.ReceivedUUID), si.Created.Format("2006-01-02 15:04:05 -0700"),
		si.TreeID, si.Generation, si.OTransID, si.ParentID, flags)
}

// show prints one snapshot as `btrfs subvolume show` does.
func (d *targetDir) show(name string, stdout io.Writer) error {
	fd, si, err := d.snapshot(name)
	if err != nil {
		return fmt.Errorf("%s: %w", path.Join(d.path, name), err)
	}
	_ = unix.Close(fd)
	si.ParentUUID = d.parentInDir(si)
	_, err = io.WriteString(stdout, showText(path.Join(d.path, name), si))
	return err
}

// names reads the dir's entries through its descriptor, sorted. The dir
// is opened anew through d.fd (not dup'ed, which would share one
// directory offset): a second read starts at the beginning again.
func (d *targetDir) names() ([]string, error) {
	fd, err := unix.Openat(d.fd, ".", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	f := os.NewFile(uintptr(fd), d.path)
	names, err := f.Readdirnames(-1)
	_ = f.Close()
	if err != nil {
		return nil, err
	}
	sort.Strings(names)
	return names, nil
}

// list prints every entry named base@* as ListArgv's find does, for an
// older hoctl: the separator line, then the show of a subvolume. Only
// names that are exactly base@<timestamp> are printed: the older reader
// splits this text, and any other name could forge its lines.
func (d *targetDir) list(base string, stdout, stderr io.Writer) error {
	names, err := d.names()
	if err != nil {
		return err
	}
	for _, n := range names {
		if b, _, ok := btrfs.ParseSnapshotName(n); !ok || b != base {
			continue
		}
		p := path.Join(d.path, n)
		if _, err := fmt.Fprintf(stdout, "%s %s\n", separator, p); err != nil {
			return err
		}
		if err := d.show(n, stdout); err != nil {
			fmt.Fprintf(stderr, "hoctl target-filter: %v\n", err)
		}
	}
	return nil
}

// kindOf names a file type.
func kindOf(mode uint32) string {
	switch mode & unix.S_IFMT {
	case unix.S_IFDIR:
		return KindDirectory
	case unix.S_IFLNK:
		return KindSymlink
	case unix.S_IFREG:
		return KindFile
	case unix.S_IFIFO:
		return KindFIFO
	case unix.S_IFBLK:
		return KindBlock
	case unix.S_IFCHR:
		return KindChar
	case unix.S_IFSOCK:
		return KindSocket
	}
	return "unknown"
}

// entry describes name in d: a subvolume directly in d with its facts, or
// what else it is. Only a directory is ever opened for more than O_PATH
// (a directory open has no side effect), so a FIFO or device is never
// opened as one.
func (d *targetDir) entry(name string) Entry {
	e := Entry{Name: name, Kind: KindGone}
	pfd, err := unix.Openat(d.fd, name, unix.O_PATH|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return e
	}
	var st unix.Stat_t
	err = unix.Fstat(pfd, &st)
	_ = unix.Close(pfd)
	if err != nil {
		return e
	}
	e.Kind = kindOf(st.Mode)
	if e.Kind != KindDirectory {
		return e
	}
	fd, si, err := d.snapshot(name)
	if err != nil {
		return e
	}
	_ = unix.Close(fd)
	e.Kind = KindSubvolume
	e.ID, e.Gen, e.ReadOnly, e.Created = si.TreeID, si.Generation, si.Flags&btrfsSubvolRdonly != 0, si.Created
	e.UUID, e.ParentUUID, e.ReceivedUUID = uuidOrEmpty(si.UUID), uuidOrEmpty(d.parentInDir(si)), uuidOrEmpty(si.ReceivedUUID)
	return e
}

// subvolumes is every subvolume directly in d, as its descriptor says.
// Anything but a directory is never opened.
func (d *targetDir) subvolumes() ([]subvolInfo, error) {
	names, err := d.names()
	if err != nil {
		return nil, err
	}
	var out []subvolInfo
	for _, n := range names {
		var st unix.Stat_t
		if unix.Fstatat(d.fd, n, &st, unix.AT_SYMLINK_NOFOLLOW) != nil || st.Mode&unix.S_IFMT != unix.S_IFDIR {
			continue
		}
		if fd, si, err := d.snapshot(n); err == nil {
			_ = unix.Close(fd)
			out = append(out, si)
		}
	}
	return out, nil
}

// missingMountOptions is which of nosuid and nodev the mount holding d
// lacks, read from its descriptor.
func (d *targetDir) missingMountOptions() []string {
	var sfs unix.Statfs_t
	if err := unix.Fstatfs(d.fd, &sfs); err != nil {
		return safeMountOptions
	}
	var missing []string
	if sfs.Flags&unix.ST_NOSUID == 0 {
		missing = append(missing, "nosuid")
	}
	if sfs.Flags&unix.ST_NODEV == 0 {
		missing = append(missing, "nodev")
	}
	return missing
}

// dedicated refuses a dir that directly holds a subvolume not named like
// a snapshot, other than a finished receive (read-only, with a received
// UUID: planted by some stream, harmless): the subvolume replicated, when
// the dir is its parent (/persist). A stream received there could write
// over it through `..` from its own subvolume, which -C keeps inside the
// dir. A stream through the filter only ever makes subvolumes named like
// snapshots directly in the dir (stream.go) and stays inside its own
// subvolume (streampath.go), so it cannot trip this check itself.
func (d *targetDir) dedicated() error {
	names, err := d.names()
	if err != nil {
		return err
	}
	for _, n := range names {
		if _, _, ok := btrfs.ParseSnapshotName(n); ok {
			continue
		}
		var st unix.Stat_t
		if unix.Fstatat(d.fd, n, &st, unix.AT_SYMLINK_NOFOLLOW) != nil || st.Mode&unix.S_IFMT != unix.S_IFDIR {
			continue
		}
		if fd, si, err := d.snapshot(n); err == nil {
			_ = unix.Close(fd)
			if si.Flags&btrfsSubvolRdonly != 0 && si.ReceivedUUID != ([16]byte{}) {
				continue
			}
			return fmt.Errorf("%s holds the subvolume %q, which is not a snapshot (the replicated subvolume itself, or an unfinished subvolume something planted): a replication dir must be a directory of its own, never the replicated subvolume's parent (docs/replicate.md, \"Sending back after a failover\")", d.path, n)
		}
	}
	return nil
}

// parentInDir is a subvolume's parent UUID when that parent is a
// subvolume directly in d, and none otherwise: a snapshot taken of a live
// subvolume outside the dir (the source's own, after a failover) must not
// tell a restricted key that subvolume's UUID, which a send stream could
// name (stream.go).
func (d *targetDir) parentInDir(si subvolInfo) [16]byte {
	if si.ParentUUID == ([16]byte{}) {
		return si.ParentUUID
	}
	if d.uuids == nil {
		d.uuids = map[[16]byte]bool{}
		subs, _ := d.subvolumes() // unreadable: no parent is shown
		for _, s := range subs {
			d.uuids[s.UUID] = true
		}
	}
	if d.uuids[si.ParentUUID] {
		return si.ParentUUID
	}
	return [16]byte{}
}

// streamUUIDs is what a send stream into d may name as a snapshot's
// parent or a clone's source: the UUID or received UUID of a subvolume
// directly in d.
func (d *targetDir) streamUUIDs() (map[[16]byte]bool, error) {
	subs, err := d.subvolumes()
	if err != nil {
		return nil, err
	}
	out := map[[16]byte]bool{}
	for _, s := range subs {
		out[s.UUID] = true
		if s.ReceivedUUID != ([16]byte{}) {
			out[s.ReceivedUUID] = true
		}
	}
	return out, nil
}

func uuidOrEmpty(u [16]byte) string {
	if t := uuidText(u); t != "-" {
		return t
	}
	return ""
}

// listEntries prints every entry named base@* as one JSON Entry per line.
func (d *targetDir) listEntries(base string, stdout io.Writer) error {
	entries, err := d.entries(base)
	if err != nil {
		return err
	}
	enc := json.NewEncoder(stdout)
	for _, e := range entries {
		if err := enc.Encode(e); err != nil {
			return err
		}
	}
	return nil
}

// entries is every entry named base@*, described through d.
func (d *targetDir) entries(base string) ([]Entry, error) {
	names, err := d.names()
	if err != nil {
		return nil, err
	}
	out := []Entry{}
	for _, n := range names {
		if strings.HasPrefix(n, base+"@") {
			out = append(out, d.entry(n))
		}
	}
	return out, nil
}

// showEntry prints one subvolume directly in d as a JSON Entry.
func (d *targetDir) showEntry(name string, stdout io.Writer) error {
	e := d.entry(name)
	if e.Kind != KindSubvolume {
		return fmt.Errorf("%s: %s, not a subvolume directly in the dir", path.Join(d.path, name), e.Kind)
	}
	return json.NewEncoder(stdout).Encode(e)
}

// destroyID deletes snapshot name if it is still the subvolume id a
// listing showed.
func (d *targetDir) destroyID(name string, id uint64) error {
	return d.destroyIf(name, func(si subvolInfo) error {
		if si.TreeID != id {
			return fmt.Errorf("%s: is subvolume %d now, not %d as listed: not deleted", path.Join(d.path, name), si.TreeID, id)
		}
		return nil
	})
}

// destroy deletes one snapshot by the subvolume id read through its own
// descriptor, so the subvolume checked is the one deleted.
func (d *targetDir) destroy(name string) error {
	return d.destroyIf(name, func(subvolInfo) error { return nil })
}

// destroyIf deletes snapshot name when check accepts what its descriptor
// says.
func (d *targetDir) destroyIf(name string, check func(subvolInfo) error) error {
	fd, si, err := d.snapshot(name)
	if err != nil {
		return fmt.Errorf("%s: %w", path.Join(d.path, name), err)
	}
	defer func() { _ = unix.Close(fd) }()
	if err := check(si); err != nil {
		return err
	}
	var args [4096]byte
	args[16] = btrfsSpecByID // flags
	for i := range 8 {
		args[56+i] = byte(si.TreeID >> (8 * i)) // subvolid
	}
	if err := ioctl(d.fd, iocSnapDestroyV2, unsafe.Pointer(&args[0])); err != nil {
		return fmt.Errorf("deleting %s: %w", path.Join(d.path, name), err)
	}
	return nil
}
