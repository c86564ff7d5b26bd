package lab

// The machines boot one Debian bookworm root filesystem, made by
// debootstrap from the Debian mirror this machine's apt uses (the only
// package registry these machines reach) and shared read-only: each
// machine overlays its own upper directory on it.

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"
)

const rootfsSuite = "bookworm"

// rootfsPackages are what the lab's hosts run: systemd as PID 1, sshd,
// the NFS server (nfs-ganesha with its VFS backend), Nix, and the tools
// hoctl calls on a host.
var rootfsPackages = []string{
	"systemd", "systemd-sysv", "dbus", "openssh-server", "iproute2", "procps",
	"nfs-ganesha", "nfs-ganesha-vfs", "curl", "nix-bin", "btrfs-progs",
	"zstd", "attr", "sudo", "util-linux",
	// nix-bin needs perl-dbdabi-94, a virtual package, which debootstrap
	// does not resolve: libdbi-perl provides it.
	"libdbi-perl",
}

// rootfsMasked are units masked in the shared rootfs: rpcbind and
// anything else that would bind a wildcard address (the lab owns only its
// loopback addresses), Debian's own ganesha units (the lab's
// nfs-server.service runs ganesha as the seed's cluster does), the Nix
// daemon (single-user), and timers that would reach the network.
var rootfsMasked = []string{
	"rpcbind.service", "rpcbind.socket", "rpcbind.target",
	"nfs-ganesha.service", "nfs-ganesha-lock.service", "nfs-ganesha-config.service",
	"nix-daemon.service", "nix-daemon.socket",
	"apt-daily.timer", "apt-daily-upgrade.timer", "apt-daily.service", "apt-daily-upgrade.service",
	"dpkg-db-backup.timer", "e2scrub_all.timer", "e2scrub_reap.service", "fstrim.timer",
	"systemd-timesyncd.service", "systemd-networkd.service", "systemd-networkd.socket",
	"systemd-resolved.service", "getty@.service", "console-getty.service",
	"ssh.socket", "systemd-journald-audit.socket",
	"sys-kernel-config.mount", "sys-kernel-debug.mount", "sys-kernel-tracing.mount",
}

// rootfsFiles are written into the shared rootfs.
var rootfsFiles = map[string]string{
	// Offline, single-user Nix as root: no substituters (nothing to
	// reach), no build users, no sandbox (the namespaces are nspawn's).
	"etc/nix/nix.conf": "substituters =\nbuild-users-group =\nsandbox = false\nexperimental-features = nix-command\n",
	// Per-host settings (ListenAddress, HostKey) come from the host's own
	// drop-in; these are the lab's for every host.
	"etc/ssh/sshd_config.d/10-hoctl-lab.conf":    "PermitRootLogin prohibit-password\nPasswordAuthentication no\nKbdInteractiveAuthentication no\nUseDNS no\nMaxStartups 100:30:200\nLogLevel ERROR\n",
	"etc/systemd/journald.conf.d/hoctl-lab.conf": "[Journal]\nStorage=volatile\nRuntimeMaxUse=8M\n",
}

// rootfsRecipe is what the cached rootfs is keyed by: any change to the
// packages, masks or files makes a new one.
func rootfsRecipe() string {
	var b strings.Builder
	fmt.Fprintf(&b, "recipe 1\nsuite %s\npackages %s\nmasked %s\n", rootfsSuite, strings.Join(rootfsPackages, ","), strings.Join(rootfsMasked, ","))
	for _, k := range sortedFileKeys(rootfsFiles) {
		fmt.Fprintf(&b, "file %s %q\n", k, rootfsFiles[k])
	}
	return b.String()
}

func sortedFileKeys(m map[string]string) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

// rootfsTree is where the cache in dir keeps the rootfs of this recipe.
func rootfsTree(cache string) string {
	key := sha256.Sum256([]byte(rootfsRecipe()))
	return filepath.Join(cache, "rootfs-"+rootfsSuite+"-"+hex.EncodeToString(key[:])[:12], "tree")
}

