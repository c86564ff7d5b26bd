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
	"bufio"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/crypto/ssh"
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

// state is lab.json: enough to tear a lab down from another process, or
// to attach to it (hoctl-lab kill HOST).
type state struct {
	Config Config      `json:"config"`
	Hosts  []hostState `json:"hosts"`
}

type hostState struct {
	Name string   `json:"name"`
	Addr string   `json:"addr"`
	Dir  string   `json:"dir"`
	Pid  int      `json:"pid"`
	Spec HostSpec `json:"spec"`
}

func readState(dir string) (*state, error) {
	data, err := os.ReadFile(filepath.Join(dir, "lab.json"))
	if err != nil {
		return nil, err
	}
	var st state
	if err := json.Unmarshal(data, &st); err != nil {
		return nil, fmt.Errorf("%s/lab.json: %w", dir, err)
	}
	return &st, nil
}

// Attach returns the lab running in dir, as recorded by Start.
func Attach(dir string) (*Lab, error) {
	st, err := readState(dir)
	if err != nil {
		return nil, fmt.Errorf("no lab in %s: %w", dir, err)
	}
	l := &Lab{Config: st.Config,
		ClientKey:  filepath.Join(dir, "id_ed25519"),
		KnownHosts: filepath.Join(dir, "known_hosts"),
		Inventory:  filepath.Join(dir, "inventory.yaml"),
	}
	for _, h := range st.Hosts {
		l.Hosts = append(l.Hosts, &Host{Name: h.Name, Addr: h.Addr, Dir: h.Dir, Pid: h.Pid, spec: h.Spec})
	}
	return l, nil
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

// Start removes any stale lab in cfg.Dir and starts a new one.
func Start(ctx context.Context, cfg Config) (*Lab, error) {
	if err := Check(); err != nil {
		return nil, err
	}
	if cfg.Parts != nil {
		if err := CheckMachines(); err != nil {
			return nil, err
		}
	}
	if cfg.Dir == "" || !filepath.IsAbs(cfg.Dir) {
		return nil, errors.New("lab: Dir must be an absolute path")
	}
	if cfg.Net < 0 || cfg.Net > 255 || len(cfg.Hosts) == 0 || len(cfg.Hosts) > 200 {
		return nil, errors.New("lab: Net must be 0-255 and there must be 1-200 hosts")
	}
	if cfg.ConnectTimeout == 0 {
		cfg.ConnectTimeout = 3 * time.Second
	}
	if err := Teardown(cfg.Dir); err != nil {
		return nil, fmt.Errorf("removing stale lab: %w", err)
	}
	if err := os.MkdirAll(cfg.Dir, 0o755); err != nil {
		return nil, err
	}
	// sshd wants its privilege-separation directory; the mount points
	// must exist in the root filesystem for the namespaces to mount on.
	for _, d := range []string{"/run/sshd", "/data", "/persist"} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, err
		}
	}
	l := &Lab{Config: cfg,
		ClientKey:  filepath.Join(cfg.Dir, "id_ed25519"),
		KnownHosts: filepath.Join(cfg.Dir, "known_hosts"),
		Inventory:  filepath.Join(cfg.Dir, "inventory.yaml"),
		Boot:       BootTimes{Sshd: map[string]time.Duration{}},
		start:      time.Now(),
	}
	clientPub, err := writeKey(l.ClientKey)
	if err != nil {
		return nil, err
	}
	auth := filepath.Join(cfg.Dir, "authorized_keys")
	if err := os.WriteFile(auth, ssh.MarshalAuthorizedKey(clientPub), 0o600); err != nil {
		return nil, err
	}
	for i, spec := range cfg.Hosts {
		h := &Host{Name: spec.Name, Addr: fmt.Sprintf("127.0.%d.%d", cfg.Net, 11+i), Dir: filepath.Join(cfg.Dir, "hosts", spec.Name), spec: spec}
		l.Hosts = append(l.Hosts, h)
	}
	ok := false
	defer func() {
		if !ok {
			_ = l.Stop()
		}
	}()
	errs := make(chan error, len(l.Hosts))
	var wg sync.WaitGroup
	for _, h := range l.Hosts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := l.prepare(h); err != nil {
				errs <- fmt.Errorf("%s: %w", h.Name, err)
				return
			}
			if err := l.boot(ctx, h); err != nil {
				errs <- fmt.Errorf("%s: %w", h.Name, err)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		return nil, err
	}
	l.mark(&l.Boot.AllSshd)
	if err := l.writeKnownHosts(); err != nil {
		return nil, err
	}
	if err := l.writeInventory(); err != nil {
		return nil, err
	}
	if l.Parts != nil {
		if err := l.startServices(ctx); err != nil {
			return nil, err
		}
		ictx, cancel := context.WithTimeout(ctx, nixInstallTimeout)
		defer cancel()
		if err := l.installSystems(ictx); err != nil {
			return nil, err
		}
		l.mark(&l.Boot.Systems)
	}
	l.mark(&l.Boot.Total)
	ok = true
	return l, nil
}

