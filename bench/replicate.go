package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/hoctl/hoctl/internal/lab"
)

// replication measures `hoctl replicate` on a two-host storage lab (zippy
// and c1 with real btrfs disks):
//
//   - a full send of 1 GiB of incompressible data, hoctl's whole run
//     (inspect, snapshot, send relayed through this process, verify,
//     prune) against the bare `ssh zippy btrfs send | ssh c1 btrfs
//     receive` of a snapshot that already exists;
//   - a no-change incremental cycle and an incremental after changing 200
//     files, hoctl against btrbk (Debian's) configured for the same hosts,
//     subvolume and relay through this machine.
//
// Runs are interleaved; medians are reported.
func (h *harness) replication(ctx context.Context) error {
	l, err := h.storageLab(ctx, "storage", 3<<30)
	if err != nil {
		return err
	}
	defer func() { _ = l.Stop() }()
	inv, err := os.ReadFile(l.Inventory)
	if err != nil {
		return err
	}
	invPath := filepath.Join(h.dir, "storage.yaml")
	big := "replication:\n  big:\n    source: {host: zippy, subvolume: /persist/big, snapshot_dir: /persist/big-snapshots}\n    target: {host: c1, dir: /persist/big-standby}\n    keep: {source: 1, target: 1}\n"
	if err := os.WriteFile(invPath, []byte(strings.Replace(string(inv), "replication:\n", big, 1)), 0o600); err != nil {
		return err
	}
	state := filepath.Join(h.dir, "replicate-state")
	env := []string{"HOCTL_INVENTORY=" + invPath, "XDG_STATE_HOME=" + state}
	ssh := func(host, script string) error {
		_, _, err := h.timeCmd(env, h.cfg.hoctl, "run", host, "--", script)
		return err
	}
	if err := ssh("zippy", `set -e
btrfs subvolume create /persist/big >/dev/null
head -c 1073741824 /dev/urandom > /persist/big/data
btrfs subvolume create /persist/services >/dev/null
mkdir -p /persist/btrbk_snaps /persist/big-snapshots /persist/services/photos
for i in $(seq 1 2000); do head -c 4096 /dev/urandom > /persist/services/photos/p$i.jpg; done
head -c 50000000 /dev/urandom > /persist/services/db.sqlite
sync`); err != nil {
		return err
	}
	if err := ssh("c1", "mkdir -p /persist/big-standby /persist/services-standby /persist/btrbk /persist/raw"); err != nil {
		return err
	}

	// 1. Full send of 1 GiB.
	clearC1 := func() error {
		return ssh("c1", "btrfs subvolume delete -c /persist/big-standby/big@* /persist/raw/big@* >/dev/null 2>&1; btrfs subvolume sync /persist >/dev/null; sync")
	}
	key, kh := l.ClientKey, l.KnownHosts
	sshArgs := fmt.Sprintf("ssh -i %s -o UserKnownHostsFile=%s -o StrictHostKeyChecking=yes -o BatchMode=yes -p %d", key, kh, lab.Port)
	var hoctlFull, rawFull []time.Duration
	var sendRates []string
	for i := 0; i < h.cfg.runs; i++ {
		if err := clearC1(); err != nil {
			return err
		}
		d, out, err := h.timeCmdOut(env, h.cfg.hoctl, "--yes", "replicate", "--name", "big", "--full")
		if err != nil {
			return err
		}
		hoctlFull = append(hoctlFull, d)
		sendRates = append(sendRates, sendRate(out))
		if err := clearC1(); err != nil {
			return err
		}
		raw := fmt.Sprintf("%s root@%s \"btrfs send \\$(ls -d /persist/big-snapshots/big@* | tail -1)\" | %s root@%s btrfs receive /persist/raw",
			sshArgs, l.Host("zippy").Addr, sshArgs, l.Host("c1").Addr)
		d, _, err = h.timeCmd(env, "sh", "-c", raw)
		if err != nil {
			return err
		}
		rawFull = append(rawFull, d)
	}
	if err := clearC1(); err != nil {
		return err
	}
	const gib = float64(1 << 30)
	mh, mr := median(hoctlFull), median(rawFull)
	fmt.Printf("#### Replication: full send of 1 GiB of incompressible data, zippy → c1\n\n")
	fmt.Println("| tool | median wall | rate | runs | hoctl rate ratio |")
	fmt.Println("|---|---|---|---|---|")
	fmt.Printf("| hoctl --yes replicate --full (inspect, snapshot, relayed send, verify, prune) | %s | %.0f MiB/s | %s | **%.3f×** (target ≥ 0.9) |\n",
		secs(mh), gib/mh.Seconds()/(1<<20), list(hoctlFull), mr.Seconds()/mh.Seconds())
	fmt.Printf("| ssh zippy btrfs send SNAP \\| ssh c1 btrfs receive (snapshot already there) | %s | %.0f MiB/s | %s | 1.00 |\n\n", secs(mr), gib/mr.Seconds()/(1<<20), list(rawFull))
	fmt.Printf("hoctl's own send-step rates (bytes over the send's duration, as its summary reports): %s.\n\n", strings.Join(sendRates, ", "))

	// 2. and 3. Incremental cycles against btrbk.
	if err := h.btrbkSetup(l); err != nil {
		return err
	}
	btrbk := []string{"PATH=" + filepath.Join(h.dir, "sshbin") + ":" + os.Getenv("PATH")}
	// The first of each is full: not measured.
	if _, _, err := h.timeCmd(env, h.cfg.hoctl, "--yes", "replicate", "--name", "services"); err != nil {
		return err
	}
	if _, _, err := h.timeCmd(btrbk, "btrbk", "-c", filepath.Join(h.dir, "btrbk.conf"), "run"); err != nil {
		return err
	}
	change := "cd /persist/services/photos && for i in $(seq 1 200); do head -c 4096 /dev/urandom > p$i.jpg; done; sync"
	for _, suite := range []struct {
		title, prepare string
	}{
		{"no-change incremental cycle (snapshot, send, verify, prune)", ""},
		{"incremental after changing 200 files", change},
	} {
		var hs, bs []time.Duration
		steps := map[string][]time.Duration{}
		for i := 0; i < h.cfg.runs; i++ {
			if suite.prepare != "" {
				if err := ssh("zippy", suite.prepare); err != nil {
					return err
				}
			}
			start := time.Now()
			d, _, err := h.timeCmd(env, h.cfg.hoctl, "--yes", "replicate", "--name", "services")
			if err != nil {
				return err
			}
			hs = append(hs, d)
			if err := stepTimes(state, start, d, steps); err != nil {
				return err
			}
			if suite.prepare != "" {
				if err := ssh("zippy", suite.prepare); err != nil {
					return err
				}
			}
			d, _, err = h.timeCmd(btrbk, "btrbk", "-c", filepath.Join(h.dir, "btrbk.conf"), "run")
			if err != nil {
				return err
			}
			bs = append(bs, d)
		}
		mh, mb := median(hs), median(bs)
		fmt.Printf("#### Replication: %s\n\n", suite.title)
		fmt.Println("| tool | median wall | runs | hoctl ratio |")
		fmt.Println("|---|---|---|---|")
		fmt.Printf("| hoctl --yes replicate --name services | %s | %s | 1.00 |\n", secs(mh), list(hs))
		fmt.Printf("| btrbk run (same hosts, relayed) | %s | %s | **%.3f×** (target ≤ 0.2) |\n\n", secs(mb), list(bs), mh.Seconds()/mb.Seconds())
		fmt.Printf("Where hoctl's time goes (median per run, from its journal): %s.\n\n", stepSummary(steps))
	}
	return nil
}

