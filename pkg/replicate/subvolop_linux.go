package replicate

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"runtime"
	"strings"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

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

// moveMarkerAside renames what is at markerFile in the directory open as
// dfd to a free name markerFile.moved-STAMP-RANDOM there, never
// replacing anything (RENAME_NOREPLACE), never following it. The random
// part is not to be guessed: with a counter after the time, names
// planted ahead for the next minutes (15,104 of them, fourth attack
// review) used up every try, and the promote failed after the fence.
func moveMarkerAside(dfd int, stamp string) (string, error) {
	var b [8]byte
	for range 16 {
		if _, err := rand.Read(b[:]); err != nil {
			return "", err
		}
		to := markerFile + ".moved-" + stamp + "-" + hex.EncodeToString(b[:])
		err := unix.Renameat2(dfd, markerFile, dfd, to, unix.RENAME_NOREPLACE)
		if err == nil {
			return to, nil
		}
		if !errors.Is(err, unix.EEXIST) {
			return "", err
		}
	}
	return "", fmt.Errorf("%s.moved-%s-…: 16 random names taken", markerFile, stamp)
}

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
// named like the marker is removed, never written through, and what
// unlinkat refuses there (a directory) is renamed aside in the new
// subvolume and said on stdout: no name in the data stops the promote,
// which failover runs after its fence.
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
		// A directory (unlinkat's EISDIR), or anything else it refuses:
		// data the promote must never stop on, nor delete.
		moved, merr := moveMarkerAside(nfd, time.Now().UTC().Format("20060102T150405Z"))
		if merr != nil {
			return fmt.Errorf("%s: %w; moving it aside: %w", path.Join(sub, markerFile), err, merr)
		}
		fmt.Fprintf(stdout, "moved %s (%v) aside to %s\n", path.Join(sub, markerFile), err, path.Join(sub, moved))
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
