package lab

// Machines: with Config.Parts set, each lab host is a real Debian machine,
// systemd-nspawn booting the cached rootfs with systemd as its PID 1.
//
//   - Its root is an overlay: the shared rootfs (read-only, never written)
//     under the host's own upper directory, which holds what makes it this
//     host: /etc/hostname, sshd's drop-in (ListenAddress on the host's own
//     loopback address) and host key, root's authorized_keys, the units and
//     configuration of its services, and whatever it writes later (/nix,
//     /var/lib/consul, ...).
//   - /persist is a real btrfs on a loop image, mounted outside and bound
//     in. The network is the machine's: every service binds the host's own
//     127.0.N.x address, never a wildcard.
//   - It runs under `unshare --mount --pid --fork --kill-child`: killing
//     that one pid kills nspawn, the container's systemd and every process
//     under it, and with them the mount namespace holding the overlay and
//     the loop mount. (Killing nspawn alone with SIGKILL orphans the
//     container's systemd.)
//   - It has its own cgroup, hoctl-lab/<dir>/<host> in the machine's
//     name=systemd and unified hierarchies, entered before nspawn starts:
//     nspawn with --keep-unit puts the container in the cgroup it runs in,
//     and two containers in one cgroup collide. The cgroup is also how a
//     host is frozen (Hang) and how teardown finds every process, even one
//     that escaped the namespaces.
//   - A tmpfs on this machine's /run/systemd, in the wrapper's mount
//     namespace only: nspawn writes /run/systemd/nspawn there.
//   - --register=no: this machine's PID 1 is not systemd, there is no
//     machined. --system-call-filter lets nfs-ganesha use file handles.

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// cgroupHierarchies are this machine's cgroup mounts a host gets its own
// cgroup in: the name=systemd hierarchy nspawn and the container's systemd
// track units in, and the unified one (freezing, killing).
var cgroupHierarchies = []string{"/sys/fs/cgroup/systemd", "/sys/fs/cgroup/unified"}

// labCgroup is the cgroup (relative to a hierarchy) of the lab in dir.
func labCgroup(dir string) string {
	return filepath.Join("hoctl-lab", strings.ReplaceAll(strings.Trim(dir, "/"), "/", "_"))
}

func (l *Lab) hostCgroup(h *Host) string { return filepath.Join(labCgroup(l.Dir), h.Name) }

// upper writes a file into the host's overlay upper directory (its own
// copy-on-write layer over the shared rootfs).
func (h *Host) upper(path, content string, mode os.FileMode) error {
	p := filepath.Join(h.Dir, "upper", path)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return err
	}
	return os.WriteFile(p, []byte(content), mode)
}

// file is one file of a host's own layer, by its path in the host.
type file struct {
	path, content string
	mode          os.FileMode
}

// install writes files into the host's own layer.
func (h *Host) install(files ...file) error {
	for _, f := range files {
		if err := h.upper(f.path, f.content, f.mode); err != nil {
			return err
		}
	}
	return nil
}

// enable makes unit start at boot, as `systemctl enable` would.
func (h *Host) enable(unit, target string) error {
	d := filepath.Join(h.Dir, "upper", "etc/systemd/system", target+".wants")
	if err := os.MkdirAll(d, 0o755); err != nil {
		return err
	}
	link := filepath.Join(d, unit)
	_ = os.Remove(link)
	return os.Symlink("/etc/systemd/system/"+unit, link)
}

// machineMasked are masked in every machine's own layer (not in the
// cached rootfs, so changing this list needs no rebuild): nfs-common's
// client-side units, which need kernel modules (sunrpc's rpc_pipefs) this
// kernel lacks and would only fail.
var machineMasked = []string{
	"run-rpc_pipefs.mount", "rpc-statd.service", "rpc-statd-notify.service", "rpc-gssd.service",
	"rpc-svcgssd.service", "auth-rpcgss-module.service", "nfs-idmapd.service", "nfs-blkmap.service",
	"proc-fs-nfsd.mount", "nfs-client.target",
}

