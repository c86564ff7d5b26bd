package lab

// The host tools: every program that the lab, the demo, the end-to-end
// tests and the benchmarks run on this machine (the workstation), with the
// Debian package that installs it. It is the one list: the lab starts
// them only through ToolCmd, which refuses a program not named here;
// Preflight checks them before anything long starts; and tests hold the
// table to the Makefile (each Debian tool's package is in LAB_PKGS or
// BENCH_PKGS, or is Essential, and `dpkg -S` of the installed program
// names it) and to the code (no exec of a program outside the table, in
// Go or in the shell the lab writes and demo.sh). So a program that make
// deps does not install fails a test here, or the preflight in seconds,
// never a new user's first make demo after the cache's long build.

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
)

// ToolUse says who runs a host tool, so that each check asks only for
// what its caller needs.
type ToolUse uint

const (
	// ForLab: any lab (namespace hosts: sshd in namespaces, running this
	// machine's programs for hoctl's sessions).
	ForLab ToolUse = 1 << iota
	// ForMachines: the real cluster (systemd-nspawn machines, their
	// Nix generations) and building its cached parts.
	ForMachines
	// ForDemo: internal/lab/demo.sh.
	ForDemo
	// ForTests: the end-to-end and lab tests.
	ForTests
	// ForBench: make bench (the tools hoctl is compared with).
	ForBench
)

// ForAll is every use but the benchmarks': what `make demo`, `make
// lab-cache` and `make test` need (hoctl-lab preflight).
const ForAll = ForLab | ForMachines | ForDemo | ForTests

// Where a host tool comes from.
const (
	FromDebian = "debian" // a Debian package (HostTool.Package)
	FromGo     = "go"     // the Go toolchain at /usr/local/go, the README's prerequisite
	FromBuild  = "build"  // built from this repository (make build, a test's go build)
)

// HostTool is a program of this machine that the lab, the demo, the tests
// or the bench run.
type HostTool struct {
	Name    string  // what is run, looked up in PATH (or at Path)
	Path    string  // set when it is run by this absolute path
	From    string  // FromDebian, FromGo or FromBuild
	Package string  // FromDebian: the package installing it
	Use     ToolUse // who runs it
	Why     string  // what for
}

// goRoot is where the README puts Go; make adds its bin to PATH, and the
// lab finds go there when PATH has none (a fresh root shell).
const goRoot = "/usr/local/go"