// ensureRootfs returns the cached rootfs tree, building it if missing or
// if its content no longer matches its recorded sha256.
func ensureRootfs(ctx context.Context, cache string, progress io.Writer) (string, error) {
	tree := rootfsTree(cache)
	dir := filepath.Dir(tree)
	if checkRecorded(tree, treeSHA256) {
		return tree, nil
	}
	mirror, err := aptMirror("/etc/apt")
	if err != nil {
		return "", err
	}
	start := time.Now()
	fmt.Fprintf(progress, "hoctl-lab cache: building the Debian %s rootfs from %s into %s (once per machine; about 3 minutes on an idle machine)\n", rootfsSuite, mirror, dir)
	work := filepath.Join(cache, "build-rootfs")
	if err := removeUnmounted(work); err != nil {
		return "", err
	}
	defer func() { _ = removeUnmounted(work) }()
	if err := os.MkdirAll(work, 0o755); err != nil {
		return "", err
	}
	logPath := filepath.Join(cache, "rootfs-build.log")
	logf, err := os.Create(logPath)
	if err != nil {
		return "", err
	}
	defer func() { _ = logf.Close() }()
	target := filepath.Join(work, "tree")
	// The downloaded packages are kept (debs/): a rebuild, after a
	// failure or for a new recipe, fetches only what changed.
	debs := filepath.Join(cache, "debs")
	if err := os.MkdirAll(debs, 0o755); err != nil {
		return "", err
	}
	cmd := ToolCmd(ctx, "nice", "-n", "10", "debootstrap", "--variant=minbase", "--cache-dir="+debs,
		"--include="+strings.Join(rootfsPackages, ","), rootfsSuite, target, mirror)
	out, err := cmd.StdoutPipe()
	if err != nil {
		return "", err
	}
	cmd.Stderr = logf
	var last atomic.Value
	last.Store("")
	stop := ticker(progress, "debootstrap", 20*time.Second, func() string { return last.Load().(string) })
	if err := cmd.Start(); err != nil {
		stop()
		return "", err
	}
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		line := sc.Text()
		fmt.Fprintln(logf, line)
		if strings.HasPrefix(line, "I: ") {
			last.Store(strings.TrimPrefix(line, "I: "))
		}
	}
	err = cmd.Wait()
	stop()
	if err != nil {
		return "", fmt.Errorf("debootstrap failed (%w); its output is in %s", err, logPath)
	}
	if err := customizeRootfs(target); err != nil {
		return "", err
	}
	if err := os.RemoveAll(dir); err != nil {
		return "", err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	if err := os.Rename(target, tree); err != nil {
		return "", err
	}
	sum, err := record(tree, treeSHA256)
	if err != nil {
		return "", err
	}
	fmt.Fprintf(progress, "hoctl-lab cache: built the rootfs in %s (sha256 %s)\n", time.Since(start).Round(time.Second), sum[:16])
	return tree, nil
}

// removeUnmounted deletes a debootstrap work tree, first unmounting what
// a failed or killed debootstrap may have left mounted in it (/proc,
// /sys, a bind of /dev): deleting through a bind mount would delete this
// machine's files. With anything still mounted it deletes nothing.
func removeUnmounted(dir string) error {
	mounts := mountsUnder(dir)
	for i := len(mounts) - 1; i >= 0; i-- {
		_ = ToolCmd(context.Background(), "umount", "--lazy", mounts[i]).Run()
	}
	if left := mountsUnder(dir); len(left) > 0 {
		return fmt.Errorf("not deleting %s: still mounted there: %s", dir, strings.Join(left, ", "))
	}
	return os.RemoveAll(dir)
}

// mountsUnder lists the mount points at or below dir, in mount order.
func mountsUnder(dir string) []string {
	data, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return nil
	}
	var out []string
	for _, line := range strings.Split(string(data), "\n") {
		f := strings.Fields(line)
		if len(f) < 5 {
			continue
		}
		mp := unescapeMount(f[4])
		if mp == dir || strings.HasPrefix(mp, dir+"/") {
			out = append(out, mp)
		}
	}
	return out
}

