package main

import (
	"context"
	"fmt"
	"maps"
	"path/filepath"
	"slices"
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
	t, err := h.newTransferLab(ctx, "transfer", 8<<30)
	if err != nil {
		return err
	}
	defer t.stop()
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
	env := []string{"HOCTL_INVENTORY=" + t.inventories["none"], "XDG_STATE_HOME=" + t.state}

	type variant struct {
		label, transport, compress string
		bin                        binary
	}
	var variants []variant
	for i, b := range bins {
		for _, tr := range []string{"relay", "direct"} {
			if i < len(bins)-1 && tr != h.cfg.beforeOnly && h.cfg.beforeOnly != "" {
				continue // the earlier binary only where the two differ
			}
			for _, c := range strings.Split(h.cfg.compress, ",") {
				variants = append(variants, variant{b.label, tr, c, b})
			}
		}
	}
	key := func(v variant) string {
		return fmt.Sprintf("%s --transport %s, compress: %s", v.label, v.transport, v.compress)
	}
	type samples struct{ wall, send, ceiling []time.Duration }
	// rounds runs every variant h.cfg.runs times, rotated so that no
	// variant always runs first or after the same one: prepare, hoctl's
	// send, the ceiling of the same snapshots. after ends each round.
	rounds := func(prepare func() error, incremental bool, after func() error, args ...string) (map[string]*samples, error) {
		m := map[string]*samples{}
		for i := 0; i < h.cfg.runs; i++ {
			for j := range variants {
				v := variants[(i+j)%len(variants)]
				if err := prepare(); err != nil {
					return nil, err
				}
				wall, send, err := t.hoctlRun(v.bin.path, t.inventories[v.compress], append(args, "--transport", v.transport)...)
				if err != nil {
					return nil, fmt.Errorf("%s: %w", key(v), err)
				}
				c, _, err := t.ceiling(incremental)
				if err != nil {
					return nil, err
				}
				s := m[key(v)]
				if s == nil {
					s = &samples{}
					m[key(v)] = s
				}
				s.wall, s.send, s.ceiling = append(s.wall, wall), append(s.send, send), append(s.ceiling, c)
			}
			if err := after(); err != nil {
				return nil, err
			}
		}
		return m, nil
	}

	// Full sends, and after each round the bare pipes of the newest snapshot.
	raw := map[string][]time.Duration{}
	sshArgs := t.sshArgs()
	c1 := t.l.Host("c1").Addr
	pipes := func() error {
		snaps, err := t.snapshots()
		if err != nil {
			return err
		}
		snap := snaps[len(snaps)-1]
		pipes := []struct{ label, host, script string }{
			{"ssh zippy btrfs send | ssh c1 btrfs receive (from this machine)", "",
				fmt.Sprintf("%s root@%s btrfs send -q %s | %s root@%s btrfs receive -q /persist/raw", sshArgs, t.l.Host("zippy").Addr, snap, sshArgs, c1)},
			{"on zippy: btrfs send | ssh c1 btrfs receive (OpenSSH's default cipher)", "zippy",
				fmt.Sprintf("btrfs send -q %s | ssh -i /root/.ssh/raw -o BatchMode=yes -p %d root@%s btrfs receive -q /persist/raw", snap, lab.Port, c1)},
			{"on zippy: btrfs send | ssh -c aes128-gcm@openssh.com c1 btrfs receive", "zippy",
				fmt.Sprintf("btrfs send -q %s | ssh -c aes128-gcm@openssh.com -i /root/.ssh/raw -o BatchMode=yes -p %d root@%s btrfs receive -q /persist/raw", snap, lab.Port, c1)},
		}
		if !h.cfg.rawDirect {
			pipes = pipes[:1]
		}
		for _, p := range pipes {
			if err := t.clearC1(); err != nil {
				return err
			}
			var d time.Duration
			if p.host == "" {
				d, _, err = h.timeCmd(env, "sh", "-c", "set -e; "+p.script)
			} else {
				d, _, err = t.timed(p.host, "set -o pipefail; "+p.script)
			}
			if err != nil {
				return fmt.Errorf("%s: %w", p.label, err)
			}
			raw[p.label] = append(raw[p.label], d)
		}
		return nil
	}
	full, err := rounds(t.clearC1, false, pipes, "--full")
	if err != nil {
		return err
	}
	if err := t.clearC1(); err != nil {
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
		fmt.Println("| hoctl replicate | send step (median) | rate | × ceiling | × its own run's ceiling (median) | whole run (median) | send step, runs | its ceiling, runs |")
		fmt.Println("|---|---|---|---|---|---|---|---|")
		for _, k := range slices.Sorted(maps.Keys(m)) {
			s := m[k]
			ms := median(s.send)
			fmt.Printf("| %s | %s | %.0f MiB/s | **%.2f×** | %.2f× | %s | %s | %s |\n", k, secs(ms), size/ms.Seconds()/(1<<20), ceil.Seconds()/ms.Seconds(),
				pairedRatio(s.ceiling, s.send), secs(median(s.wall)), list(s.send), list(s.ceiling))
		}
		fmt.Println()
	}
	report("full send of 1 GiB of incompressible data", 1<<30, full)
	fmt.Println("Bare pipes of the same snapshot (full, 1 GiB):")
	fmt.Println()
	fmt.Println("| pipe | median | rate | runs |")
	fmt.Println("|---|---|---|---|")
	for _, k := range slices.Sorted(maps.Keys(raw)) {
		m := median(raw[k])
		fmt.Printf("| %s | %s | %.0f MiB/s | %s |\n", strings.ReplaceAll(k, "|", `\|`), secs(m), float64(1<<30)/m.Seconds()/(1<<20), list(raw[k]))
	}
	fmt.Println()
	// Incremental sends: 100 MiB rewritten before each run, the chain
	// started by one full send of the first binary's (not measured).
	change := func() error {
		if _, err := t.on("zippy", "dd if=/dev/urandom of=/persist/big/data bs=1M count=100 seek=$(( $(od -An -N2 -tu2 /dev/urandom) % 900 )) conv=notrunc status=none"); err != nil {
			return err
		}
		return t.settle("zippy")
	}
	if _, _, err := t.hoctlRun(bins[0].path, t.inventories["none"], "--full"); err != nil {
		return err
	}
	if _, _, err := t.ceiling(false); err != nil {
		return err
	}
	incr, err := rounds(change, true, func() error { return nil })
	if err != nil {
		return err
	}
	report("incremental send of 100 MiB rewritten", 100<<20, incr)
	return nil
}
