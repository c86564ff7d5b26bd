package lab

import (
	"bufio"
	"context"
	"crypto/ed25519"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/crypto/ssh"
)

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
		sctx, cancel := context.WithTimeout(ctx, settledTimeout)
		defer cancel()
		if err := l.WaitSettled(sctx); err != nil {
			return nil, err
		}
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