func seedStorage() []lab.HostSpec {
	seed, _ := lab.SeedHosts()
	return seed[:2]
}

// storageLab starts the storage suites' two-host lab (zippy and c1, real
// sshd, btrfs disks of diskSize bytes) on -storage-net, in a directory of
// the suite's name.
func (h *harness) storageLab(ctx context.Context, name string, diskSize int64) (*lab.Lab, error) {
	return lab.Start(ctx, lab.Config{Dir: labDir(name, h.cfg.storageNet, 7), Net: h.cfg.storageNet, Hosts: seedStorage(), DiskSize: diskSize,
		ConnectTimeout: 10 * time.Second, Groups: map[string][]string{"cattle": {"c1"}}})
}

// useHoctl points the `hoctl` on the storage hosts' PATH (the dir
// primitive, the target filter) at bin, replacing the link in one rename
// so that a suite can swap builds between runs.
func useHoctl(l *lab.Lab, bin string) error {
	for _, n := range []string{"zippy", "c1"} {
		link := filepath.Join(l.Host(n).Dir, "bin", "hoctl")
		tmp := link + ".new"
		_ = os.Remove(tmp)
		if err := os.Symlink(bin, tmp); err != nil {
			return err
		}
		if err := os.Rename(tmp, link); err != nil {
			return err
		}
	}
	return nil
}

