package replicate

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"runtime"
	"sort"
	"strconv"
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

// errNotRegular is an entry under a name hoctl writes that is not a
// plain file of its own: refused, never opened as what it is.
type errNotRegular struct {
	path, kind string
	links      uint64
}

func (e *errNotRegular) Error() string {
	if e.kind == KindFile {
		return fmt.Sprintf("%s: a file with %d links, not one of hoctl's own: refused, never written (check it and remove it by hand)", e.path, e.links)
	}
	return fmt.Sprintf("%s: a %s, not a regular file: refused, never opened (something planted it, a send stream perhaps: check it and remove it by hand)", e.path, e.kind)
}

// openRegular opens name directly in d for reading and writing, as a
// regular file with one link, created (mode 0600) when missing. Anything
// else under that name (a symlink, FIFO, device, directory, socket, or a
// hard link to a file elsewhere) is refused: it is looked at only through
// an O_PATH descriptor, which opens nothing, and the file is then
// reopened through that very descriptor, so the object checked is the
// object written.
func (d *targetDir) openRegular(name string, create bool) (*os.File, error) {
	p := path.Join(d.path, name)
	if name == "" || name == "." || name == ".." || strings.ContainsAny(name, "/\x00") {
		return nil, fmt.Errorf("%q: not a name directly in the dir", name)
	}
	if create {
		// O_EXCL: created here and now, so a regular file of ours; it
		// fails on any existing name, a dangling symlink included.
		fd, err := unix.Openat(d.fd, name, unix.O_RDWR|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_CLOEXEC, 0o600)
		if err == nil {
			return os.NewFile(uintptr(fd), p), nil
		}
		if !errors.Is(err, unix.EEXIST) {
			return nil, fmt.Errorf("%s: %w", p, err)
		}
	}
	pfd, err := unix.Openat(d.fd, name, unix.O_PATH|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", p, err)
	}
	defer func() { _ = unix.Close(pfd) }()
	var st unix.Stat_t
	if err := unix.Fstat(pfd, &st); err != nil {
		return nil, fmt.Errorf("%s: %w", p, err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG || st.Nlink != 1 {
		return nil, &errNotRegular{path: p, kind: kindOf(st.Mode), links: uint64(st.Nlink)} //nolint:unconvert // uint32 on arm64
	}
	fd, err := unix.Open("/proc/self/fd/"+strconv.Itoa(pfd), unix.O_RDWR|unix.O_NONBLOCK|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", p, err)
	}
	var st2 unix.Stat_t
	if err := unix.Fstat(fd, &st2); err != nil || st2.Dev != st.Dev || st2.Ino != st.Ino || st2.Mode&unix.S_IFMT != unix.S_IFREG {
		_ = unix.Close(fd)
		return nil, fmt.Errorf("%s: changed while opened: refused", p)
	}
	return os.NewFile(uintptr(fd), p), nil
}

// lock is the host lock, done by hoctl itself (the op, and HostLockArgv's
// command of an older hoctl): the lock file is a regular file directly in
// the dir (openRegular), locked without waiting; a holder's text is shown
// only when it is one of holderText's.
func (d *targetDir) lock(ctx context.Context, name, direction, holder string, stdin io.Reader, stdout io.Writer) error {
	f, err := d.openRegular(name, true)
	if err != nil {
		return err
	}
	defer func() { _ = f.Close() }() // and with it the lock
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		if !errors.Is(err, unix.EWOULDBLOCK) {
			return fmt.Errorf("%s: %w", f.Name(), err)
		}
		buf := make([]byte, 512)
		n, _ := f.ReadAt(buf, 0)
		h, _, _ := strings.Cut(string(buf[:n]), "\n")
		if !holderText.MatchString(h) {
			h = "another run (its lock file says nothing readable)"
		}
		fmt.Fprintf(stdout, "held by: %s\n", h)
		return exitStatus(hostLockExit)
	}
	if err := f.Truncate(0); err != nil {
		return err
	}
	if _, err := f.WriteAt([]byte(holder+"\n"), 0); err != nil {
		return err
	}
	dir, err := d.readDirection(direction)
	if err != nil {
		return err
	}
	if _, err := fmt.Fprintf(stdout, "locked %s\n", dir); err != nil {
		return err
	}
	done := make(chan struct{})
	go func() {
		_, _ = io.Copy(io.Discard, stdin)
		close(done)
	}()
	select {
	case <-done:
	case <-ctx.Done():
	}
	return nil
}

// readDirection is the host a direction file directly in d names, or ""
// when there is none. Anything but a regular file there, or text that is
// not a host name, is an error: the direction guard must not be silently
// lost to a planted object.
func (d *targetDir) readDirection(name string) (string, error) {
	f, err := d.openRegular(name, false)
	if errors.Is(err, unix.ENOENT) {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	defer func() { _ = f.Close() }()
	buf := make([]byte, 256)
	n, _ := f.ReadAt(buf, 0)
	line, _, _ := strings.Cut(string(buf[:n]), "\n")
	line = strings.TrimSpace(line)
	if line != "" && !hostName.MatchString(line) {
		return "", fmt.Errorf("%s: does not name a host: %q", f.Name(), truncate(line, 40))
	}
	return line, nil
}

// writeDirection records host in direction file name directly in d.
func (d *targetDir) writeDirection(name, host string) error {
	f, err := d.openRegular(name, true)
	if err != nil {
		return err
	}
	defer func() { _ = f.Close() }()
	if err := f.Truncate(0); err != nil {
		return fmt.Errorf("%s: %w", f.Name(), err)
	}
	if _, err := f.WriteAt([]byte(host+"\n"), 0); err != nil {
		return fmt.Errorf("%s: %w", f.Name(), err)
	}
	return f.Sync()
}

// Kernel interface of the host ops (linux/btrfs.h).
const (
	// _IOW(0x94, 23, struct btrfs_ioctl_vol_args_v2[4096])
	iocSnapCreateV2 = 1<<30 | 4096<<16 | 0x94<<8 | 23
	// _IOW(0x94, 38, struct btrfs_ioctl_send_args[72])
	iocSend = 1<<30 | 72<<16 | 0x94<<8 | 38
	// BTRFS_SUBVOL_RDONLY: vol_args_v2's flag (the root item's read-only
	// flag, btrfsSubvolRdonly, is another bit)
	volArgsRdonly = 1 << 1
	// the largest name struct btrfs_ioctl_vol_args_v2 holds
	btrfsSubvolNameMax = 4039
)

// snapCreate makes a snapshot of the subvolume open as src, named name
// directly in the directory open as dstDir: both are descriptors, so
// nothing is resolved by path, and the kernel refuses a name that exists
// (EEXIST), a dangling symlink included.
func snapCreate(src, dstDir int, name string, readOnly bool) error {
	if name == "" || name == "." || name == ".." || strings.ContainsAny(name, "/\x00") || len(name) > btrfsSubvolNameMax {
		return fmt.Errorf("%q: not a name directly in a dir", name)
	}
	var args [4096]byte
	for i := range 8 {
		args[i] = byte(uint64(src) >> (8 * i)) // fd
	}
	if readOnly {
		args[16] = volArgsRdonly // flags
	}
	copy(args[56:], name)
	return ioctl(dstDir, iocSnapCreateV2, unsafe.Pointer(&args[0]))
}

// openSubvolRoot opens p, whose last component is never followed, as the
// root directory of a btrfs subvolume.
func openSubvolRoot(p string) (int, subvolInfo, error) {
	fd, err := unix.Open(p, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, subvolInfo{}, fmt.Errorf("%s: %w", p, err)
	}
	var st unix.Stat_t
	var sfs unix.Statfs_t
	var si subvolInfo
	if err = unix.Fstat(fd, &st); err == nil && unix.Fstatfs(fd, &sfs) == nil && sfs.Type == btrfsSuperMagic && st.Ino == btrfsFirstFreeIno {
		if si, err = getSubvolInfo(fd); err == nil {
			return fd, si, nil
		}
	}
	_ = unix.Close(fd)
	return -1, subvolInfo{}, fmt.Errorf("%s: not the root of a btrfs subvolume", p)
}

// snapshotInto makes a read-only snapshot of the subvolume at sub (the
// replicated subvolume, the operator's path) named name directly in d,
// which must not exist yet: the send's new snapshot.
func (d *targetDir) snapshotInto(sub, name string, stdout io.Writer) error {
	sfd, _, err := openSubvolRoot(sub)
	if err != nil {
		return err
	}
	defer func() { _ = unix.Close(sfd) }()
	if id, err := fsid(sfd); err != nil || id != d.fsid {
		return fmt.Errorf("%s: not on the filesystem of %s", sub, d.path)
	}
	if err := snapCreate(sfd, d.fd, name, true); err != nil {
		return fmt.Errorf("snapshot of %s as %s: %w", sub, path.Join(d.path, name), err)
	}
	fd, si, err := d.snapshot(name)
	if err != nil {
		return fmt.Errorf("%s: %w", path.Join(d.path, name), err)
	}
	_ = unix.Close(fd)
	if si.Flags&btrfsSubvolRdonly == 0 {
		return fmt.Errorf("%s: made, but not read-only", path.Join(d.path, name))
	}
	_, err = fmt.Fprintf(stdout, "read-only snapshot %s of %s\n", path.Join(d.path, name), sub)
	return err
}

// readOnlySnapshot opens name as a read-only subvolume directly in d,
// with the UUID wantUUID when that is set.
func (d *targetDir) readOnlySnapshot(name, wantUUID string) (int, subvolInfo, error) {
	p := path.Join(d.path, name)
	fd, si, err := d.snapshot(name)
	if err != nil {
		return -1, si, fmt.Errorf("%s: %w", p, err)
	}
	switch {
	case si.Flags&btrfsSubvolRdonly == 0:
		err = fmt.Errorf("%s: writable, not a finished snapshot", p)
	case wantUUID != "" && uuidText(si.UUID) != wantUUID:
		err = fmt.Errorf("%s: has UUID %s, not %s as listed", p, uuidText(si.UUID), wantUUID)
	}
	if err != nil {
		_ = unix.Close(fd)
		return -1, si, err
	}
	return fd, si, nil
}

// send writes the send stream of snapshot name (incremental from parent
// when it is set) to stdout, with the kernel's send ioctl on their own
// descriptors: both are read-only subvolumes directly in d, checked on
// those descriptors, so a name a stream planted (a symlink named like the
// parent) can never make the send read anything outside d. The kernel
// writes the stream into a pipe that is copied to stdout, as btrfs send
// does, so stdout may be anything (a pipe, a socket, a file).
func (d *targetDir) send(ctx context.Context, name, parent, parentUUID string, stdout, stderr io.Writer) error {
	fd, _, err := d.readOnlySnapshot(name, "")
	if err != nil {
		return err
	}
	defer func() { _ = unix.Close(fd) }()
	var clone []uint64
	var parentRoot uint64
	if parent != "" {
		pfd, psi, err := d.readOnlySnapshot(parent, parentUUID)
		if err != nil {
			return err
		}
		_ = unix.Close(pfd) // the kernel takes the parent by its root id
		parentRoot = psi.TreeID
		clone = []uint64{psi.TreeID}
	}
	var p [2]int
	if err := unix.Pipe2(p[:], unix.O_CLOEXEC); err != nil {
		return err
	}
	r := os.NewFile(uintptr(p[0]), "send stream")
	defer func() { _ = r.Close() }()
	done := make(chan error, 1)
	go func() {
		var args [72]byte
		put := func(off int, v uint64) {
			for i := range 8 {
				args[off+i] = byte(v >> (8 * i))
			}
		}
		put(0, uint64(p[1])) // send_fd
		put(8, uint64(len(clone)))
		if len(clone) > 0 {
			put(16, uint64(uintptr(unsafe.Pointer(&clone[0]))))
		}
		put(24, parentRoot)
		err := ioctl(fd, iocSend, unsafe.Pointer(&args[0]))
		runtime.KeepAlive(clone) // its address is in args, which the GC does not see
		_ = unix.Close(p[1])     // the stream's end
		done <- err
	}()
	_, cerr := io.Copy(stdout, r)
	if cerr != nil {
		_ = r.Close() // the kernel's next write fails: the ioctl returns
	}
	serr := <-done
	switch {
	case serr != nil:
		return fmt.Errorf("sending %s: %w", path.Join(d.path, name), serr)
	case cerr != nil:
		return fmt.Errorf("sending %s: %w", path.Join(d.path, name), cerr)
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	fmt.Fprintf(stderr, "At subvol %s\n", path.Join(d.path, name))
	return nil
}

// markerFile is what promote writes into the new primary's subvolume
// (failover's clients read it back through their mounts).
const markerFile = ".hoctl-failover"

// promote makes the writable subvolume sub from the copy name directly in
// d: the copy must be a read-only subvolume with the UUID the plan chose,
// opened by its one name without following links. It is a received copy,
// or the host's own snapshot of what it served, which a replication back
// took there (after a failback, the very data the old primary started
// serving from): both are whole (a receive in progress or cut short is
// writable), and replicate's NewestComplete, which failover's assessment
// uses, counts both. sub
// is made by the snapshot ioctl from that descriptor into sub's parent
// directory (opened O_NOFOLLOW), by name. Whatever is at sub already is
// renamed to aside in the same directory (never deleted, never replaced:
// an existing aside fails the promote). The marker then goes into
// the new subvolume as a file of its own, created O_EXCL: the copy's data
// came from a stream (and from NFS clients before that), so a symlink
// named like the marker is removed, never written through.
func (d *targetDir) promote(name, wantUUID, sub, aside, marker string, stdout io.Writer) error {
	cfd, csi, err := d.readOnlySnapshot(name, wantUUID)
	if err != nil {
		return err
	}
	defer func() { _ = unix.Close(cfd) }()
	parent, base := path.Dir(sub), path.Base(sub)
	if path.Dir(aside) != parent {
		return fmt.Errorf("%s: not next to %s", aside, sub)
	}
	pfd, err := unix.Open(parent, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("%s: %w", parent, err)
	}
	defer func() { _ = unix.Close(pfd) }()
	if id, err := fsid(pfd); err != nil || id != d.fsid {
		return fmt.Errorf("%s: not on the filesystem of %s", parent, d.path)
	}
	var st unix.Stat_t
	switch err := unix.Fstatat(pfd, base, &st, unix.AT_SYMLINK_NOFOLLOW); {
	case err == nil:
		if err := unix.Renameat2(pfd, base, pfd, path.Base(aside), unix.RENAME_NOREPLACE); err != nil {
			return fmt.Errorf("moving %s aside to %s: %w", sub, aside, err)
		}
		fmt.Fprintf(stdout, "moved %s aside to %s\n", sub, aside)
	case !errors.Is(err, unix.ENOENT):
		return fmt.Errorf("%s: %w", sub, err)
	}
	if err := snapCreate(cfd, pfd, base, false); err != nil {
		return fmt.Errorf("snapshot of %s as %s: %w", path.Join(d.path, name), sub, err)
	}
	nfd, err := unix.Openat(pfd, base, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("%s: %w", sub, err)
	}
	defer func() { _ = unix.Close(nfd) }()
	nsi, err := getSubvolInfo(nfd)
	if err != nil || nsi.ParentUUID != csi.UUID || nsi.Flags&btrfsSubvolRdonly != 0 {
		return fmt.Errorf("%s: not the writable snapshot of %s just made", sub, path.Join(d.path, name))
	}
	if err := unix.Unlinkat(nfd, markerFile, 0); err != nil && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("%s: %w", path.Join(sub, markerFile), err)
	}
	mfd, err := unix.Openat(nfd, markerFile, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o644)
	if err != nil {
		return fmt.Errorf("%s: %w", path.Join(sub, markerFile), err)
	}
	f := os.NewFile(uintptr(mfd), path.Join(sub, markerFile))
	_, err = f.WriteString(marker + "\n")
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(stdout, "%s is a writable snapshot of %s\n", sub, path.Join(d.path, name))
	return err
}
