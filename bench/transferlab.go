package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/hoctl/hoctl/internal/lab"
)

// transferLab is the storage lab the transfer suites share: zippy with a
// subvolume big holding 1 GiB of incompressible data, c1 with the standby
// dir, and zippy's own two keys on c1: id_ed25519 restricted to `hoctl
// target-filter /persist/big-standby` (what hoctl's direct transport uses,
// as docs/replicate.md sets it up), raw unrestricted (for the bare pipes).
type transferLab struct {
	h           *harness
	l           *lab.Lab
	state       string
	inventories map[string]string // by compress setting
}

func (h *harness) newTransferLab(ctx context.Context, name string, diskSize int64) (*transferLab, error) {
	l, err := h.storageLab(ctx, name, diskSize)
	if err != nil {
		return nil, err
	}
	t := &transferLab{h: h, l: l, state: filepath.Join(h.dir, name+"-state"), inventories: map[string]string{}}
	if err := t.setup(); err != nil {
		_ = l.Stop()
		return nil, err
	}
	return t, nil
}

func (t *transferLab) stop() { _ = t.l.Stop() }

func (t *transferLab) setup() error {
	base, err := os.ReadFile(t.l.Inventory)
	if err != nil {
		return err
	}
	for _, compress := range []string{"none", "zstd"} {
		big := "replication:\n  big:\n    source: {host: zippy, subvolume: /persist/big, snapshot_dir: /persist/big-snapshots}\n" +
			"    target: {host: c1, dir: /persist/big-standby}\n    keep: {source: 3, target: 3}\n    compress: " + compress + "\n"
		p := filepath.Join(t.h.dir, filepath.Base(t.state)+"-"+compress+".yaml")
		if err := os.WriteFile(p, []byte(strings.Replace(string(base), "replication:\n", big, 1)), 0o600); err != nil {
			return err
		}
		t.inventories[compress] = p
	}
	c1Line, err := knownHostsEntry(t.l, "c1")
	if err != nil {
		return err
	}
	if _, err := t.on("zippy", `set -e
mkdir -p -m 700 /root/.ssh
rm -f /root/.ssh/id_ed25519* /root/.ssh/raw*
ssh-keygen -q -t ed25519 -N '' -C zippy -f /root/.ssh/id_ed25519
ssh-keygen -q -t ed25519 -N '' -C zippy-raw -f /root/.ssh/raw
echo '`+c1Line+`' > /root/.ssh/known_hosts
btrfs subvolume create /persist/big >/dev/null
mkdir -p /persist/big-snapshots /persist/ceiling
head -c 1073741824 /dev/urandom > /persist/big/data
sync`); err != nil {
		return err
	}
	pubs, err := t.on("zippy", "cat /root/.ssh/id_ed25519.pub /root/.ssh/raw.pub")
	if err != nil {
		return err
	}
	keys := strings.Split(strings.TrimSpace(pubs), "\n")
	if len(keys) != 2 {
		return fmt.Errorf("zippy's public keys: %q", pubs)
	}
	_, err = t.on("c1", "mkdir -p -m 700 /root/.ssh /persist/big-standby /persist/raw && cat > /root/.ssh/authorized_keys <<'EOF'\n"+
		`command="hoctl target-filter /persist/big-standby",restrict `+keys[0]+"\n"+keys[1]+"\nEOF")
	return err
}

// on runs script on host itself (in its namespaces), its output raw.
func (t *transferLab) on(host, script string) (string, error) {
	// The host's own bin/ first, as its sshd sessions have it (SetEnv).
	cmd, err := t.l.Command(host, "bash", "-c", "export PATH="+filepath.Join(t.l.Host(host).Dir, "bin")+":$PATH\n"+script)
	if err != nil {
		return "", err
	}
	out, err := cmd.CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("%s: %w\n%s", host, err, tailLines(string(out), 15))
	}
	return string(out), nil
}

var timedLine = regexp.MustCompile(`TIMED (\d+)\n[0-9.ms]+ [0-9.ms]+\n([0-9]+)m([0-9.]+)s ([0-9]+)m([0-9.]+)s`)

// timed runs script on host and returns the wall time its part took
// there and the CPU time (user and system) of the processes it waited
// for, as bash's `times` counts them.
func (t *transferLab) timed(host, script string) (wall, cpu time.Duration, err error) {
	out, err := t.on(host, timedScript(script))
	if err != nil {
		return 0, 0, err
	}
	return parseTimed(host, out)
}

// timedScript wraps script for timed: the markers around it, and its
// failure the whole script's (a failed send timed as a fast one would be
// a false figure).
func timedScript(script string) string {
	return "t0=$(date +%s%N)\n{\n" + script + "\n} || exit $?\nt1=$(date +%s%N); echo TIMED $((t1-t0)); times"
}

// parseTimed reads timed's TIMED line (nanoseconds) and the line of
// bash's `times` after it that counts the waited-for children.
func parseTimed(host, out string) (wall, cpu time.Duration, err error) {
	m := timedLine.FindStringSubmatch(out)
	if m == nil {
		return 0, 0, fmt.Errorf("%s: no timing in %q", host, tailLines(out, 5))
	}
	ns, _ := strconv.ParseInt(m[1], 10, 64)
	var secs float64
	for _, p := range [][2]string{{m[2], m[3]}, {m[4], m[5]}} {
		m, _ := strconv.ParseFloat(p[0], 64)
		s, _ := strconv.ParseFloat(p[1], 64)
		secs += m*60 + s
	}
	return time.Duration(ns), time.Duration(secs * float64(time.Second)), nil
}