// hostTools is the table. Programs run on a namespace host are this
// machine's too (its sessions run in namespaces of this machine's root).
var hostTools = []HostTool{
	// Every lab.
	{Name: "sshd", Path: "/usr/sbin/sshd", From: FromDebian, Package: "openssh-server", Use: ForLab, Why: "each namespace host is sshd -D"},
	{Name: "unshare", From: FromDebian, Package: "util-linux", Use: ForLab, Why: "every host's wrapper (its namespaces; --kill-child)"},
	{Name: "nsenter", From: FromDebian, Package: "util-linux", Use: ForLab, Why: "Lab.Command and RunOn: a command inside a host"},
	{Name: "mountpoint", From: FromDebian, Package: "util-linux", Use: ForLab, Why: "teardown: an old lab's /proc view"},
	{Name: "mount", From: FromDebian, Package: "mount", Use: ForLab, Why: "start.sh: tmpfs, loop, bind and overlay mounts"},
	{Name: "umount", From: FromDebian, Package: "mount", Use: ForLab, Why: "teardown; a failed debootstrap's mounts"},
	{Name: "losetup", From: FromDebian, Package: "mount", Use: ForLab, Why: "teardown and hoctl-lab check: the disks' loop devices; a canary block device (dirsafe_test)"},
	{Name: "mkfs.btrfs", From: FromDebian, Package: "btrfs-progs", Use: ForLab, Why: "each host's /persist image"},
	{Name: "btrfs", From: FromDebian, Package: "btrfs-progs", Use: ForLab, Why: "hoctl's replication on namespace hosts"},
	{Name: "zstd", From: FromDebian, Package: "zstd", Use: ForLab, Why: "replication with compress: zstd on namespace hosts"},
	{Name: "getfattr", From: FromDebian, Package: "attr", Use: ForLab | ForTests, Why: "the replication and security tests read xattrs on namespace hosts"},
	{Name: "curl", From: FromDebian, Package: "curl", Use: ForLab, Why: "hoctl's checks that run curl on a host (namespace hosts)"},
	{Name: "sudo", From: FromDebian, Package: "sudo", Use: ForLab | ForTests, Why: "become: sudo on namespace hosts (TestBecomeFlags)"},
	{Name: "hostname", From: FromDebian, Package: "hostname", Use: ForLab, Why: "start.sh of a namespace host"},
	{Name: "sh", From: FromDebian, Package: "dash", Use: ForLab | ForMachines, Why: "start.sh and deploy.sh"},
	{Name: "bash", From: FromDebian, Package: "bash", Use: ForBench, Why: "the transfer suites' hand-run pipelines on namespace hosts (pipefail, times)"},
	{Name: "mbuffer", From: FromDebian, Package: "mbuffer", Use: ForBench, Why: "bench -only direct-tries: a buffer on either side of the direct pipe"},
	{Name: "mkdir", From: FromDebian, Package: "coreutils", Use: ForLab | ForMachines | ForDemo, Why: "start.sh, build.sh, demo.sh"},
	{Name: "cat", From: FromDebian, Package: "coreutils", Use: ForMachines | ForDemo, Why: "deploy.sh, build.sh, demo.sh"},
	{Name: "date", From: FromDebian, Package: "coreutils", Use: ForMachines, Why: "deploy.sh: a generation's nonce"},
	{Name: "readlink", From: FromDebian, Package: "coreutils", Use: ForMachines, Why: "deploy.sh"},
	{Name: "chmod", From: FromDebian, Package: "coreutils", Use: ForMachines, Why: "build.sh; the cache build's module copies"},
	{Name: "touch", From: FromDebian, Package: "coreutils", Use: ForMachines, Why: "build.sh (nix-build runs it here)"},
	{Name: "cp", From: FromDebian, Package: "coreutils", Use: ForMachines, Why: "the cache build's module copies"},
	{Name: "nice", From: FromDebian, Package: "coreutils", Use: ForMachines, Why: "the cache's builds run under nice"},
	{Name: "true", From: FromDebian, Package: "coreutils", Use: ForTests, Why: "TestGoneSeesAZombie"},
	{Name: "dirname", From: FromDebian, Package: "coreutils", Use: ForDemo, Why: "demo.sh"},
	{Name: "head", From: FromDebian, Package: "coreutils", Use: ForDemo, Why: "demo.sh"},
	{Name: "seq", From: FromDebian, Package: "coreutils", Use: ForDemo, Why: "demo.sh"},
	{Name: "sleep", From: FromDebian, Package: "coreutils", Use: ForDemo, Why: "demo.sh"},
	{Name: "sed", From: FromDebian, Package: "sed", Use: ForDemo, Why: "demo.sh"},
	// The real cluster.
	{Name: "systemd-nspawn", From: FromDebian, Package: "systemd-container", Use: ForMachines, Why: "each machine boots in systemd-nspawn"},
	{Name: "debootstrap", From: FromDebian, Package: "debootstrap", Use: ForMachines, Why: "the cached Debian rootfs"},
	{Name: "nix-instantiate", From: FromDebian, Package: "nix-bin", Use: ForMachines, Why: "deploy.sh: a generation is built in this machine's store"},
	{Name: "nix-store", From: FromDebian, Package: "nix-bin", Use: ForMachines, Why: "deploy.sh; teardown deletes what the lab built"},
	{Name: "nix", From: FromDebian, Package: "nix-bin", Use: ForMachines, Why: "deploy.sh: nix copy to the host"},
	{Name: "ssh", From: FromDebian, Package: "openssh-client", Use: ForMachines | ForTests | ForBench, Why: "deploy.sh (nix copy, activation); tests and bench"},
	{Name: "gcc", From: FromDebian, Package: "gcc", Use: ForMachines | ForBench, Why: "Nomad's cached build needs cgo; the bench's NFSv4 writer client (bench/nfswriter, against libnfs13)"},
	{Name: "nfs-ls", Path: "/usr/bin/nfs-ls", From: FromDebian, Package: "libnfs-utils", Use: ForMachines, Why: "copied into each NFS client machine (nfsclient.go)"},
	{Name: "nfs-cp", Path: "/usr/bin/nfs-cp", From: FromDebian, Package: "libnfs-utils", Use: ForMachines | ForBench, Why: "copied into each NFS client machine (nfsclient.go); the bench's client that opens new files"},
	{Name: "nfs-cat", From: FromDebian, Package: "libnfs-utils", Use: ForDemo | ForTests | ForBench, Why: "a client's read of the export over NFSv4"},
	{Name: "lsof", Path: "/usr/bin/lsof", From: FromDebian, Package: "lsof", Use: ForTests, Why: "copied into the cattle machines by the GlusterFS stand-in (glusterfs.go)"},
	{Name: "rsync", Path: "/usr/bin/rsync", From: FromDebian, Package: "rsync", Use: ForTests, Why: "copied into the cattle machines by the GlusterFS stand-in (glusterfs.go)"},
	// The tests.
	{Name: "ssh-keygen", From: FromDebian, Package: "openssh-client", Use: ForTests, Why: "replication keys (replicate_transport_test)"},
	{Name: "pgrep", From: FromDebian, Package: "procps", Use: ForTests, Why: "what a killed run left"},
	{Name: "pkill", From: FromDebian, Package: "procps", Use: ForTests, Why: "a receive killed mid-stream"},
	{Name: "ps", From: FromDebian, Package: "procps", Use: ForTests, Why: "what a killed run left"},
	{Name: "ss", From: FromDebian, Package: "iproute2", Use: ForTests, Why: "hoctl's connections to Consul"},
	{Name: "nft", From: FromDebian, Package: "nftables", Use: ForTests, Why: "Lab.Partition: a network partition between machines"},
	{Name: "git", From: FromDebian, Package: "git", Use: ForTests, Why: "the phase3-update-jobs runbook's jobs repository (runbook_docs_test)"},
	{Name: "dpkg", From: FromDebian, Package: "dpkg", Use: ForTests, Why: "the table's test: dpkg -S of each tool"},
	{Name: "dpkg-query", From: FromDebian, Package: "dpkg", Use: ForTests, Why: "the table's test: is a package Essential"},
	// The benchmarks.
	{Name: "pdsh", From: FromDebian, Package: "pdsh", Use: ForBench, Why: "fan-out compared"},
	{Name: "ansible", From: FromDebian, Package: "ansible-core", Use: ForBench, Why: "fan-out compared"},
	{Name: "ansible-playbook", From: FromDebian, Package: "ansible-core", Use: ForBench, Why: "a runbook compared"},
	{Name: "btrbk", From: FromDebian, Package: "btrbk", Use: ForBench, Why: "replication compared"},
	{Name: "python3", Path: "/usr/bin/python3", From: FromDebian, Package: "python3-minimal", Use: ForBench, Why: "Ansible's modules on namespace hosts"},
	// Not from Debian.
	{Name: "go", From: FromGo, Use: ForMachines | ForTests | ForBench, Why: "Consul and Nomad from source; hoctl for the tests and the bench"},
	{Name: "hoctl", From: FromBuild, Use: ForDemo | ForTests | ForBench, Why: "the program under test"},
	{Name: "hoctl-lab", From: FromBuild, Use: ForDemo, Why: "demo.sh's lab"},
	{Name: "nfswriter", From: FromBuild, Use: ForBench, Why: "the bench's NFSv4 client that holds a file open and writes through a failover (bench/nfswriter)"},
	{Name: "lab.test", From: FromBuild, Use: ForTests, Why: "TestStaleLabIsRemovedAtStart runs its own test binary as the run it kills"},
}

