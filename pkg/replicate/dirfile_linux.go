package replicate

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

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
