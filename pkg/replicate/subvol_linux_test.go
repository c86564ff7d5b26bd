package replicate

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// openDir holds a plain directory the way the primitive holds a
// replication dir (no btrfs needed for its files).
func openDir(t *testing.T) *targetDir {
	t.Helper()
	dir := t.TempDir()
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = unix.Close(fd) })
	return &targetDir{path: dir, fd: fd}
}

// Issue 19, findings 2 and 3: the lock and the direction file are only
// ever a regular file of their own, directly in the dir. A symlink, a
// FIFO (which a shell's open blocked on forever), a device (which was
// opened read-write as root, and written) or a hard link planted under
// those names is refused at once, with its kind, and left as it was.
func TestLockAndDirectionRefusePlantedObjects(t *testing.T) {
	outside := filepath.Join(t.TempDir(), "outside")
	if err := os.WriteFile(outside, []byte("precious\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	plant := map[string]func(p string) error{
		"symlink":   func(p string) error { return os.Symlink(outside, p) },
		"FIFO":      func(p string) error { return unix.Mkfifo(p, 0o600) },
		"links":     func(p string) error { return os.Link(outside, p) },
		"directory": func(p string) error { return os.Mkdir(p, 0o700) },
	}
	if os.Geteuid() == 0 {
		plant["character device"] = func(p string) error { return unix.Mknod(p, unix.S_IFCHR|0o600, int(unix.Mkdev(1, 3))) }
	}
	for what, mk := range plant {
		for _, op := range []string{"lock", "direction", "direction read"} {
			d := openDir(t)
			name := ".hoctl-replicate-services.lock"
			if op != "lock" {
				name = ".hoctl-replicate-services.direction"
			}
			if err := mk(filepath.Join(d.path, name)); err != nil {
				t.Fatal(err)
			}
			var out bytes.Buffer
			var err error
			switch op {
			case "lock":
				err = d.lock(context.Background(), name, ".hoctl-replicate-services.direction", "alice", strings.NewReader(""), &out)
			case "direction":
				err = d.writeDirection(name, "c1")
			default:
				err = d.lock(context.Background(), ".hoctl-replicate-services.lock", name, "alice", strings.NewReader(""), &out)
			}
			if err == nil || !strings.Contains(err.Error(), what) {
				t.Errorf("%s under the %s name: %v, want a refusal naming it", what, op, err)
			}
			if b, _ := os.ReadFile(outside); string(b) != "precious\n" {
				t.Fatalf("%s under the %s name: the file outside now holds %q", what, op, b)
			}
		}
	}
}

func TestLockAndDirectionOnTheirOwnFiles(t *testing.T) {
	d := openDir(t)
	if err := d.writeDirection(".hoctl-replicate-services.direction", "c1"); err != nil {
		t.Fatal(err)
	}
	if err := d.writeDirection(".hoctl-replicate-services.direction", "zippy"); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := d.lock(context.Background(), ".hoctl-replicate-services.lock", ".hoctl-replicate-services.direction", "alice", strings.NewReader(""), &out); err != nil {
		t.Fatal(err)
	}
	if out.String() != "locked zippy\n" {
		t.Fatalf("lock said %q", out.String())
	}
	// Held: the second run is told who holds it, at once.
	f, err := d.openRegular(".hoctl-replicate-services.lock", false)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = f.Close() }()
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		t.Fatal(err)
	}
	out.Reset()
	err = d.lock(context.Background(), ".hoctl-replicate-services.lock", ".hoctl-replicate-services.direction", "bob", strings.NewReader(""), &out)
	if err != exitStatus(hostLockExit) || out.String() != "held by: alice\n" {
		t.Fatalf("second lock: %v, %q", err, out.String())
	}
}

// The dir's names read twice through one descriptor are the same: each
// read has its own directory offset (the filter reads them for the
// dedicated-dir check, then for the stream's parents, and the listing
// for its entries, then for their parents).
func TestNamesReadTwice(t *testing.T) {
	d := openDir(t)
	for _, n := range []string{"a", "b"} {
		if err := os.Mkdir(filepath.Join(d.path, n), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 2 {
		if names, err := d.names(); err != nil || len(names) != 2 {
			t.Fatalf("read %d: %q, %v", i+1, names, err)
		}
	}
}