// prepareMachine lays out the host's upper directory and start script
// (prepare has made its key and disk). Its services (Consul, Nomad,
// nfs-server) are added by their own files (consul.go, nomad.go, nfs.go).
func (l *Lab) prepareMachine(h *Host) error {
	for _, d := range []string{"upper", "work", "root", "persist"} {
		if err := os.MkdirAll(filepath.Join(h.Dir, d), 0o755); err != nil {
			return err
		}
	}
	auth, err := os.ReadFile(filepath.Join(l.Dir, "authorized_keys"))
	if err != nil {
		return err
	}
	err = h.install(
		file{"etc/hostname", h.Name + "\n", 0o644},
		file{"etc/hosts", fmt.Sprintf("127.0.0.1 localhost\n%s %s\n", h.Addr, h.Name), 0o644},
		file{"etc/ssh/sshd_config.d/00-hoctl-lab-host.conf", fmt.Sprintf("# hoctl lab host %s: its own address only\nListenAddress %s:%d\nHostKey /etc/ssh/ssh_host_ed25519_key\n", h.Name, h.Addr, Port), 0o644},
		file{"root/.ssh/authorized_keys", string(auth), 0o600},
		file{"data/.keep", "", 0o644},
	)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Join(h.Dir, "upper/etc/systemd/system"), 0o755); err != nil {
		return err
	}
	for _, u := range machineMasked {
		link := filepath.Join(h.Dir, "upper/etc/systemd/system", u)
		_ = os.Remove(link)
		if err := os.Symlink("/dev/null", link); err != nil {
			return err
		}
	}
	if err := l.prepareServices(h); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(h.Dir, "start.sh"), []byte(l.machineScript(h)), 0o755)
}

func (l *Lab) machineScript(h *Host) string {
	var b strings.Builder
	b.WriteString("set -e\n")
	for _, hier := range cgroupHierarchies {
		cg := filepath.Join(hier, l.hostCgroup(h))
		fmt.Fprintf(&b, "mkdir -p %s\necho 0 > %s/cgroup.procs\n", cg, cg)
	}
	b.WriteString("mount -t tmpfs -o size=1m,mode=755 tmpfs /run/systemd\n")
	fmt.Fprintf(&b, "mount -t overlay overlay -o lowerdir=%s,upperdir=%s,workdir=%s %s\n",
		l.Parts.Rootfs, filepath.Join(h.Dir, "upper"), filepath.Join(h.Dir, "work"), filepath.Join(h.Dir, "root"))
	args := []string{"exec", "systemd-nspawn", "--quiet", "--boot", "--keep-unit", "--register=no",
		"--machine=" + h.Name, "--directory=" + filepath.Join(h.Dir, "root"),
		"--console=read-only", "--resolv-conf=off", "--timezone=off", "--link-journal=no",
		"--system-call-filter=open_by_handle_at name_to_handle_at",
		"--bind-ro=" + l.Parts.Consul + ":/usr/local/bin/consul",
		"--bind-ro=" + l.Parts.Nomad + ":/usr/local/bin/nomad",
	}
	if l.Hoctl != "" {
		args = append(args, "--bind-ro="+l.Hoctl+":"+guardBin)
	}
	if l.DiskSize > 0 {
		b.WriteString(l.mountDisk(h, filepath.Join(h.Dir, "persist")))
		args = append(args, "--bind="+filepath.Join(h.Dir, "persist")+":/persist")
	}
	q := make([]string, len(args))
	for i, a := range args {
		q[i] = shellQuote(a)
	}
	q[0] = "exec"
	b.WriteString(strings.Join(q, " ") + "\n")
	return b.String()
}