// HostTools returns the table (a copy).
func HostTools() []HostTool { return append([]HostTool(nil), hostTools...) }

// Tool returns the named host tool; a path names the tool at that path
// (sshd at /usr/sbin/sshd) or, for a program built here, its base name
// (a test's hoctl in a temporary directory).
func Tool(name string) (HostTool, bool) {
	for _, t := range hostTools {
		switch {
		case t.Name == name, t.Path != "" && t.Path == name:
			return t, true
		case t.From == FromBuild && strings.Contains(name, "/") && filepath.Base(name) == t.Name:
			return t, true
		}
	}
	return HostTool{}, false
}

// Find is where the tool is on this machine: its Path, else PATH's, else
// (go) the README's /usr/local/go.
func (t HostTool) Find() (string, error) {
	if t.Path != "" {
		if _, err := os.Stat(t.Path); err != nil {
			return "", err
		}
		return t.Path, nil
	}
	p, err := exec.LookPath(t.Name)
	if err != nil && t.From == FromGo {
		p = filepath.Join(goRoot, "bin", t.Name)
		if _, serr := os.Stat(p); serr == nil {
			return p, nil
		}
	}
	return p, err
}

// ErrNotHostTool is the error of a command for a program not in the table.
var ErrNotHostTool = errors.New("not in internal/lab's table of host tools (hosttools.go): add it there with its Debian package, and the package to the Makefile's LAB_PKGS or BENCH_PKGS")

