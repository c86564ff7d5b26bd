package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"time"
)

// cycle measures the no-change replication cycle, the one a timer runs
// every few minutes, on a two-host storage lab (zippy and c1 with real
// btrfs disks): `hoctl --yes replicate --name services` and `hoctl --yes
// replicate` (every replication of the inventory), against btrbk run
// configured for the same hosts, subvolume and relay through this
// machine, and, with -baseline, the same commands of another hoctl
// build, interleaved run by run. Both hoctl builds run the hoctl under
// test on the hosts (the newer one answers an older one's commands).
// The phase table is hoctl's own -v account of one extra run per round.
func (h *harness) cycle(ctx context.Context) error {
	l, err := h.storageLab(ctx, "cycle", 1<<30)
	if err != nil {
		return err
	}
	defer func() { _ = l.Stop() }()
	self, err := filepath.Abs(h.cfg.hoctl)
	if err != nil {
		return err
	}
	if err := useHoctl(l, self); err != nil {
		return err
	}
	state := filepath.Join(h.dir, "cycle-state")
	env := []string{"HOCTL_INVENTORY=" + l.Inventory, "XDG_STATE_HOME=" + state}
	ssh := func(host, script string) error {
		_, _, err := h.timeCmd(env, self, "run", host, "--", script)
		return err
	}
	if err := ssh("zippy", `set -e
btrfs subvolume create /persist/services >/dev/null
mkdir -p /persist/btrbk_snaps /persist/services-snapshots /persist/services/photos
for i in $(seq 1 200); do head -c 4096 /dev/urandom > /persist/services/photos/p$i.jpg; done
sync`); err != nil {
		return err
	}
	if err := ssh("c1", "mkdir -p /persist/services-standby /persist/btrbk"); err != nil {
		return err
	}
	if err := h.btrbkSetup(l); err != nil {
		return err
	}
	btrbk := []string{"PATH=" + filepath.Join(h.dir, "sshbin") + ":" + os.Getenv("PATH")}
	// The first of each is full: not measured.
	if _, _, err := h.timeCmd(env, self, "--yes", "replicate", "--name", "services"); err != nil {
		return err
	}
	if _, _, err := h.timeCmd(btrbk, "btrbk", "-c", filepath.Join(h.dir, "btrbk.conf"), "run"); err != nil {
		return err
	}
	type tool struct {
		label string
		argv  []string
		env   []string
		times []time.Duration
	}
	var tools []*tool
	builds := []struct{ label, bin string }{{"hoctl (this build)", self}}
	if h.cfg.baseline != "" {
		base, err := filepath.Abs(h.cfg.baseline)
		if err != nil {
			return err
		}
		builds = append(builds, struct{ label, bin string }{"hoctl (baseline " + filepath.Base(filepath.Dir(base)) + "/)", base})
	}
	for _, b := range builds {
		tools = append(tools,
			&tool{label: b.label + " --yes replicate --name services", argv: []string{b.bin, "--yes", "replicate", "--name", "services"}, env: env},
			&tool{label: b.label + " --yes replicate (every replication)", argv: []string{b.bin, "--yes", "replicate"}, env: env})
	}
	tools = append(tools, &tool{label: "btrbk run (same hosts, relayed)", argv: []string{"btrbk", "-c", filepath.Join(h.dir, "btrbk.conf"), "run"}, env: btrbk})
	phases := map[string][]time.Duration{}
	var totals []time.Duration
	for i := 0; i < h.cfg.runs; i++ {
		for _, t := range tools {
			d, _, err := h.timeCmd(t.env, t.argv...)
			if err != nil {
				return err
			}
			t.times = append(t.times, d)
		}
		_, out, err := h.timeCmdOut(env, self, "-v", "--yes", "replicate", "--name", "services")
		if err != nil {
			return err
		}
		total, ph, err := parsePhases(out)
		if err != nil {
			return err
		}
		totals = append(totals, total)
		for k, v := range ph {
			phases[k] = append(phases[k], v)
		}
	}
	mb := median(tools[len(tools)-1].times)
	load, _ := os.ReadFile("/proc/loadavg")
	fmt.Printf("#### Replication: the no-change cycle (snapshot, send, verify, prune), against btrbk\n\n")
	fmt.Printf("Load average at the end: %s.\n\n", strings.Join(strings.Fields(string(load))[:3], " "))
	fmt.Println("| tool | median wall | runs | ratio to btrbk |")
	fmt.Println("|---|---|---|---|")
	for _, t := range tools {
		m := median(t.times)
		fmt.Printf("| %s | %s | %s | **%.3f×** |\n", t.label, secs(m), list(t.times), m.Seconds()/mb.Seconds())
	}
	fmt.Println()
	fmt.Printf("Where this build's `-v --yes replicate --name services` spends its time (median of %d runs, %s wall; `-v` prints this line per run):\n\n", len(totals), secs(median(totals)))
	fmt.Println("| phase | median | share |")
	fmt.Println("|---|---|---|")
	var names []string
	for k := range phases {
		names = append(names, k)
	}
	order := map[string]int{"connect": 0, "lock": 1, "inspect": 2, "garbage": 3, "snapshot": 4, "send": 5, "verify": 6, "prune zippy": 7, "prune c1": 8, "other": 9}
	sort.Slice(names, func(i, j int) bool { return order[names[i]] < order[names[j]] })
	mt := median(totals)
	for _, k := range names {
		m := median(phases[k])
		fmt.Printf("| %s | %d ms | %.0f%% |\n", k, m.Milliseconds(), 100*m.Seconds()/mt.Seconds())
	}
	fmt.Println()
	return nil
}

var (
	phaseLine = regexp.MustCompile(`replication services phases, of ([0-9.]+[mµn]?s): (.*)$`)
	phasePart = regexp.MustCompile(`^(.+) ([0-9.]+[mµn]?s) \([0-9]+%\)$`)
)

// parsePhases reads the phase line -v prints: "replication services
// phases, of 412ms: connect 61ms (15%), ...".
func parsePhases(out string) (time.Duration, map[string]time.Duration, error) {
	for _, line := range strings.Split(out, "\n") {
		m := phaseLine.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		total, err := time.ParseDuration(m[1])
		if err != nil {
			return 0, nil, err
		}
		ph := map[string]time.Duration{}
		for _, p := range strings.Split(m[2], ", ") {
			pm := phasePart.FindStringSubmatch(p)
			if pm == nil {
				return 0, nil, fmt.Errorf("phase %q in %q", p, line)
			}
			d, err := time.ParseDuration(pm[2])
			if err != nil {
				return 0, nil, err
			}
			ph[pm[1]] = d
		}
		return total, ph, nil
	}
	return 0, nil, fmt.Errorf("no phase line in hoctl -v's output:\n%s", tailLines(out, 15))
}