func writeKey(path string) (ssh.PublicKey, error) {
	_, priv, err := ed25519.GenerateKey(nil)
	if err != nil {
		return nil, err
	}
	block, err := ssh.MarshalPrivateKey(priv, "")
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(path, pem.EncodeToMemory(block), 0o600); err != nil {
		return nil, err
	}
	signer, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		return nil, err
	}
	return signer.PublicKey(), nil
}

// prepare lays out what makes h this host, whichever kind it is: its
// directory, its host key and its btrfs disk image; then what its kind
// boots from (prepareNamespace here, prepareMachine in machines.go).
func (l *Lab) prepare(h *Host) error {
	if err := os.MkdirAll(h.Dir, 0o755); err != nil {
		return err
	}
	if err := l.writeHostKey(h); err != nil {
		return err
	}
	if err := l.prepareDisk(h); err != nil {
		return err
	}
	if l.Parts != nil {
		return l.prepareMachine(h)
	}
	return l.prepareNamespace(h)
}

// writeHostKey gives h a new host key, where its sshd reads it.
func (l *Lab) writeHostKey(h *Host) error {
	key := filepath.Join(h.Dir, "ssh_host_ed25519_key")
	if _, err := writeKey(key); err != nil {
		return err
	}
	if l.Parts == nil {
		return nil // the namespace host's sshd_config names this file
	}
	pem, err := os.ReadFile(key)
	if err != nil {
		return err
	}
	return h.upper("etc/ssh/ssh_host_ed25519_key", string(pem), 0o600)
}