// unescapeMount undoes mountinfo's octal escapes (\040 for a space).
func unescapeMount(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// customizeRootfs applies the lab's masks and files, and removes what
// must be per host: sshd's host keys (debootstrap generated one set,
// which every host would share) and the machine id.
func customizeRootfs(root string) error {
	for _, u := range rootfsMasked {
		p := filepath.Join(root, "etc/systemd/system", u)
		_ = os.Remove(p)
		if err := os.Symlink("/dev/null", p); err != nil {
			return err
		}
	}
	for _, k := range sortedFileKeys(rootfsFiles) {
		p := filepath.Join(root, k)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(p, []byte(rootfsFiles[k]), 0o644); err != nil {
			return err
		}
	}
	keys, _ := filepath.Glob(filepath.Join(root, "etc/ssh/ssh_host_*"))
	for _, k := range keys {
		if err := os.Remove(k); err != nil {
			return err
		}
	}
	// Empty: systemd makes a transient id each boot, so hosts differ.
	if err := os.WriteFile(filepath.Join(root, "etc/machine-id"), nil, 0o444); err != nil {
		return err
	}
	_ = os.Remove(filepath.Join(root, "var/lib/dbus/machine-id"))
	// Units that would start at boot and are not the lab's: Debian enables
	// ssh.service (wanted), which the lab keeps.
	return nil
}

// treeSHA256 hashes a directory tree: every entry's path, type, mode,
// owner, size, link target and content, in path order. Times are left
// out, so an identical build hashes the same.
func treeSHA256(root string) (string, error) {
	h := sha256.New()
	var paths []string
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		paths = append(paths, p)
		return nil
	})
	if err != nil {
		return "", err
	}
	sort.Strings(paths)
	buf := make([]byte, 1<<20)
	for _, p := range paths {
		fi, err := os.Lstat(p)
		if err != nil {
			return "", err
		}
		st, _ := fi.Sys().(*syscall.Stat_t)
		var uid, gid uint32
		var rdev uint64
		if st != nil {
			uid, gid, rdev = st.Uid, st.Gid, st.Rdev
		}
		rel, _ := filepath.Rel(root, p)
		fmt.Fprintf(h, "%q %o %d %d %d %d", rel, uint32(fi.Mode()), uid, gid, fi.Size(), rdev)
		switch {
		case fi.Mode()&fs.ModeSymlink != 0:
			t, err := os.Readlink(p)
			if err != nil {
				return "", err
			}
			fmt.Fprintf(h, " -> %q", t)
		case fi.Mode().IsRegular():
			f, err := os.Open(p)
			if err != nil {
				return "", err
			}
			_, err = io.CopyBuffer(h, f, buf)
			_ = f.Close()
			if err != nil {
				return "", err
			}
		}
		fmt.Fprintln(h)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// AptMirror is the Debian mirror this machine's apt uses for the rootfs's
// suite (bookworm): the only package source the lab uses.
func AptMirror() (string, error) { return aptMirror("/etc/apt") }

// aptMirror is the Debian mirror this machine's apt uses for rootfsSuite,
// from sources.list (one-line) or sources.list.d/*.sources (deb822).
func aptMirror(aptDir string) (string, error) {
	files := []string{filepath.Join(aptDir, "sources.list")}
	more, _ := filepath.Glob(filepath.Join(aptDir, "sources.list.d", "*"))
	files = append(files, more...)
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		if m := mirrorIn(string(data)); m != "" {
			return m, nil
		}
	}
	return "", fmt.Errorf("no Debian %s mirror in %s/sources.list*: debootstrap must use the mirror apt uses", rootfsSuite, aptDir)
}

// mirrorIn finds a "deb URI bookworm main" line or a deb822 stanza with
// Suites including bookworm and Components including main.
func mirrorIn(text string) string {
	for _, stanza := range strings.Split(text, "\n\n") {
		fields := map[string]string{}
		for _, line := range strings.Split(stanza, "\n") {
			line = strings.TrimSpace(line)
			if line == "" || strings.HasPrefix(line, "#") {
				continue
			}
			f := strings.Fields(line)
			if f[0] == "deb" {
				// deb [opts] URI SUITE COMPONENTS...
				f = f[1:]
				if len(f) > 0 && strings.HasPrefix(f[0], "[") {
					for len(f) > 0 && !strings.HasSuffix(f[0], "]") {
						f = f[1:]
					}
					if len(f) > 0 {
						f = f[1:]
					}
				}
				if len(f) >= 3 && f[1] == rootfsSuite && contains(f[2:], "main") {
					return f[0]
				}
				continue
			}
			if k, v, ok := strings.Cut(line, ":"); ok {
				fields[strings.ToLower(strings.TrimSpace(k))] = strings.TrimSpace(v)
			}
		}
		if !contains(strings.Fields(fields["types"]), "deb") {
			continue
		}
		if contains(strings.Fields(fields["suites"]), rootfsSuite) && contains(strings.Fields(fields["components"]), "main") {
			if u := strings.Fields(fields["uris"]); len(u) > 0 {
				return u[0]
			}
		}
	}
	return ""
}

func contains(xs []string, x string) bool {
	for _, y := range xs {
		if y == x {
			return true
		}
	}
	return false
}
