// Command bench measures hoctl against the tools its users compare it with,
// side by side in one run on the lab, and prints medians and ratios as
// Markdown for docs/benchmarks.md. Run it as root with `make bench`.
//
// Fan-out: `hostname` on 20, 50, 100 and 200 lab hosts (-sizes), cold
// (new connections every time): hoctl run vs pdsh -R ssh -f N vs ansible
// -m command -f N. Iterations are interleaved (hoctl, pdsh, ansible at
// each size, then again) so machine noise hits all alike. Beside the wall
// times: hoctl's own CPU per host and the lab sshd's CPU per host, and a
// CPU profile of hoctl at the largest size (a -tags pprof build).
//
// Addresses: the fleet lab uses 127.0.<-net>.x (default 3) and the
// storage lab 127.0.<-storage-net>.x (default 7); $HOCTL_BENCH_NET and
// $HOCTL_BENCH_STORAGE_NET set the defaults, so two checkouts can bench
// at once.
//
// Sequence: 10 commands one after another on the same 20 hosts: hoctl's
// engine (pkg/sshexec, one connection per host reused by every command)
// vs 10 pdsh calls.
//
// Lab (-lab-net, default 9): the real cluster (internal/lab machines)
// booted from the cache -lab-runs times, each stage timed; its memory by
// machine and service; and the NFS unavailability window of a planned
// failover there and back, as a client reading over NFSv4 every 100 ms
// sees it (bench/lab.go).
//
// Profile: CPU seconds spent by the hoctl process and by the lab's sshd
// processes (read from /proc: each listener's own and reaped children's
// time) during the fan-out, against wall time on the machine's cores.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/hoctl/hoctl/internal/lab"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

type config struct {
	hosts, runs     int
	sizes           []int
	net, storageNet int
	hoctl           string
	only            string
	transferBefore  string
	// beforeOnly limits transferBefore to one transport.
	beforeOnly      string
	compress        string
	rawDirect       bool
	profile         bool
	tools           string
	memoryNet       int
	labNet, labRuns int
	baseline        string
}

// envInt is the integer in $name, or def.
func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil {
		return v
	}
	return def
}

// labDir keeps the historical directory for the default net and gives
// any other net its own, so benches on two nets never share a lab.
func labDir(name string, net, def int) string {
	if net == def {
		return "/tmp/hoctl-bench-" + name
	}
	return fmt.Sprintf("/tmp/hoctl-bench%d-%s", net, name)
}