// prepareDisk makes h's btrfs /persist image (kept across Kill and
// Restart: a powered-off host keeps its disk).
func (l *Lab) prepareDisk(h *Host) error {
	if l.DiskSize == 0 {
		return nil
	}
	img := filepath.Join(h.Dir, "disk.img")
	if _, err := os.Stat(img); err == nil {
		return nil
	}
	f, err := os.Create(img)
	if err != nil {
		return err
	}
	if err := f.Truncate(l.DiskSize); err != nil {
		_ = f.Close()
		return err
	}
	_ = f.Close()
	// mkfs.btrfs first checks that the image is not mounted, through
	// every loop device mounted on this machine: one that another lab
	// detaches meanwhile fails the check ("cannot check mount status of
	// …: No such device or address"), though the image is new and ours.
	var out []byte
	for try := 0; ; try++ {
		if out, err = ToolCmd(context.Background(), "mkfs.btrfs", "-q", img).CombinedOutput(); err == nil {
			return nil
		}
		if try == 4 || !strings.Contains(string(out), "cannot check mount status") {
			return fmt.Errorf("mkfs.btrfs: %w: %s", err, out)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// mountDisk is the start script's line mounting h's disk image on dir.
// nosuid,nodev: what docs/security.md asks of a replication target's
// mount (hoctl warns without them).
func (l *Lab) mountDisk(h *Host, dir string) string {
	return fmt.Sprintf("mount -o loop,nosuid,nodev %s %s\n", filepath.Join(h.Dir, "disk.img"), dir)
}

// prepareNamespace writes the start script of a namespace host: sshd as
// the init of its own PID namespace, with its own hostname, /run, /nix,
// /root, /data and /persist.
func (l *Lab) prepareNamespace(h *Host) error {
	cfg := fmt.Sprintf(`# hoctl lab host %s
ListenAddress %s:%d
HostKey %s
AuthorizedKeysFile %s .ssh/authorized_keys
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
PidFile none
UseDNS no
MaxStartups 100:30:200
LogLevel ERROR
AcceptEnv LANG LC_*
SetEnv PATH=%s:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
`, h.Name, h.Addr, Port, filepath.Join(h.Dir, "ssh_host_ed25519_key"), filepath.Join(l.Dir, "authorized_keys"), filepath.Join(h.Dir, "bin"))
	if err := os.WriteFile(filepath.Join(h.Dir, "sshd_config"), []byte(cfg), 0o600); err != nil {
		return err
	}
	var script strings.Builder
	fmt.Fprintf(&script, "set -e\nhostname %s\nmount -t tmpfs -o size=256m tmpfs /data\n", h.Name)
	// Its own /run (sshd's privilege separation dir): the machine's own
	// /run and / are never written. (No systemd, Nix or NFS here: those
	// are the real machines', machines.go.)
	script.WriteString("mount -t tmpfs -o size=16m tmpfs /run\nmkdir -p /run/sshd\n")
	// Each host gets its own /root: the workstation's shell start-up
	// files (say a pyenv init in .bashrc, which bash sources for sshd
	// sessions) are not the host's and would cost every command 100 ms.
	if err := os.MkdirAll(filepath.Join(h.Dir, "root"), 0o700); err != nil {
		return err
	}
	fmt.Fprintf(&script, "mount --bind %s /root\n", filepath.Join(h.Dir, "root"))
	if l.DiskSize > 0 {
		script.WriteString(l.mountDisk(h, "/persist"))
	} else {
		script.WriteString("mount -t tmpfs -o size=64m tmpfs /persist\n")
	}
	// The host's bin/ goes first on PATH (here for sshd, by SetEnv for
	// its sessions): where a test puts a fake of its own, such as a sudo
	// that records it was used (TestBecomeFlags).
	fmt.Fprintf(&script, "export PATH=%s:$PATH\n", filepath.Join(h.Dir, "bin"))
	fmt.Fprintf(&script, "exec /usr/sbin/sshd -D -e -f %s\n", filepath.Join(h.Dir, "sshd_config"))
	if err := os.MkdirAll(filepath.Join(h.Dir, "bin"), 0o755); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(h.Dir, "start.sh"), []byte(script.String()), 0o755)
}

// bootTimeout bounds a host's boot to its sshd's banner: generous, for a
// loaded machine shared by other test runs; a host that dies first says
// why at once (its console log).
const bootTimeout = 60 * time.Second

// boot starts the host's wrapper, `unshare --kill-child` running its
// start.sh (whose death takes the whole host down), and waits for its
// sshd's banner. A namespace host also gets its own hostname and /proc
// there; a machine gets them from nspawn.
func (l *Lab) boot(ctx context.Context, h *Host) error {
	logf, err := os.OpenFile(filepath.Join(h.Dir, "console.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer func() { _ = logf.Close() }()
	args := []string{"--mount", "--pid", "--fork", "--kill-child", "--propagation", "private"}
	if l.Parts == nil {
		args = append(args, "--uts", "--mount-proc")
	}
	// Not ctx: the host outlives the call that boots it.
	cmd := ToolCmd(context.Background(), "unshare", append(args, "sh", filepath.Join(h.Dir, "start.sh"))...)
	cmd.Stdout, cmd.Stderr = logf, logf
	// Its own session: Ctrl-C aimed at a test or the demo must not take
	// the lab down half-way; Stop does that, by pid.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return err
	}
	// Hosts boot in parallel, and each saveState reads every host's pid.
	l.mu.Lock()
	h.Pid = cmd.Process.Pid
	l.mu.Unlock()
	go func() { _ = cmd.Wait() }() // reap when it dies
	if err := l.saveState(); err != nil {
		return err
	}
	started := time.Now()
	deadline := started.Add(bootTimeout)
	for {
		if err := banner(h.Addr); err == nil {
			l.mu.Lock()
			if l.Boot.Sshd != nil {
				l.Boot.Sshd[h.Name] = time.Since(started)
			}
			l.mu.Unlock()
			return nil
		}
		// Has the wrapper exited? gone reads only its state. (isLabPid
		// tells a lab's pid from a reused one, by its cmdline; once, on a
		// loaded machine, a restart here said "exited" while the machine
		// went on booting, and was not seen again in 7 tries.)
		if gone(h.Pid) {
			log, _ := os.ReadFile(filepath.Join(h.Dir, "console.log"))
			hint := ""
			if strings.Contains(string(log), "inotify object: Too many open files") {
				// Every machine's systemd takes inotify instances, and
				// the limit is per user (root) on this whole machine.
				hint = " (every machine's systemd needs inotify instances: raise the limit, sysctl fs.inotify.max_user_instances=8192)"
			}
			return fmt.Errorf("host exited before its sshd came up%s: %s", hint, lastLines(string(log), 15))
		}
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(filepath.Join(h.Dir, "console.log"))
			return fmt.Errorf("sshd did not come up on %s:%d within %s: %s", h.Addr, Port, bootTimeout, lastLines(string(log), 15))
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

func banner(addr string) error {
	c, err := net.DialTimeout("tcp", net.JoinHostPort(addr, strconv.Itoa(Port)), time.Second)
	if err != nil {
		return err
	}
	defer func() { _ = c.Close() }()
	_ = c.SetDeadline(time.Now().Add(time.Second))
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return err
	}
	if !strings.HasPrefix(line, "SSH-") {
		return fmt.Errorf("unexpected banner %q", line)
	}
	return nil
}

func (l *Lab) saveState() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	st := state{Config: l.Config}
	for _, h := range l.Hosts {
		st.Hosts = append(st.Hosts, hostState{Name: h.Name, Addr: h.Addr, Dir: h.Dir, Pid: h.Pid, Spec: h.spec})
	}
	b, _ := json.MarshalIndent(st, "", "  ")
	tmp := filepath.Join(l.Dir, "lab.json.tmp")
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, filepath.Join(l.Dir, "lab.json"))
}

func (l *Lab) writeKnownHosts() error {
	var b strings.Builder
	for _, h := range l.Hosts {
		line, err := l.knownHostsLine(h)
		if err != nil {
			return err
		}
		b.WriteString(line)
	}
	return os.WriteFile(l.KnownHosts, []byte(b.String()), 0o644)
}

func (l *Lab) knownHostsLine(h *Host) (string, error) {
	data, err := os.ReadFile(filepath.Join(h.Dir, "ssh_host_ed25519_key"))
	if err != nil {
		return "", err
	}
	signer, err := ssh.ParsePrivateKey(data)
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("[%s]:%d %s", h.Addr, Port, ssh.MarshalAuthorizedKey(signer.PublicKey())), nil
}

func (l *Lab) writeInventory() error {
	var b strings.Builder
	fmt.Fprintf(&b, `# Generated by internal/lab for the lab in %s. Do not edit: it is rewritten
# each time the lab starts.
defaults:
  user: root
  port: %d
  identity_files: [%s]
  known_hosts: %s
  host_key_policy: strict
  connect_timeout: %s
  command_timeout: 10m
  keepalive: 4s
  become: none

hosts:
`, l.Dir, Port, l.ClientKey, l.KnownHosts, l.ConnectTimeout)
	for _, h := range l.Hosts {
		fmt.Fprintf(&b, "  %s: {address: %s", h.Name, h.Addr)
		if len(h.spec.Roles) > 0 {
			fmt.Fprintf(&b, ", roles: [%s]", strings.Join(h.spec.Roles, ", "))
		}
		if h.spec.Managed != nil && !*h.spec.Managed {
			b.WriteString(", managed: false")
		}
		b.WriteString("}\n")
	}
	if len(l.Groups) > 0 {
		b.WriteString("\ngroups:\n")
		for _, g := range sortedKeys(l.Groups) {
			fmt.Fprintf(&b, "  %s: [%s]\n", g, strings.Join(l.Groups[g], ", "))
		}
	}
	if l.Parts != nil {
		if s := l.servers(); len(s) > 0 {
			fmt.Fprintf(&b, "\nconsul:\n  address: http://%s:%d\n", s[0], ConsulPort)
			fmt.Fprintf(&b, "\nnomad:\n  address: http://%s:%d\n", s[0], NomadPort)
		}
	}
	if l.has("zippy") && l.has("c1") && l.DiskSize > 0 {
		b.WriteString(`
replication:
  services:
    source: {host: zippy, subvolume: /persist/services, snapshot_dir: /persist/services-snapshots}
    target: {host: c1, dir: /persist/services-standby}
    keep: {source: 12, target: 48}

nfs:
  data-services:
    export: /data/services
    subvolume: /persist/services
    replication: services
    primary: zippy
    standbys: [c1]
`)
		// Machines: the compute hosts' mount is the lab's simulated one
		// (nfsclient.go); this kernel has no NFS client.
		b.WriteString(`    clients: cattle
    max_lag: 15m

deploy:
  quorum: quorum
`)
		if l.Parts != nil {
			fmt.Fprintf(&b, "  command: %q\n", l.NixDeployCommand())
		}
		b.WriteString(`
jobs:
  dir: services
  rewrite: [{from: /data/compute, to: /data/services}]
`)
	}
	return os.WriteFile(l.Inventory, []byte(b.String()), 0o644)
}

func (l *Lab) has(name string) bool { return l.Host(name) != nil }

func sortedKeys(m map[string][]string) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

// Host returns the named host, or nil.
func (l *Lab) Host(name string) *Host {
	for _, h := range l.Hosts {
		if h.Name == name {
			return h
		}
	}
	return nil
}

// Stop takes every host down and removes the lab's directory.
func (l *Lab) Stop() error {
	return Teardown(l.Dir)
}

// Teardown removes the lab recorded in dir, if any: it kills the recorded
// unshare processes (after checking that each pid is still a lab process
// for this dir, so a reused pid is never touched), waits for their
// namespaces to go, detaches any loop device still backed by the lab's
// images, and deletes dir.
func Teardown(dir string) error {
	st, err := readState(dir)
	if os.IsNotExist(err) {
		st, err = &state{}, nil
	}
	if err != nil {
		return err
	}
	if err := removePartitions(dir); err != nil {
		return err
	}
	var wg sync.WaitGroup
	for _, h := range st.Hosts {
		wg.Add(1)
		go func() { defer wg.Done(); killLabPid(h.Pid, dir) }()
	}
	wg.Wait()
	// Machines: whatever is left in the lab's cgroups (nothing, after
	// the wrappers died; but a stale lab is cleaned whatever it left).
	if err := killCgroup(labCgroup(dir)); err != nil {
		return err
	}
	for _, h := range st.Hosts {
		waitLoopGone(filepath.Join(h.Dir, "disk.img"), 5*time.Second)
	}
	// A lab left by an older hoctl may still have this machine's /proc
	// mounted in its directory (its NFS shims used it).
	if err := unmountHostProc(dir); err != nil {
		return err // never RemoveAll through a mounted /proc
	}
	removeNixBuilds(dir)
	return os.RemoveAll(dir)
}

// isLabPid reports whether pid is an unshare started for a lab in dir.
func isLabPid(pid int, dir string) bool {
	cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil {
		return false
	}
	args := strings.Split(string(cmdline), "\x00")
	return len(args) > 0 && filepath.Base(args[0]) == "unshare" && strings.Contains(string(cmdline), dir+"/hosts/")
}

func killLabPid(pid int, dir string) {
	if !isLabPid(pid, dir) {
		return
	}
	// A stopped (hung) sshd must be continued for SIGKILL of its parent
	// to be delivered to it promptly: SIGKILL works on stopped
	// processes, but be explicit.
	kids := children(pid)
	for _, child := range kids {
		_ = syscall.Kill(child, syscall.SIGCONT)
	}
	_ = syscall.Kill(pid, syscall.SIGKILL)
	// Wait for unshare and for the namespace's init (sshd), whose death
	// ends every process of the host.
	deadline := time.Now().Add(5 * time.Second)
	for _, p := range append([]int{pid}, kids...) {
		for time.Now().Before(deadline) {
			if gone(p) {
				break
			}
			// Reap it if it is our child (Stop from the starting process).
			var ws syscall.WaitStatus
			_, _ = syscall.Wait4(p, &ws, syscall.WNOHANG, nil)
			time.Sleep(10 * time.Millisecond)
		}
	}
}

// gone reports whether pid has exited: no such process, or a zombie. A
// lab's wrapper outlives the command that started it, so its parent is
// this machine's init, which may take seconds to reap it; a zombie
// holds no namespace, mount or loop device any more.
func gone(pid int) bool {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return true
	}
	s := string(data)
	i := strings.LastIndexByte(s, ')')
	return i < 0 || i+2 >= len(s) || s[i+2] == 'Z' || s[i+2] == 'X'
}

func children(pid int) []int {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", pid, pid))
	if err != nil {
		return nil
	}
	var out []int
	for _, f := range strings.Fields(string(data)) {
		if n, err := strconv.Atoi(f); err == nil {
			out = append(out, n)
		}
	}
	return out
}

// waitLoopGone waits for the kernel to release the loop device of img
// (autoclear, once its mount namespace is gone), detaching it if it lingers.
func waitLoopGone(img string, timeout time.Duration) {
	deadline := time.Now().Add(timeout)
	for {
		out, _ := ToolCmd(context.Background(), "losetup", "-j", img).Output()
		devs := loopDevices(string(out))
		if len(devs) == 0 {
			return
		}
		if time.Now().After(deadline) {
			for _, d := range devs {
				_ = ToolCmd(context.Background(), "losetup", "-d", d).Run()
			}
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func loopDevices(losetupJ string) []string {
	var devs []string
	for _, line := range strings.Split(losetupJ, "\n") {
		if i := strings.Index(line, ":"); i > 0 && strings.HasPrefix(line, "/dev/loop") {
			devs = append(devs, line[:i])
		}
	}
	return devs
}

// sshdPid is the host's sshd (init of its PID namespace), as seen from here.
func (h *Host) sshdPid() (int, error) {
	c := children(h.Pid)
	if len(c) == 0 {
		return 0, fmt.Errorf("%s: no sshd under unshare pid %d", h.Name, h.Pid)
	}
	return c[0], nil
}

// Kill takes the host down: sshd and every session die, connections are
// refused. Its disk image survives for Restart.
func (l *Lab) Kill(name string) error {
	h := l.Host(name)
	if h == nil {
		return fmt.Errorf("no lab host %q", name)
	}
	killLabPid(h.Pid, l.Dir)
	if l.Parts != nil {
		if err := killCgroup(l.hostCgroup(h)); err != nil {
			return err
		}
	}
	if l.DiskSize > 0 {
		waitLoopGone(filepath.Join(h.Dir, "disk.img"), 5*time.Second)
	}
	h.Pid = 0
	return l.saveState()
}

// Hang freezes the host's sshd (SIGSTOP): TCP still connects, SSH never
// answers.
func (l *Lab) Hang(name string) error { return l.signal(name, syscall.SIGSTOP) }

// Resume undoes Hang.
func (l *Lab) Resume(name string) error { return l.signal(name, syscall.SIGCONT) }

func (l *Lab) signal(name string, sig syscall.Signal) error {
	h := l.Host(name)
	if h == nil {
		return fmt.Errorf("no lab host %q", name)
	}
	if l.Parts != nil {
		// A machine hangs whole: every process frozen.
		return l.freezeMachine(h, sig == syscall.SIGSTOP)
	}
	pid, err := h.sshdPid()
	if err != nil {
		return err
	}
	return syscall.Kill(pid, sig)
}

// Restart boots a host that was killed (or kills and boots it).
func (l *Lab) Restart(ctx context.Context, name string) error {
	h := l.Host(name)
	if h == nil {
		return fmt.Errorf("no lab host %q", name)
	}
	if h.Pid != 0 {
		if err := l.Kill(name); err != nil {
			return err
		}
	}
	return l.boot(ctx, h)
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

// RefreshKnownHosts rewrites known_hosts from the hosts' current keys,
// accepting any rotation done by RotateHostKey.
func (l *Lab) RefreshKnownHosts() error { return l.writeKnownHosts() }

// RotateHostKey gives the host a new host key (known_hosts keeps the old
// one) and restarts it, as a reinstall or an attacker would.
func (l *Lab) RotateHostKey(ctx context.Context, name string) error {
	h := l.Host(name)
	if h == nil {
		return fmt.Errorf("no lab host %q", name)
	}
	if err := l.writeHostKey(h); err != nil {
		return err
	}
	return l.Restart(ctx, name)
}

// unmountHostProc unmounts the view of this machine's /proc that an older
// lab's NFS shims mounted in its directory, if it is there.
func unmountHostProc(dir string) error {
	p := filepath.Join(dir, "hostproc")
	for i := 0; ToolCmd(context.Background(), "mountpoint", "-q", p).Run() == nil; i++ {
		if i == 3 {
			return fmt.Errorf("%s is still mounted", p)
		}
		if ToolCmd(context.Background(), "umount", p).Run() != nil {
			_ = ToolCmd(context.Background(), "umount", "-l", p).Run()
		}
	}
	return nil
}
