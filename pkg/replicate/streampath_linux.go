package replicate

import (
	"errors"
	"strings"

	"golang.org/x/sys/unix"
)

// kindKey caches kindIn: a stream names the same paths over and over (one
// WRITE per 48 KiB of a file), and the subvolumes it reads cannot change.
type kindKey struct {
	u   [16]byte
	rel string
}

// maxKindCache bounds the cache; it starts over when full. A key holds
// a path of up to 4 KiB, so the bound is also the cache's memory (32 MiB
// at most, beside the stream check's own maxTrackHeld).
const maxKindCache = 1 << 13

// kindIn is the kind of rel in the subvolumes directly in d whose UUID or
// received UUID is u: the least safe answer, if several are.
func (d *targetDir) kindIn(u [16]byte, rel string) (pathKind, error) {
	key := kindKey{u, rel}
	if k, ok := d.kinds[key]; ok {
		return k, nil
	}
	roots, err := d.rootsOf(u)
	if err != nil {
		return 0, err
	}
	k := kindGone
	for _, fd := range roots {
		kk, err := kindAt(fd, rel)
		if err != nil {
			return 0, err
		}
		if riskier(kk, k) {
			k = kk
		}
	}
	if d.kinds == nil || len(d.kinds) >= maxKindCache {
		d.kinds = map[kindKey]pathKind{}
	}
	d.kinds[key] = k
	return k, nil
}

// riskier orders kinds by what following them could reach.
func riskier(a, b pathKind) bool {
	rank := func(k pathKind) int {
		switch k {
		case kindLink:
			return 4
		case kindOther:
			return 3
		case kindDir:
			return 2
		case kindPlain:
			return 1
		}
		return 0
	}
	return rank(a) > rank(b)
}

// rootsOf opens (once) the subvolumes directly in d with UUID or
// received UUID u; d.close closes them.
func (d *targetDir) rootsOf(u [16]byte) ([]int, error) {
	if fds, ok := d.roots[u]; ok {
		return fds, nil
	}
	names, err := d.names()
	if err != nil {
		return nil, err
	}
	var fds []int
	for _, n := range names {
		fd, si, err := d.snapshot(n)
		if err != nil {
			continue
		}
		if si.UUID == u || si.ReceivedUUID == u {
			fds = append(fds, fd)
		} else {
			_ = unix.Close(fd)
		}
	}
	if d.roots == nil {
		d.roots = map[[16]byte][]int{}
	}
	d.roots[u] = fds
	return fds, nil
}

// kindAt is what rel names under the directory root, without following
// any symlink on the way: kindGone if a component is missing or not a
// directory (the caller checks each directory of a path itself).
func kindAt(root int, rel string) (pathKind, error) {
	if rel == "" {
		return kindDir, nil
	}
	comps := strings.Split(rel, "/")
	fd := root
	defer func() {
		if fd != root {
			_ = unix.Close(fd)
		}
	}()
	gone := func(err error) bool {
		return errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ENOTDIR) || errors.Is(err, unix.ELOOP)
	}
	for _, c := range comps[:len(comps)-1] {
		next, err := unix.Openat(fd, c, unix.O_PATH|unix.O_NOFOLLOW|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		if gone(err) {
			return kindGone, nil
		}
		if err != nil {
			return 0, err
		}
		if fd != root {
			_ = unix.Close(fd)
		}
		fd = next
	}
	var st unix.Stat_t
	err := unix.Fstatat(fd, comps[len(comps)-1], &st, unix.AT_SYMLINK_NOFOLLOW)
	if gone(err) {
		return kindGone, nil
	}
	if err != nil {
		return 0, err
	}
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFLNK:
		return kindLink, nil
	case unix.S_IFDIR:
		return kindDir, nil
	case unix.S_IFREG:
		return kindPlain, nil
	}
	return kindOther, nil
}

// exclusive holds d for one receive at a time (until close): two streams
// into one dir at once could each name the other's subvolume by its path
// while it is being made.
func (d *targetDir) exclusive() error {
	err := unix.Flock(d.fd, unix.LOCK_EX|unix.LOCK_NB)
	if errors.Is(err, unix.EWOULDBLOCK) {
		return errors.New("another receive into " + d.path + " is running: one at a time")
	}
	return err
}
