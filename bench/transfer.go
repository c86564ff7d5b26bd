package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/hoctl/hoctl/internal/lab"
)

// transfer measures the replication's transfer on a two-host storage lab
// (zippy and c1, real sshd, real btrfs), side by side in one run:
//
//   - hoctl's send step (the duration its summary reports, and the whole
//     run's wall time) relayed and direct, each without and with
//     compress: zstd, for a full send of 1 GiB of incompressible data and
//     for an incremental send of 100 MiB changed;
//   - the ceiling, after each of those runs and of the very same
//     snapshots: `btrfs send [-p PARENT] SNAP | btrfs receive DIR` on
//     zippy itself, no network;
//   - for the full send, the bare pipes hoctl's two transports stand for:
//     `ssh zippy btrfs send | ssh c1 btrfs receive` from this machine, and
//     `btrfs send | ssh c1 btrfs receive` on zippy with OpenSSH's default
//     cipher and with AES-GCM.
//
// Every receive of hoctl's goes through `hoctl target-filter` on c1: the
// workstation's key runs it from its shell, zippy's key is restricted to
// it (command=..., as docs/replicate.md sets up direct transport). With
// -transfer-before BIN, the same hoctl runs are measured with BIN too
// (its own binary on the hosts as well), interleaved; with
// -transfer-before-only relay|direct, only that transport's.
func (h *harness) transfer(ctx context.Context) error {
	l, err := h.storageLab(ctx, "transfer", 8<<30)
	if err != nil {
		return err
	}
	defer func() { _ = l.Stop() }()
	type binary struct{ label, path string }
	bins := []binary{{"hoctl", h.cfg.hoctl}}
	if h.cfg.transferBefore != "" {
		bins = append([]binary{{"before", h.cfg.transferBefore}}, bins...)
	}
	for i := range bins {
		if bins[i].path, err = filepath.Abs(bins[i].path); err != nil {
			return err
		}
	}
	// The hosts run `hoctl` from their PATH (dir-op send, target-filter):
	// the binary under test, swapped per run when two are compared.
	if err := useHoctl(l, bins[len(bins)-1].path); err != nil {
		return err
	}

	base, err := os.ReadFile(l.Inventory)
	if err != nil {
		return err
	}
	state := filepath.Join(h.dir, "transfer-state")
	inventories := map[string]string{}
	for _, compress := range []string{"none", "zstd"} {
		big := "replication:\n  big:\n    source: {host: zippy, subvolume: /persist/big, snapshot_dir: /persist/big-snapshots}\n" +
			"    target: {host: c1, dir: /persist/big-standby}\n    keep: {source: 3, target: 3}\n    compress: " + compress + "\n"
		p := filepath.Join(h.dir, "transfer-"+compress+".yaml")
		if err := os.WriteFile(p, []byte(strings.Replace(string(base), "replication:\n", big, 1)), 0o600); err != nil {
			return err
		}
		inventories[compress] = p
	}
	env := []string{"HOCTL_INVENTORY=" + inventories["none"], "XDG_STATE_HOME=" + state}
	// on runs script on host itself (in its namespaces), its output raw.
	on := func(host, script string) (string, error) {
		cmd, err := l.Command(host, "bash", "-c", script)
		if err != nil {
			return "", err
		}
		out, err := cmd.CombinedOutput()
		if err != nil {
			return "", fmt.Errorf("%s: %w\n%s", host, err, tailLines(string(out), 15))
		}
		return string(out), nil
	}
	// timed runs script on host and returns the time its timed part took
	// there, between the markers T0 and T1 it prints.
	timed := func(host, script string) (time.Duration, error) {
		out, err := on(host, "t0=$(date +%s%N); "+script+"; t1=$(date +%s%N); echo TIMED $((t1-t0))")
		if err != nil {
			return 0, err
		}
		m := regexp.MustCompile(`TIMED (\d+)`).FindStringSubmatch(out)
		if m == nil {
			return 0, fmt.Errorf("%s: no timing in %q", host, tailLines(out, 5))
		}
		ns, _ := strconv.ParseInt(m[1], 10, 64)
		return time.Duration(ns), nil
	}

	// zippy's own keys: one restricted to the target filter on c1 (what
	// hoctl's direct transport uses), one unrestricted for the bare pipes.
	c1Line, err := knownHostsEntry(l, "c1")
	if err != nil {
		return err
	}
	if _, err := on("zippy", `set -e
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
	pubs, err := on("zippy", "cat /root/.ssh/id_ed25519.pub /root/.ssh/raw.pub")
	if err != nil {
		return err
	}
	keys := strings.Split(strings.TrimSpace(pubs), "\n")
	if len(keys) != 2 {
		return fmt.Errorf("zippy's public keys: %q", pubs)
	}
	if _, err := on("c1", "mkdir -p -m 700 /root/.ssh /persist/big-standby /persist/raw && cat > /root/.ssh/authorized_keys <<'EOF'\n"+
		`command="hoctl target-filter /persist/big-standby",restrict `+keys[0]+"\n"+keys[1]+"\nEOF"); err != nil {
		return err
	}

	summary := regexp.MustCompile(` in ([0-9.]+m?s|[0-9]+m[0-9.]+s) \(`)
	hoctlRun := func(bin binary, inv string, args ...string) (wall, send time.Duration, err error) {
		if err := useHoctl(l, bin.path); err != nil {
			return 0, 0, err
		}
		if _, err := on("zippy", "sync"); err != nil {
			return 0, 0, err
		}
		wall, out, err := h.timeCmdOut([]string{"HOCTL_INVENTORY=" + inv, "XDG_STATE_HOME=" + state}, append([]string{bin.path, "--yes", "replicate", "--name", "big"}, args...)...)
		if err != nil {
			return 0, 0, err
		}
		m := summary.FindStringSubmatch(out)
		if m == nil {
			return 0, 0, fmt.Errorf("no send summary in hoctl's output:\n%s", tailLines(out, 10))
		}
		send, err = time.ParseDuration(m[1])
		return wall, send, err
	}
	newest := func(host, dir string) (string, error) {
		out, err := on(host, "ls -d "+dir+"/big@* | tail -2")
		if err != nil {
			return "", err
		}
		f := strings.Fields(out)
		if len(f) == 0 {
			return "", fmt.Errorf("%s: no snapshot in %s", host, dir)
		}
		return f[len(f)-1], nil
	}
	// ceiling sends zippy's newest snapshot (from its previous one when
	// incremental) into /persist/ceiling on zippy, and keeps only that copy.
	ceiling := func(incremental bool) (time.Duration, error) {
		out, err := on("zippy", "ls -d /persist/big-snapshots/big@* | tail -2")
		if err != nil {
			return 0, err
		}
		snaps := strings.Fields(out)
		send := "btrfs send -q " + snaps[len(snaps)-1]
		if incremental {
			if len(snaps) < 2 {
				return 0, fmt.Errorf("no parent on zippy for the incremental ceiling")
			}
			send = "btrfs send -q -p " + snaps[0] + " " + snaps[1]
		} else if _, err := on("zippy", "btrfs subvolume delete -c /persist/ceiling/big@* >/dev/null 2>&1; btrfs subvolume sync /persist >/dev/null; sync"); err != nil {
			return 0, err
		}
		if _, err := on("zippy", "sync"); err != nil {
			return 0, err
		}
		d, err := timed("zippy", "set -o pipefail; "+send+" | btrfs receive -q /persist/ceiling")
		if err != nil {
			return 0, err
		}
		// Only the newest copy stays: the next incremental's parent.
		_, err = on("zippy", "cd /persist/ceiling && ls -d big@* | head -n -1 | xargs -r btrfs subvolume delete -c >/dev/null")
		return d, err
	}
	clearC1 := func() error {
		_, err := on("c1", "btrfs subvolume delete /persist/big-standby/big@* /persist/raw/big@* >/dev/null 2>&1; btrfs subvolume sync /persist >/dev/null; sync")
		return err
	}

	type variant struct {
		label, transport, compress string
		bin                        binary
	}
	var variants []variant
	for i, b := range bins {
		for _, t := range []string{"relay", "direct"} {
			if i < len(bins)-1 && t != h.cfg.beforeOnly && h.cfg.beforeOnly != "" {
				continue // the earlier binary only where the two differ
			}
			for _, c := range strings.Split(h.cfg.compress, ",") {
				variants = append(variants, variant{b.label, t, c, b})
			}
		}
	}
	key := func(v variant) string {
		return fmt.Sprintf("%s --transport %s, compress: %s", v.label, v.transport, v.compress)
	}
	type samples struct{ wall, send, ceiling []time.Duration }

	// Full sends.
	full := map[string]*samples{}
	raw := map[string][]time.Duration{}
	sshArgs := fmt.Sprintf("ssh -i %s -o UserKnownHostsFile=%s -o StrictHostKeyChecking=yes -o BatchMode=yes -p %d", l.ClientKey, l.KnownHosts, lab.Port)
	c1 := l.Host("c1").Addr
	for i := 0; i < h.cfg.runs; i++ {
		// Rotated, so that no variant always runs first or after the same one.
		for j := range variants {
			v := variants[(i+j)%len(variants)]
			if err := clearC1(); err != nil {
				return err
			}
			wall, send, err := hoctlRun(v.bin, inventories[v.compress], "--full", "--transport", v.transport)
			if err != nil {
				return fmt.Errorf("%s: %w", key(v), err)
			}
			c, err := ceiling(false)
			if err != nil {
				return err
			}
			s := full[key(v)]
			if s == nil {
				s = &samples{}
				full[key(v)] = s
			}
			s.wall, s.send, s.ceiling = append(s.wall, wall), append(s.send, send), append(s.ceiling, c)
		}
		snap, err := newest("zippy", "/persist/big-snapshots")
		if err != nil {
			return err
		}
		pipes := []struct{ label, host, script string }{
			{"ssh zippy btrfs send | ssh c1 btrfs receive (from this machine)", "",
				fmt.Sprintf("%s root@%s btrfs send -q %s | %s root@%s btrfs receive -q /persist/raw", sshArgs, l.Host("zippy").Addr, snap, sshArgs, c1)},
			{"on zippy: btrfs send | ssh c1 btrfs receive (OpenSSH's default cipher)", "zippy",
				fmt.Sprintf("btrfs send -q %s | ssh -i /root/.ssh/raw -o BatchMode=yes -p %d root@%s btrfs receive -q /persist/raw", snap, lab.Port, c1)},
			{"on zippy: btrfs send | ssh -c aes128-gcm@openssh.com c1 btrfs receive", "zippy",
				fmt.Sprintf("btrfs send -q %s | ssh -c aes128-gcm@openssh.com -i /root/.ssh/raw -o BatchMode=yes -p %d root@%s btrfs receive -q /persist/raw", snap, lab.Port, c1)},
		}
		if !h.cfg.rawDirect {
			pipes = pipes[:1]
		}
		for _, p := range pipes {
			if err := clearC1(); err != nil {
				return err
			}
			var d time.Duration
			if p.host == "" {
				d, _, err = h.timeCmd(env, "sh", "-c", "set -e; "+p.script)
			} else {
				d, err = timed(p.host, "set -o pipefail; "+p.script)
			}
			if err != nil {
				return fmt.Errorf("%s: %w", p.label, err)
			}
			raw[p.label] = append(raw[p.label], d)
		}
	}
	if err := clearC1(); err != nil {
		return err
	}

	report := func(title string, size float64, m map[string]*samples) {
		var all []time.Duration
		for _, s := range m {
			all = append(all, s.ceiling...)
		}
		ceil := median(all)
		fmt.Printf("#### Transfer: %s, zippy → c1\n\n", title)
		fmt.Printf("Ceiling: `btrfs send | btrfs receive` on zippy itself, of the same snapshots, run after each hoctl run: median %s (%.0f MiB/s; %d runs: %s).\n\n",
			secs(ceil), size/ceil.Seconds()/(1<<20), len(all), list(sorted(all)))
		fmt.Println("| hoctl replicate | send step (median) | rate | × ceiling | whole run (median) | send step, runs |")
		fmt.Println("|---|---|---|---|---|---|")
		var keys []string
		for k := range m {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			s := m[k]
			ms := median(s.send)
			fmt.Printf("| %s | %s | %.0f MiB/s | **%.2f×** | %s | %s |\n", k, secs(ms), size/ms.Seconds()/(1<<20), ceil.Seconds()/ms.Seconds(), secs(median(s.wall)), list(s.send))
		}
		fmt.Println()
	}
	report("full send of 1 GiB of incompressible data", 1<<30, full)
	fmt.Println("Bare pipes of the same snapshot (full, 1 GiB):")
	fmt.Println()
	fmt.Println("| pipe | median | rate | runs |")
	fmt.Println("|---|---|---|---|")
	var labels []string
	for k := range raw {
		labels = append(labels, k)
	}
	sort.Strings(labels)
	for _, k := range labels {
		m := median(raw[k])
		fmt.Printf("| %s | %s | %.0f MiB/s | %s |\n", strings.ReplaceAll(k, "|", `\|`), secs(m), float64(1<<30)/m.Seconds()/(1<<20), list(raw[k]))
	}
	fmt.Println()
	// Incremental sends: 100 MiB rewritten before each run, the chain
	// started by one full send of each binary's own (not measured).
	incr := map[string]*samples{}
	change := "dd if=/dev/urandom of=/persist/big/data bs=1M count=100 seek=$(( $(od -An -N2 -tu2 /dev/urandom) % 900 )) conv=notrunc status=none && sync"
	if _, _, err := hoctlRun(bins[0], inventories["none"], "--full"); err != nil {
		return err
	}
	if _, err := ceiling(false); err != nil {
		return err
	}
	for i := 0; i < h.cfg.runs; i++ {
		for j := range variants {
			v := variants[(i+j)%len(variants)]
			if _, err := on("zippy", change); err != nil {
				return err
			}
			wall, send, err := hoctlRun(v.bin, inventories[v.compress], "--transport", v.transport)
			if err != nil {
				return fmt.Errorf("%s: %w", key(v), err)
			}
			c, err := ceiling(true)
			if err != nil {
				return err
			}
			s := incr[key(v)]
			if s == nil {
				s = &samples{}
				incr[key(v)] = s
			}
			s.wall, s.send, s.ceiling = append(s.wall, wall), append(s.send, send), append(s.ceiling, c)
		}
	}

	report("incremental send of 100 MiB rewritten", 100<<20, incr)
	return nil
}

func sorted(ds []time.Duration) []time.Duration {
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s
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
