package filecopy

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/user"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hoctl/hoctl/internal/sshtest"
	"github.com/hoctl/hoctl/pkg/sshexec"
	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

// sshRunner is a Runner over a real SSH connection to the in-process
// server, which runs commands with sh on this machine.
func sshRunner(t *testing.T) sshexec.Runner {
	t.Helper()
	dir := t.TempDir()
	signer, keyFile := sshtest.NewKey(t, dir, "id_ed25519")
	_, priv, _ := ed25519.GenerateKey(nil)
	hostKey, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	s := sshtest.Start(t, hostKey, signer.PublicKey())
	kh := filepath.Join(dir, "known_hosts")
	line := knownhosts.Line([]string{knownhosts.Normalize(s.Addr)}, hostKey.PublicKey())
	if err := os.WriteFile(kh, []byte(line+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	p := sshexec.NewPool(sshexec.PoolOptions{})
	t.Cleanup(func() { _ = p.Close() })
	r, err := p.Runner(context.Background(), &sshexec.Target{Name: "h1", Address: s.Host, Port: s.Port, User: "root",
		IdentityFiles: []string{keyFile}, KnownHosts: []string{kh}, HostKeyPolicy: "strict",
		ConnectTimeout: 5 * time.Second, CommandTimeout: time.Minute, Keepalive: 5 * time.Second, Become: "none"})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func localRunner() sshexec.Runner {
	return sshexec.NewLocal(&sshexec.Target{Name: "h1", Address: "local", CommandTimeout: time.Minute, Become: "none"})
}

func writeSrc(t *testing.T, content string) *Source {
	t.Helper()
	p := filepath.Join(t.TempDir(), "src")
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	src, err := ReadSource(context.Background(), p)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256([]byte(content))
	if src.Sum != hex.EncodeToString(sum[:]) || src.Size != int64(len(content)) {
		t.Fatalf("source = %+v", src)
	}
	return src
}

func me(t *testing.T) string {
	u, err := user.Current()
	if err != nil {
		t.Fatal(err)
	}
	g, err := user.LookupGroupId(u.Gid)
	if err != nil {
		t.Fatal(err)
	}
	return u.Username + ":" + g.Name
}

// A new file, the same file again (unchanged, nothing written: the
// file's inode stays), new content, a mode change: each through a real
// SSH session and through the local runner.
func TestCopyWritesAtomicallyAndIsANoOpWhenEqual(t *testing.T) {
	for name, runner := range map[string]func(*testing.T) sshexec.Runner{"ssh": sshRunner, "local": func(*testing.T) sshexec.Runner { return localRunner() }} {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			r := runner(t)
			dir := t.TempDir()
			dest := filepath.Join(dir, "motd")
			spec := Spec{Dest: dest, Mode: "0640", Owner: me(t)}
			src := writeSrc(t, "hello\n")

			st, err := Inspect(ctx, r, Spec{Dest: dest}, 0)
			if err != nil || st.Exists {
				t.Fatalf("before: %+v, %v", st, err)
			}
			if c := spec.Changes(src, st); len(c) != 1 || c[0] != "new file" {
				t.Fatalf("changes for a new file: %v", c)
			}
			res, err := Copy(ctx, r, spec, src, 0, nil)
			if err != nil || res.Note() != "written (new file, 6 bytes)" {
				t.Fatalf("copy: %+v, %v", res, err)
			}
			if err := Verify(ctx, r, spec, src, res.Mode, res.Owner, 0); err != nil {
				t.Fatal(err)
			}
			fi, err := os.Stat(dest)
			if err != nil || fi.Mode().Perm() != 0o640 {
				t.Fatalf("dest: %v %v", fi, err)
			}
			if b, _ := os.ReadFile(dest); string(b) != "hello\n" {
				t.Fatalf("content %q", b)
			}
			before := inode(t, dest)

			res, err = Copy(ctx, r, spec, src, 0, nil)
			if err != nil || res.Note() != "unchanged" || inode(t, dest) != before {
				t.Fatalf("second copy: %+v, %v (inode %d → %d)", res, err, before, inode(t, dest))
			}

			src2 := writeSrc(t, "hello again\n")
			res, err = Copy(ctx, r, Spec{Dest: dest}, src2, 0, nil)
			if err != nil || res.Note() != "written (content, 12 bytes)" || res.Mode != "0640" {
				t.Fatalf("new content, mode kept: %+v, %v", res, err)
			}
			res, err = Copy(ctx, r, Spec{Dest: dest, Mode: "600"}, src2, 0, nil)
			if err != nil || res.Note() != "written (mode 0640 → 0600, 12 bytes)" {
				t.Fatalf("mode change: %+v, %v", res, err)
			}
			// No temporary file is left beside it.
			ents, _ := os.ReadDir(dir)
			if len(ents) != 1 {
				t.Fatalf("dir holds %v", ents)
			}
		})
	}
}

func inode(t *testing.T, p string) uint64 {
	t.Helper()
	fi, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Sys().(*syscall.Stat_t).Ino
}

func TestDestinationsThatCannotBeCopiedToAreRefused(t *testing.T) {
	ctx := context.Background()
	r := localRunner()
	dir := t.TempDir()
	if err := os.Symlink("/etc/hostname", filepath.Join(dir, "link")); err != nil {
		t.Fatal(err)
	}
	for dest, want := range map[string]string{
		filepath.Join(dir, "link"):          "is a symbolic link",
		dir:                                 "is not a regular file",
		filepath.Join(dir, "nodir", "file"): "directory " + filepath.Join(dir, "nodir") + " does not exist",
	} {
		_, err := Inspect(ctx, r, Spec{Dest: dest}, 0)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v, want %q", dest, err, want)
		}
	}
}

