// Package lab builds hoctl's test cluster on one Linux machine: each host
// is a real OpenSSH sshd on its own loopback address (127.x.y.z only),
// started under unshare in its own mount, UTS and PID namespaces, with its
// own hostname, host key, a tmpfs /data and a real btrfs /persist on a loop
// image. The lab writes a known_hosts file and an inventory pointing at
// the hosts, so the hoctl binary is tested exactly as an operator runs it.
//
// Every host's processes live in a PID namespace whose init is sshd;
// unshare runs with --kill-child, so killing the recorded unshare pid
// takes down sshd, every session it forked and, with the last process,
// the mount namespace, its mounts and (autoclear) the loop device. A lab
// records those pids in lab.json; Start removes a stale lab found there
// before building a new one, so a killed test run leaves nothing behind
// for long.
//
// Faults: Kill (the host is down: connection refused), Hang (SIGSTOP of
// sshd: TCP connects, SSH never answers), Resume, Restart, and
// RotateHostKey (the host now presents a different key).
package lab

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Port is the port every lab sshd listens on, away from a system sshd on 22.
const Port = 2222

// HostSpec describes one lab host.
type HostSpec struct {
	Name    string
	Roles   []string
	Managed *bool
}

// Config describes a lab.
type Config struct {
	// Dir holds everything the lab creates; one lab per Dir.
	Dir string
	// Net picks the loopback block: host i gets 127.0.<Net>.<11+i>.
	// Labs that may run at once must use different blocks.
	Net int
	// Hosts to start, in order.
	Hosts []HostSpec
	// Groups for the generated inventory.
	Groups map[string][]string
	// DiskSize of each host's btrfs image; 0 means no /persist.
	DiskSize int64
	// ConnectTimeout written into the inventory (default 3s).
	ConnectTimeout time.Duration
	// Parts, when set, makes every host a real machine (machines.go):
	// systemd-nspawn booting this rootfs, with real Consul, Nomad and
	// nfs-server units by role, and the inventory's consul and nomad
	// sections name the first quorum host's agents. Without it, hosts are
	// sshd alone in namespaces (no Consul, Nomad, NFS server or Nix).
	Parts *Parts `json:",omitempty"`
	// Hoctl, with Parts, is the hoctl binary bound read-only into every
	// machine at /usr/local/bin/hoctl: the NFS hosts run its guard
	// (hoctl-guard-data-services.service), as the NixOS module in
	// docs/failover.md installs it. Empty: no guard is installed.
	Hoctl string `json:",omitempty"`
}

// Lab is a running lab.
type Lab struct {
	Config
	ClientKey  string // private key file authorised on every host
	KnownHosts string
	Inventory  string
	Hosts      []*Host
	// Boot is how long Start took, stage by stage (make bench's lab suite).
	Boot BootTimes

	mu    sync.Mutex
	start time.Time // of Start, which Boot's times count from
}

// BootTimes are Start's stages, each measured from Start's beginning
// (after the cache check, which is not Start's), except Sshd.
type BootTimes struct {
	// Sshd is, per host, from its wrapper's start to its sshd's banner.
	Sshd map[string]time.Duration
	// AllSshd: every host prepared (disk images, keys, layers) and its
	// sshd answering.
	AllSshd time.Duration
	// Machines only: Consul has a leader; the NFS primary's
	// nfs-server.service has started (ganesha serving, its Consul service
	// registered); every Nomad client is ready; every machine has its
	// first Nix system generation.
	ConsulLeader, NFSServed, NomadReady, Systems time.Duration
	// Total is all of Start.
	Total time.Duration
}

// mark records how long since Start began.
func (l *Lab) mark(d *time.Duration) { *d = time.Since(l.start) }

// Host is one running lab host.
type Host struct {
	Name string
	Addr string // IP
	Dir  string
	Pid  int // the unshare process; its death takes the host down
	spec HostSpec
}

// Check reports what the machine lacks to run a lab, or nil: root, and
// the host tools every lab runs (hosttools.go), named with their packages.
func Check() error {
	if os.Geteuid() != 0 {
		return errors.New("the lab needs root (it mounts filesystems and makes namespaces)")
	}
	return Preflight(ForLab)
}

// CheckMachines reports what the machine lacks to boot real machines
// (Config.Parts), or nil.
func CheckMachines() error {
	if err := Preflight(ForMachines); err != nil {
		return err
	}
	// This machine's hybrid layout (see machines.go); a pure cgroup v2
	// machine would need the machines' cgroups placed differently.
	var missing []string
	for _, hier := range cgroupHierarchies {
		if _, err := os.Stat(filepath.Join(hier, "cgroup.procs")); err != nil {
			missing = append(missing, hier)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("the lab's machines need the cgroup hierarchies %s", strings.Join(missing, ", "))
	}
	return nil
}

// SeedHosts is the seed's cluster: zippy (storage, NFS primary), c1-c3
// (compute, quorum; c1 the NFS standby), fractal, sunny and chilly (not
// managed by hoctl).
func SeedHosts() ([]HostSpec, map[string][]string) {
	no := false
	return []HostSpec{
			{Name: "zippy", Roles: []string{"storage", "nfs-primary"}},
			{Name: "c1", Roles: []string{"compute", "quorum", "nfs-standby"}},
			{Name: "c2", Roles: []string{"compute", "quorum"}},
			{Name: "c3", Roles: []string{"compute", "quorum"}},
			{Name: "fractal", Roles: []string{"backup"}, Managed: &no},
			{Name: "sunny", Roles: []string{"standalone"}, Managed: &no},
			{Name: "chilly", Roles: []string{"standalone"}, Managed: &no},
		}, map[string][]string{
			"cattle":  {"c1", "c2", "c3"},
			"cluster": {"zippy", "c1", "c2", "c3"},
		}
}

// NumberedHosts returns n hosts named prefix01..prefixNN, in group "fleet".
func NumberedHosts(prefix string, n int) ([]HostSpec, map[string][]string) {
	var hs []HostSpec
	var names []string
	for i := 1; i <= n; i++ {
		name := fmt.Sprintf("%s%02d", prefix, i)
		hs = append(hs, HostSpec{Name: name, Roles: []string{"fleet"}})
		names = append(names, name)
	}
	return hs, map[string][]string{"odd": odd(names)}
}

func odd(names []string) []string {
	var out []string
	for i, n := range names {
		if i%2 == 0 {
			out = append(out, n)
		}
	}
	return out
}

func (l *Lab) has(name string) bool { return l.Host(name) != nil }

// Host returns the named host, or nil.
func (l *Lab) Host(name string) *Host {
	for _, h := range l.Hosts {
		if h.Name == name {
			return h
		}
	}
	return nil
}

// Command runs argv inside host name's namespaces, as a program started on
// that host itself would (a systemd timer calling hoctl there).
func (l *Lab) Command(name string, argv ...string) (*exec.Cmd, error) {
	h := l.Host(name)
	if h == nil {
		return nil, fmt.Errorf("no lab host %q", name)
	}
	if l.Parts != nil {
		pid, err := l.machineInit(h)
		if err != nil {
			return nil, err
		}
		return ToolCmd(context.Background(), "nsenter", append([]string{"--target", strconv.Itoa(pid), "--mount", "--uts", "--ipc", "--pid", "--root", "--wd", "--"}, argv...)...), nil
	}
	pid, err := h.sshdPid()
	if err != nil {
		return nil, err
	}
	return ToolCmd(context.Background(), "nsenter", append([]string{"--target", strconv.Itoa(pid), "--mount", "--uts", "--pid", "--"}, argv...)...), nil
}