var sendSummary = regexp.MustCompile(` in ([0-9.]+m?s|[0-9]+m[0-9.]+s) \(`)

// hoctlRun runs `bin --yes replicate --name big ARGS` with inventory inv,
// bin also on the hosts, and returns its wall time and the send step's
// duration from its summary.
func (t *transferLab) hoctlRun(bin, inv string, args ...string) (wall, send time.Duration, err error) {
	if err := useHoctl(t.l, bin); err != nil {
		return 0, 0, err
	}
	if err := t.settle("zippy"); err != nil {
		return 0, 0, err
	}
	wall, out, err := t.h.timeCmdOut([]string{"HOCTL_INVENTORY=" + inv, "XDG_STATE_HOME=" + t.state}, append([]string{bin, "--yes", "replicate", "--name", "big"}, args...)...)
	if err != nil {
		return 0, 0, err
	}
	m := sendSummary.FindStringSubmatch(out)
	if m == nil {
		return 0, 0, fmt.Errorf("no send summary in hoctl's output:\n%s", tailLines(out, 10))
	}
	send, err = time.ParseDuration(m[1])
	return wall, send, err
}

// snapshots are zippy's two newest snapshots of big, oldest first.
func (t *transferLab) snapshots() ([]string, error) {
	out, err := t.on("zippy", "ls -d /persist/big-snapshots/big@* | tail -2")
	if err != nil {
		return nil, err
	}
	snaps := strings.Fields(out)
	if len(snaps) == 0 {
		return nil, fmt.Errorf("zippy: no snapshot in /persist/big-snapshots")
	}
	return snaps, nil
}

// ceiling sends zippy's newest snapshot (from its previous one when
// incremental) into /persist/ceiling on zippy, and keeps only that copy.
func (t *transferLab) ceiling(incremental bool) (wall, cpu time.Duration, err error) {
	snaps, err := t.snapshots()
	if err != nil {
		return 0, 0, err
	}
	send := "btrfs send -q " + snaps[len(snaps)-1]
	if incremental {
		if len(snaps) < 2 {
			return 0, 0, fmt.Errorf("no parent on zippy for the incremental ceiling")
		}
		send = "btrfs send -q -p " + snaps[0] + " " + snaps[1]
	} else if _, err := t.on("zippy", "btrfs subvolume delete -c /persist/ceiling/big@* >/dev/null 2>&1; btrfs subvolume sync /persist >/dev/null"); err != nil {
		return 0, 0, err
	}
	if err := t.settle("zippy"); err != nil {
		return 0, 0, err
	}
	wall, cpu, err = t.timed("zippy", "set -o pipefail; "+send+" | btrfs receive -q /persist/ceiling")
	if err != nil {
		return 0, 0, err
	}
	// Only the newest copy stays: the next incremental's parent.
	_, err = t.on("zippy", "cd /persist/ceiling && ls -d big@* | head -n -1 | xargs -r btrfs subvolume delete -c >/dev/null")
	return wall, cpu, err
}

// clearC1 deletes every copy on c1, so that the next full send has
// nothing to collide with.
func (t *transferLab) clearC1() error {
	if _, err := t.on("c1", "btrfs subvolume delete /persist/big-standby/big@* /persist/raw/big@* >/dev/null 2>&1; btrfs subvolume sync /persist >/dev/null"); err != nil {
		return err
	}
	return t.settle("c1")
}

// settle writes host's /persist out to its disk image and the image out
// to this machine's disk (syncfs, then an fsync of the image file), so
// that a measurement starts with none of the last one's dirty pages. A
// plain sync would also wait for every other writer on this shared
// machine.
func (t *transferLab) settle(host string) error {
	if _, err := t.on(host, "sync -f /persist"); err != nil {
		return err
	}
	f, err := os.Open(filepath.Join(t.l.Host(host).Dir, "disk.img"))
	if err != nil {
		return err
	}
	defer func() { _ = f.Close() }()
	return f.Sync()
}

// sshArgs is ssh from this machine to a lab host, with the lab's key and
// known_hosts.
func (t *transferLab) sshArgs() string {
	return fmt.Sprintf("ssh -i %s -o UserKnownHostsFile=%s -o StrictHostKeyChecking=yes -o BatchMode=yes -p %d", t.l.ClientKey, t.l.KnownHosts, lab.Port)
}

// listenerCPU is the CPU time (user and system) of host's sshd listener
// and the sessions it has reaped (the session's sshd and what it ran: on
// c1 the target filter and btrfs receive), settled.
func (t *transferLab) listenerCPU(host string) time.Duration {
	return settledSSHDCPU([]*lab.Host{t.l.Host(host)})
}

// knownHostsEntry is the lab's known_hosts line for a host.
func knownHostsEntry(l *lab.Lab, name string) (string, error) {
	data, err := os.ReadFile(l.KnownHosts)
	if err != nil {
		return "", err
	}
	for _, line := range strings.Split(string(data), "\n") {
		if strings.HasPrefix(line, "["+l.Host(name).Addr+"]:") {
			return line, nil
		}
	}
	return "", fmt.Errorf("no known_hosts line for %s in %s", name, l.KnownHosts)
}