func shellQuote(s string) string {
	if s != "" && strings.IndexFunc(s, func(r rune) bool {
		return (r < 'a' || r > 'z') && (r < 'A' || r > 'Z') && (r < '0' || r > '9') && !strings.ContainsRune("-_./:=@,+", r)
	}) < 0 {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// machineInit is the container's PID 1 (its systemd) as seen from here:
// the systemd process in the host's cgroup whose parent is nspawn.
func (l *Lab) machineInit(h *Host) (int, error) {
	for _, pid := range cgroupPids(filepath.Join("/sys/fs/cgroup/systemd", l.hostCgroup(h))) {
		comm, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
		if strings.TrimSpace(string(comm)) != "systemd" {
			continue
		}
		ppid := parentPid(pid)
		pcomm, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", ppid))
		if strings.TrimSpace(string(pcomm)) == "systemd-nspawn" {
			return pid, nil
		}
	}
	return 0, fmt.Errorf("%s: no running machine", h.Name)
}

func parentPid(pid int) int {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	s := string(data)
	if i := strings.LastIndexByte(s, ')'); i >= 0 {
		f := strings.Fields(s[i+1:])
		if len(f) > 1 {
			n, _ := strconv.Atoi(f[1])
			return n
		}
	}
	return 0
}

// cgroupPids lists every process in cg and its descendants.
func cgroupPids(cg string) []int {
	var pids []int
	_ = filepath.WalkDir(cg, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || d.Name() != "cgroup.procs" {
			return nil
		}
		data, _ := os.ReadFile(p)
		for _, f := range strings.Fields(string(data)) {
			if n, err := strconv.Atoi(f); err == nil {
				pids = append(pids, n)
			}
		}
		return nil
	})
	return pids
}

// killCgroup kills every process in a lab's cgroups (what survives the
// wrapper's death: nothing should, but a stale lab is cleaned whatever it
// left), then removes the cgroups, deepest first.
func killCgroup(rel string) error {
	uni := filepath.Join("/sys/fs/cgroup/unified", rel)
	if _, err := os.Stat(uni); err == nil {
		// Thaw first: a frozen (hung) host's processes die only once
		// thawed.
		_ = os.WriteFile(filepath.Join(uni, "cgroup.freeze"), []byte("0"), 0o644)
		_ = os.WriteFile(filepath.Join(uni, "cgroup.kill"), []byte("1"), 0o644)
	}
	for _, hier := range cgroupHierarchies {
		for _, pid := range cgroupPids(filepath.Join(hier, rel)) {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	for _, hier := range cgroupHierarchies {
		root := filepath.Join(hier, rel)
		for {
			err := removeCgroupTree(root)
			if err == nil || os.IsNotExist(err) {
				break
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("removing cgroup %s: %w", root, err)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	return nil
}

func removeCgroupTree(root string) error {
	var dirs []string
	err := filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			dirs = append(dirs, p)
		}
		return nil
	})
	if err != nil {
		return err
	}
	for i := len(dirs) - 1; i >= 0; i-- {
		if err := syscall.Rmdir(dirs[i]); err != nil && !os.IsNotExist(err) {
			return err
		}
	}
	return nil
}

// freezeMachine freezes (or thaws) every process of the host: the real
// hung host, TCP still accepted by the kernel, nothing answering.
func (l *Lab) freezeMachine(h *Host, frozen bool) error {
	v := "0"
	if frozen {
		v = "1"
	}
	return os.WriteFile(filepath.Join("/sys/fs/cgroup/unified", l.hostCgroup(h), "cgroup.freeze"), []byte(v), 0o644)
}

// MemoryPSS is the proportional set size of every process of the lab's
// machines, in bytes: what the lab costs this machine in memory.
func (l *Lab) MemoryPSS() int64 {
	var total int64
	for _, m := range l.Memory() {
		total += m.PSS
	}
	return total
}

// MemoryUse is the PSS of one part of a machine, in bytes: a unit of its
// systemd ("consul.service", "init.scope": its PID 1), or "supervisor"
// (the wrapper and systemd-nspawn, outside the machine).
type MemoryUse struct {
	Host, Part string
	PSS        int64
}

// Memory is the PSS of every process of the lab's machines, by host and
// part (each process counted once, in the cgroup it is in).
func (l *Lab) Memory() []MemoryUse {
	var out []MemoryUse
	for _, h := range l.Hosts {
		root := filepath.Join("/sys/fs/cgroup/systemd", l.hostCgroup(h))
		_ = filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
			if err != nil || !d.IsDir() {
				return nil
			}
			data, _ := os.ReadFile(filepath.Join(p, "cgroup.procs"))
			var pss int64
			for _, f := range strings.Fields(string(data)) {
				pid, _ := strconv.Atoi(f)
				pss += pssOf(pid)
			}
			if pss == 0 {
				return nil
			}
			part := filepath.Base(p)
			if p == root {
				part = "supervisor"
			}
			out = append(out, MemoryUse{Host: h.Name, Part: part, PSS: pss})
			return nil
		})
	}
	return out
}

// pssOf is a process's proportional set size in bytes (0 if it is gone).
func pssOf(pid int) int64 {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/smaps_rollup", pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(data), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "Pss:" {
			kb, _ := strconv.ParseInt(f[1], 10, 64)
			return kb << 10
		}
	}
	return 0
}