// ToolCmd is exec.CommandContext for a host tool: name is a program of
// the table (or a path, see Tool). A program not in the table is never
// started: the command's Start returns ErrNotHostTool.
func ToolCmd(ctx context.Context, name string, args ...string) *exec.Cmd {
	t, ok := Tool(name)
	path := name
	if ok && !strings.Contains(name, "/") {
		if p, err := t.Find(); err == nil {
			path = p
		}
	}
	cmd := exec.CommandContext(ctx, path, args...)
	if !ok {
		cmd.Err = fmt.Errorf("%s: %w", name, ErrNotHostTool)
	}
	return cmd
}

// MissingToolsError is Preflight's answer: the host tools not found, and
// how to install them.
type MissingToolsError struct {
	Missing []HostTool
}

// Packages are the Debian packages that install the missing tools, sorted.
func (e *MissingToolsError) Packages() []string {
	seen := map[string]bool{}
	var pkgs []string
	for _, t := range e.Missing {
		if t.Package != "" && !seen[t.Package] {
			seen[t.Package] = true
			pkgs = append(pkgs, t.Package)
		}
	}
	sort.Strings(pkgs)
	return pkgs
}

func (e *MissingToolsError) Error() string {
	var names []string
	goMissing := false
	for _, t := range e.Missing {
		switch t.From {
		case FromDebian:
			names = append(names, t.Name+" ("+t.Package+")")
		case FromGo:
			goMissing = true
			names = append(names, t.Name+" (Go, at "+goRoot+")")
		default:
			names = append(names, t.Name)
		}
	}
	msg := "missing on this machine: " + strings.Join(names, ", ")
	if pkgs := e.Packages(); len(pkgs) > 0 {
		msg += "\ninstall them with: apt-get install -y " + strings.Join(pkgs, " ")
	}
	if goMissing {
		msg += "\nand Go 1.26 at " + goRoot + " (https://go.dev/dl/)"
	}
	return msg
}

// Preflight checks that every host tool of the given uses is on this
// machine (programs built here excepted: they are built later); the
// error, a *MissingToolsError, names each missing one with its package
// and the one command installing them. It only looks (seconds at most):
// run it before anything long.
func Preflight(use ToolUse) error {
	var missing []HostTool
	for _, t := range hostTools {
		if t.Use&use == 0 || t.From == FromBuild {
			continue
		}
		if _, err := t.Find(); err != nil {
			missing = append(missing, t)
		}
	}
	if len(missing) > 0 {
		return &MissingToolsError{Missing: missing}
	}
	return nil
}

// FindTool is where the named host tool is on this machine (exec.LookPath
// through the table); a name not in the table is an error.
func FindTool(name string) (string, error) {
	t, ok := Tool(name)
	if !ok {
		return "", fmt.Errorf("%s: %w", name, ErrNotHostTool)
	}
	return t.Find()
}