// A source that changes between hashing and sending fails on the host's
// checksum, and leaves the old file and no temporary file.
func TestChecksumMismatchLeavesTheOldFile(t *testing.T) {
	ctx := context.Background()
	r := localRunner()
	dir := t.TempDir()
	dest := filepath.Join(dir, "f")
	if err := os.WriteFile(dest, []byte("old\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	src := writeSrc(t, "new\n")
	if err := os.WriteFile(src.Path, []byte("tampered\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := Copy(ctx, r, Spec{Dest: dest}, src, 0, nil)
	if err == nil || !strings.Contains(err.Error(), "not "+src.Sum) {
		t.Fatalf("err = %v", err)
	}
	if b, _ := os.ReadFile(dest); string(b) != "old\n" {
		t.Fatalf("dest = %q", b)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 1 {
		t.Fatalf("left %v", ents)
	}
	err = Verify(ctx, r, Spec{Dest: dest}, src, "0644", "", 0)
	if !errors.Is(err, ErrMismatch) {
		t.Fatalf("verify: %v", err)
	}
}

func TestSpecValidate(t *testing.T) {
	for _, c := range []struct {
		s    Spec
		want string
	}{
		{Spec{Dest: "etc/motd"}, "expected a clean absolute path"},
		{Spec{Dest: "/etc//"}, "expected a clean absolute path"},
		{Spec{Dest: "/etc/./"}, "expected a clean absolute path"},
		{Spec{Dest: "/etc/"}, ""},
		{Spec{Dest: "/"}, ""},
		{Spec{Src: "./a\nb", Dest: "/etc/"}, "a newline or NUL"},
		{Spec{Dest: "/etc/motd", Mode: "rw-r--r--"}, "expected octal"},
		{Spec{Dest: "/etc/motd", Mode: "8644"}, "expected octal"},
		{Spec{Dest: "/etc/motd", Owner: "root;rm -rf /"}, "expected user or user:group"},
		{Spec{Dest: "/etc/motd", Mode: "644", Owner: "root:wheel"}, ""},
	} {
		err := c.s.Validate()
		if (c.want == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), c.want)) {
			t.Errorf("%+v: %v, want %q", c.s, err, c.want)
		}
	}
}

// A large file streams: it is sent through a pipe in pieces, never read
// whole, so the process's heap stays far below the file's size.
func TestLargeFileStreams(t *testing.T) {
	ctx := context.Background()
	r := sshRunner(t)
	p := filepath.Join(t.TempDir(), "big")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	chunk := bytes.Repeat([]byte("0123456789abcdef"), 4096) // 64 KiB
	// Big enough that a copy holding the file would show (the peak
	// stays near 5 MiB when streaming), small enough for the race
	// detector on a loaded machine within the runner's one minute.
	const size = 32 << 20
	for n := 0; n < size; n += len(chunk) {
		if _, err := f.Write(chunk); err != nil {
			t.Fatal(err)
		}
	}
	_ = f.Close()
	src, err := ReadSource(ctx, p)
	if err != nil {
		t.Fatal(err)
	}
	dest := filepath.Join(t.TempDir(), "big")
	peak := heapPeak(t, func() {
		res, err := Copy(ctx, r, Spec{Dest: dest}, src, 0, nil)
		if err != nil || res.Bytes != size {
			t.Errorf("copy: %+v, %v", res, err)
		}
	})
	if peak > 16<<20 {
		t.Errorf("heap peaked at %d MiB copying a %d MiB file", peak>>20, size>>20)
	}
	fmt.Fprintf(os.Stderr, "heap peak %d MiB for a %d MiB file\n", peak>>20, size>>20)
}

func TestProgressText(t *testing.T) {
	for _, c := range []struct {
		sent, total int64
		d           time.Duration
		want        string
	}{
		{64 << 20, 256 << 20, 2 * time.Second, "64.0 MiB of 256.0 MiB (25%), 32.0 MiB/s, ETA 6s"},
		{512, 0, time.Second, "512 B, 512 B/s"},
		{1 << 30, 1 << 30, 4 * time.Second, "1.0 GiB of 1.0 GiB (100%), 256.0 MiB/s"},
	} {
		if got := ProgressText(c.sent, c.total, c.d); got != c.want {
			t.Errorf("ProgressText(%d, %d, %s) = %q, want %q", c.sent, c.total, c.d, got, c.want)
		}
	}
}

// `hoctl copy c1 ./motd /tmp` was refused ("/tmp exists and is not a
// regular file"); as scp and Ansible's copy, a directory destination
// takes the file under the source's name, atomically, with its mode and
// owner, checked, and left alone when equal. A trailing slash says the
// destination must be a directory.
func TestCopyIntoADirectory(t *testing.T) {
	for name, runner := range map[string]func(*testing.T) sshexec.Runner{"ssh": sshRunner, "local": func(*testing.T) sshexec.Runner { return localRunner() }} {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			r := runner(t)
			dir := t.TempDir()
			src := writeSrc(t, "hello\n")
			file := filepath.Join(dir, filepath.Base(src.Path))
			for _, dest := range []string{dir, dir + "/"} {
				if err := os.RemoveAll(file); err != nil {
					t.Fatal(err)
				}
				spec := Spec{Src: src.Path, Dest: dest, Mode: "0640"}
				if err := spec.Validate(); err != nil {
					t.Fatal(err)
				}
				st, err := Inspect(ctx, r, spec, 0)
				if err != nil || st.Exists || st.Path != file {
					t.Fatalf("%s: before: %+v, %v", dest, st, err)
				}
				res, err := Copy(ctx, r, spec, src, 0, nil)
				if err != nil || res.Path != file || res.Note() != "written (new file, 6 bytes)" {
					t.Fatalf("%s: copy: %+v, %v", dest, res, err)
				}
				if err := Verify(ctx, r, spec, src, res.Mode, res.Owner, 0); err != nil {
					t.Fatal(err)
				}
				if b, _ := os.ReadFile(file); string(b) != "hello\n" {
					t.Fatalf("%s: content %q", dest, b)
				}
				if fi, _ := os.Stat(file); fi.Mode().Perm() != 0o640 {
					t.Fatalf("%s: mode %v", dest, fi.Mode())
				}
				before := inode(t, file)
				res, err = Copy(ctx, r, spec, src, 0, nil)
				if err != nil || res.Note() != "unchanged" || inode(t, file) != before {
					t.Fatalf("%s: second copy: %+v, %v", dest, res, err)
				}
				if ents, _ := os.ReadDir(dir); len(ents) != 1 {
					t.Fatalf("%s: dir holds %v", dest, ents)
				}
			}
			// A link to a directory is a directory (the file goes in it);
			// a trailing slash on a file, and a directory in the way, are
			// refused.
			link := filepath.Join(t.TempDir(), "link")
			if err := os.Symlink(dir, link); err != nil {
				t.Fatal(err)
			}
			if st, err := Inspect(ctx, r, Spec{Src: src.Path, Dest: link}, 0); err != nil || st.Path != filepath.Join(link, filepath.Base(src.Path)) || !st.Exists {
				t.Errorf("through a link to the directory: %+v, %v", st, err)
			}
			for dest, want := range map[string]string{
				file + "/":                          file + "/ is not a directory",
				filepath.Join(dir, "missing") + "/": "missing/ is not a directory",
			} {
				if _, err := Inspect(ctx, r, Spec{Src: src.Path, Dest: dest}, 0); err == nil || !strings.Contains(err.Error(), want) {
					t.Errorf("%s: %v, want %q", dest, err, want)
				}
			}
			sub := t.TempDir()
			if err := os.Mkdir(filepath.Join(sub, filepath.Base(src.Path)), 0o755); err != nil {
				t.Fatal(err)
			}
			if _, err := Inspect(ctx, r, Spec{Src: src.Path, Dest: sub}, 0); err == nil || !strings.Contains(err.Error(), "is not a regular file") {
				t.Errorf("a directory of the source's name in the way: %v", err)
			}
		})
	}
}