// btrbkSetup writes btrbk's configuration for the storage lab, and an ssh
// wrapper that gives btrbk's ssh calls the lab's known_hosts.
func (h *harness) btrbkSetup(l *lab.Lab) error {
	bin := filepath.Join(h.dir, "sshbin")
	if err := os.MkdirAll(bin, 0o755); err != nil {
		return err
	}
	wrapper := fmt.Sprintf("#!/bin/sh\nexec /usr/bin/ssh -o UserKnownHostsFile=%s -o StrictHostKeyChecking=yes -o BatchMode=yes \"$@\"\n", l.KnownHosts)
	if err := os.WriteFile(filepath.Join(bin, "ssh"), []byte(wrapper), 0o755); err != nil {
		return err
	}
	conf := fmt.Sprintf(`timestamp_format long-iso
ssh_identity %s
ssh_user root
snapshot_preserve_min all
target_preserve_min all
lockfile %s
volume ssh://%s:%d/persist
  snapshot_dir btrbk_snaps
  subvolume services
    target send-receive ssh://%s:%d/persist/btrbk
`, l.ClientKey, filepath.Join(h.dir, "btrbk.lock"), l.Host("zippy").Addr, lab.Port, l.Host("c1").Addr, lab.Port)
	return os.WriteFile(filepath.Join(h.dir, "btrbk.conf"), []byte(conf), 0o600)
}

// sendRate picks the rate out of hoctl's summary line ("… in 5.1s
// (201.3 MiB/s, relayed), …").
func sendRate(out string) string {
	for _, line := range strings.Split(out, "\n") {
		if i := strings.Index(line, "/s, relayed"); i > 0 {
			if j := strings.LastIndex(line[:i], "("); j >= 0 {
				return line[j+1:i] + "/s"
			}
		}
	}
	return "?"
}

// stepTimes adds the duration of each step of the newest run journaled
// since start, the time before its first step (start-up, connecting, the
// plan) and after its last (of the run's wall time d) to acc.
func stepTimes(state string, start time.Time, d time.Duration, acc map[string][]time.Duration) error {
	steps, err := journalSteps(state)
	if err != nil {
		return err
	}
	if len(steps) == 0 {
		return fmt.Errorf("no steps in the newest run under %s", state)
	}
	acc["0. start-up, connect, plan"] = append(acc["0. start-up, connect, plan"], steps[0].start.Sub(start))
	var last time.Time
	for _, s := range steps {
		k := fmt.Sprintf("%d. %s", s.n, s.title)
		acc[k] = append(acc[k], s.end.Sub(s.start))
		if s.end.After(last) {
			last = s.end
		}
	}
	acc["9. after the last step (summary, exit)"] = append(acc["9. after the last step (summary, exit)"], start.Add(d).Sub(last))
	return nil
}

func stepSummary(steps map[string][]time.Duration) string {
	var keys []string
	for k := range steps {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var parts []string
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s %d ms", strings.TrimPrefix(k, "9. "), median(steps[k]).Milliseconds()))
	}
	return strings.Join(parts, "; ")
}