func run() error {
	var c config
	var sizes string
	flag.IntVar(&c.hosts, "hosts", 20, "hosts of the sequence and runbook suites")
	flag.StringVar(&sizes, "sizes", "20,50,100,200", "fan-out sizes (hosts), comma-separated, at most 200")
	flag.IntVar(&c.runs, "runs", 5, "iterations per tool (median reported)")
	flag.IntVar(&c.net, "net", envInt("HOCTL_BENCH_NET", 3), "fleet lab on 127.0.NET.x (default $HOCTL_BENCH_NET, else 3)")
	flag.IntVar(&c.storageNet, "storage-net", envInt("HOCTL_BENCH_STORAGE_NET", 7), "storage lab on 127.0.NET.x (default $HOCTL_BENCH_STORAGE_NET, else 7)")
	flag.StringVar(&c.hoctl, "hoctl", "bin/hoctl", "hoctl binary")
	flag.StringVar(&c.only, "only", "", "comma list of suites: fanout,sequence,runbook,replicate,cycle,transfer,jobs,memory,lab (default all); direct-tries only when named")
	flag.StringVar(&c.baseline, "baseline", "", "cycle: another hoctl build to measure side by side with -hoctl")
	flag.StringVar(&c.transferBefore, "transfer-before", "", "transfer suite: also measure this hoctl binary, interleaved with -hoctl")
	flag.StringVar(&c.compress, "transfer-compress", "none,zstd", "transfer suite: the compress settings measured")
	flag.BoolVar(&c.rawDirect, "transfer-raw-direct", true, "transfer suite: also the bare btrfs send | ssh pipes on zippy (two ciphers)")
	flag.StringVar(&c.beforeOnly, "transfer-before-only", "", "transfer suite: measure -transfer-before on this transport only (relay or direct)")
	flag.IntVar(&c.memoryNet, "memory-net", 36, "loopback block (127.0.N) of the memory suite's lab")
	flag.IntVar(&c.labNet, "lab-net", envInt("HOCTL_BENCH_LAB_NET", 9), "the lab suite's real cluster on 127.0.NET.x (default $HOCTL_BENCH_LAB_NET, else 9)")
	flag.IntVar(&c.labRuns, "lab-runs", 3, "the lab suite: boots of the real cluster, and failovers there and back (median reported)")
	flag.StringVar(&c.tools, "tools", "hoctl,pdsh,ansible", "fan-out: the tools to compare hoctl with (pdsh, ansible), for a quick re-measure without Ansible's minutes")
	flag.BoolVar(&c.profile, "profile", true, "profile hoctl at the largest fan-out size (builds it with -tags pprof)")
	flag.Parse()
	for _, f := range strings.Split(sizes, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 || n > 200 {
			return fmt.Errorf("-sizes: %q is not a number of hosts from 1 to 200", f)
		}
		c.sizes = append(c.sizes, n)
	}
	want := func(s string) bool { return c.only == "" || strings.Contains(","+c.only+",", ","+s+",") }
	// Every tool it compares with and runs, before the first lab boots.
	if err := lab.Preflight(lab.ForAll | lab.ForBench); err != nil {
		return err
	}

	ctx := context.Background()
	h, err := newHarness(c)
	if err != nil {
		return err
	}
	defer h.cleanup()
	fmt.Printf("### %s, %s\n\n", time.Now().UTC().Format("2006-01-02"), machine())
	fmt.Printf("Command: `%s`. Median of %d interleaved runs.\n\n", strings.Join(append([]string{"go run ./bench"}, os.Args[1:]...), " "), c.runs)
	if want("jobs") {
		if err := h.jobsScan(); err != nil {
			return err
		}
	}
	if want("memory") {
		if err := h.memory(ctx, c.memoryNet); err != nil {
			return err
		}
	}
	if want("replicate") {
		if err := h.replication(ctx); err != nil {
			return err
		}
	}
	if want("cycle") {
		if err := h.cycle(ctx); err != nil {
			return err
		}
	}
	if want("transfer") {
		if err := h.transfer(ctx); err != nil {
			return err
		}
	}
	// The tries are an experiment, not a figure of the house: only when named.
	if strings.Contains(","+c.only+",", ",direct-tries,") {
		if err := h.directTries(ctx); err != nil {
			return err
		}
	}
	if want("lab") {
		if err := h.labSuite(ctx, c.labNet, c.labRuns); err != nil {
			return err
		}
	}
	if !want("fanout") && !want("sequence") && !want("runbook") {
		return nil
	}
	size := c.hosts
	if want("fanout") {
		size = max(size, slices.Max(c.sizes))
	}
	hosts, groups := lab.NumberedHosts("b", size)
	l, err := lab.Start(ctx, lab.Config{Dir: labDir("lab", c.net, 3), Net: c.net, Hosts: hosts, Groups: groups, ConnectTimeout: 10 * time.Second})
	if err != nil {
		return err
	}
	defer func() { _ = l.Stop() }()
	if err := h.useFleet(l); err != nil {
		return err
	}
	fmt.Printf("Fleet lab: %d sshd hosts on 127.0.%d.x.\n\n", size, c.net)
	if want("fanout") {
		if err := h.fanout(); err != nil {
			return err
		}
	}
	if want("sequence") {
		if err := h.sequence(ctx); err != nil {
			return err
		}
	}
	if want("runbook") {
		if err := h.runbook(); err != nil {
			return err
		}
	}
	return nil
}
