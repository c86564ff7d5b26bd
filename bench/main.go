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
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/hoctl/hoctl/internal/lab"
	"github.com/hoctl/hoctl/pkg/inventory"
	"github.com/hoctl/hoctl/pkg/sshexec"
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
	flag.StringVar(&c.only, "only", "", "comma list of suites: fanout,sequence,runbook,replicate,cycle,transfer,jobs,memory,lab (default all)")
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

// runbook: 10 steps, each a trivial command on every host, as a hoctl
// runbook and as an Ansible playbook of 10 raw tasks (forks = hosts, no
// fact gathering), interleaved.
func (h *harness) runbook() error {
	cmds := []string{"hostname", "uptime", "id -u", "true", "uname -r", "date +%s", "test -d /persist", "cat /proc/loadavg", "df -h /data", "echo done"}
	var rb, play strings.Builder
	rb.WriteString("name: bench\nsteps:\n")
	play.WriteString("- hosts: all\n  gather_facts: false\n  tasks:\n")
	for i, c := range cmds {
		fmt.Fprintf(&rb, "  - {title: step %d, hosts: '%s', run: '%s'}\n", i+1, h.view(h.cfg.hosts).target, c)
		fmt.Fprintf(&play, "    - name: step %d\n      raw: '%s'\n", i+1, c)
	}
	rbPath, playPath := filepath.Join(h.dir, "bench.yaml"), filepath.Join(h.dir, "play.yml")
	if err := os.WriteFile(rbPath, []byte(rb.String()), 0o600); err != nil {
		return err
	}
	if err := os.WriteFile(playPath, []byte(play.String()), 0o600); err != nil {
		return err
	}
	state := filepath.Join(h.dir, "state")
	var hoctl, ansible []time.Duration
	for i := 0; i < h.cfg.runs; i++ {
		d, _, err := h.timeCmd([]string{"XDG_STATE_HOME=" + state}, h.cfg.hoctl, "--yes", "runbook", "run", rbPath)
		if err != nil {
			return err
		}
		hoctl = append(hoctl, d)
		cp := filepath.Join(h.dir, fmt.Sprintf("cpr%d", i))
		if err := os.MkdirAll(cp, 0o700); err != nil {
			return err
		}
		d, _, err = h.timeCmd([]string{"ANSIBLE_SSH_CONTROL_PATH_DIR=" + cp}, "ansible-playbook", "-i", h.view(h.cfg.hosts).ansInv, "-f", strconv.Itoa(h.cfg.hosts), playPath)
		if err != nil {
			return err
		}
		ansible = append(ansible, d)
	}
	mh, ma := median(hoctl), median(ansible)
	fmt.Printf("#### Runbook: 10 steps, each a trivial command on %d hosts\n\n", h.cfg.hosts)
	fmt.Println("| tool | median wall | runs | hoctl ratio |")
	fmt.Println("|---|---|---|---|")
	fmt.Printf("| hoctl --yes runbook run (plan, journal, 10 steps) | %s | %s | 1.00 |\n", secs(mh), list(hoctl))
	fmt.Printf("| ansible-playbook, 10 raw tasks, forks %d | %s | %s | **%.3f×** (target ≤ 0.10) |\n\n", h.cfg.hosts, secs(ma), list(ansible), mh.Seconds()/ma.Seconds())
	return nil
}

type harness struct {
	lab   *lab.Lab
	cfg   config
	dir   string
	views map[int]*view
	env   []string
}

// view is the fleet's first n hosts as each tool names them.
type view struct {
	n         int
	target    string // hoctl TARGET
	pdshHosts string // pdsh -w
	ansInv    string // an Ansible inventory of just these hosts
}

// view returns the first n hosts of the fleet, writing their Ansible
// inventory on first use.
func (h *harness) view(n int) *view {
	if v := h.views[n]; v != nil {
		return v
	}
	var names, addrs, ini []string
	ini = append(ini, "[fleet]")
	for _, host := range h.lab.Hosts[:n] {
		names = append(names, host.Name)
		addrs = append(addrs, host.Addr)
		ini = append(ini, fmt.Sprintf("%s ansible_host=%s ansible_port=%d ansible_user=root", host.Name, host.Addr, lab.Port))
	}
	v := &view{n: n, target: "all", pdshHosts: strings.Join(addrs, ","), ansInv: filepath.Join(h.dir, fmt.Sprintf("hosts%d.ini", n))}
	if n < len(h.lab.Hosts) {
		v.target = strings.Join(names, ",")
	}
	if err := os.WriteFile(v.ansInv, []byte(strings.Join(ini, "\n")+"\n"), 0o600); err != nil {
		panic(err) // the bench's own temp dir: nothing to recover
	}
	h.views[n] = v
	return v
}

func newHarness(c config) (*harness, error) {
	dir, err := os.MkdirTemp("", "hoctl-bench")
	if err != nil {
		return nil, err
	}
	return &harness{cfg: c, dir: dir, views: map[int]*view{}, env: append(os.Environ(), "NO_COLOR=1", "SSH_AUTH_SOCK=")}, nil
}

// useFleet points the fan-out suites at the fleet lab.
func (h *harness) useFleet(l *lab.Lab) error {
	h.lab = l
	sshArgs := fmt.Sprintf("-i %s -o UserKnownHostsFile=%s -o StrictHostKeyChecking=yes -o BatchMode=yes", l.ClientKey, l.KnownHosts)
	h.env = append(os.Environ(),
		"HOCTL_INVENTORY="+l.Inventory, "NO_COLOR=1", "SSH_AUTH_SOCK=",
		// pdsh's ssh module appends these to every ssh call.
		"PDSH_SSH_ARGS_APPEND="+sshArgs+fmt.Sprintf(" -p %d", lab.Port),
		// Ansible: its default ssh args (ControlMaster, 60 s persist)
		// plus the lab's key and known_hosts; host key checking stays on.
		"ANSIBLE_SSH_COMMON_ARGS="+sshArgs,
		"ANSIBLE_PRIVATE_KEY_FILE="+l.ClientKey,
		"ANSIBLE_HOST_KEY_CHECKING=True",
		"ANSIBLE_PYTHON_INTERPRETER=/usr/bin/python3",
		"ANSIBLE_LOCALHOST_WARNING=False",
		"ANSIBLE_DEPRECATION_WARNINGS=False",
		"ANSIBLE_NOCOLOR=1",
	)
	return nil
}

// targets resolves every lab host, for the suites that use hoctl's
// library directly.
func (h *harness) targets() ([]*sshexec.Target, error) {
	inv, err := inventory.Load(context.Background(), h.lab.Inventory)
	if err != nil {
		return nil, err
	}
	res := &sshexec.Resolver{Inventory: inv, Home: os.Getenv("HOME")}
	var targets []*sshexec.Target
	for _, n := range inv.HostNames()[:h.cfg.hosts] {
		t, err := res.Resolve(inv.Host(n))
		if err != nil {
			return nil, err
		}
		targets = append(targets, t)
	}
	return targets, nil
}

func (h *harness) cleanup() {
	// Ansible's ControlPersist masters would linger for 60 s; end them.
	matches, _ := filepath.Glob(filepath.Join(h.dir, "cp*", "*"))
	for _, m := range matches {
		_ = lab.ToolCmd(context.Background(), "ssh", "-O", "exit", "-o", "ControlPath="+m, "x").Run()
	}
	_ = os.RemoveAll(h.dir)
}

// timeCmd runs argv and returns its wall time; a non-zero exit is an error
// (a benchmark of a failing command measures nothing).
func (h *harness) timeCmd(extraEnv []string, argv ...string) (time.Duration, *syscall.Rusage, error) {
	d, _, ru, err := h.timeCmdOutput(extraEnv, argv...)
	return d, ru, err
}

// timeCmdOut is timeCmd returning the command's output instead of its
// resource usage.
func (h *harness) timeCmdOut(extraEnv []string, argv ...string) (time.Duration, string, error) {
	d, out, _, err := h.timeCmdOutput(extraEnv, argv...)
	return d, out, err
}

func (h *harness) timeCmdOutput(extraEnv []string, argv ...string) (time.Duration, string, *syscall.Rusage, error) {
	cmd := lab.ToolCmd(context.Background(), argv[0], argv[1:]...)
	cmd.Env = append(append([]string{}, h.env...), extraEnv...)
	out := &strings.Builder{}
	cmd.Stdout, cmd.Stderr = out, out
	start := time.Now()
	err := cmd.Run()
	d := time.Since(start)
	if err != nil {
		return 0, "", nil, fmt.Errorf("%s: %w\n%s", strings.Join(argv, " "), err, tailLines(out.String(), 15))
	}
	ru, _ := cmd.ProcessState.SysUsage().(*syscall.Rusage)
	return d, out.String(), ru, nil
}

func tailLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

func median(ds []time.Duration) time.Duration {
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[len(s)/2]
}

func secs(d time.Duration) string { return fmt.Sprintf("%.3f s", d.Seconds()) }

// fanoutRuns is one size's measurements, one entry per run.
type fanoutRuns struct {
	hoctl, hoctlN, pdsh, ansible, hoctlCPU, sshdCPU []time.Duration
}

func (h *harness) fanout() error {
	res := map[int]*fanoutRuns{}
	for _, n := range h.cfg.sizes {
		res[n] = &fanoutRuns{}
	}
	for i := 0; i < h.cfg.runs; i++ {
		for _, n := range h.cfg.sizes {
			v, r := h.view(n), res[n]
			// sshd CPU shows up when the listener reaps a session, which
			// may be after the tool that opened it has exited: wait for
			// the count to settle before and after, so the previous
			// tool's sessions are not counted as hoctl's.
			before := h.settledSSHDCPU()
			d, ru, err := h.timeCmd(nil, h.cfg.hoctl, "run", v.target, "--", "hostname")
			if err != nil {
				return err
			}
			r.sshdCPU = append(r.sshdCPU, h.settledSSHDCPU()-before)
			r.hoctlCPU = append(r.hoctlCPU, cpu(ru))
			r.hoctl = append(r.hoctl, d)

			// The same with as many connections at once as pdsh and
			// Ansible get (hoctl's default is 32).
			d, _, err = h.timeCmd(nil, h.cfg.hoctl, "run", v.target, "--parallel", strconv.Itoa(n), "--", "hostname")
			if err != nil {
				return err
			}
			r.hoctlN = append(r.hoctlN, d)
			if !h.tool("pdsh") {
				continue
			}

			d, _, err = h.timeCmd(nil, "pdsh", "-R", "ssh", "-f", strconv.Itoa(n), "-l", "root", "-w", v.pdshHosts, "hostname")
			if err != nil {
				return err
			}
			r.pdsh = append(r.pdsh, d)
			if !h.tool("ansible") {
				continue
			}

			cp := filepath.Join(h.dir, fmt.Sprintf("cp%d-%d", n, i))
			if err := os.MkdirAll(cp, 0o700); err != nil {
				return err
			}
			d, _, err = h.timeCmd([]string{"ANSIBLE_SSH_CONTROL_PATH_DIR=" + cp}, "ansible", "all", "-i", v.ansInv, "-m", "command", "-a", "hostname", "-f", strconv.Itoa(n))
			if err != nil {
				return err
			}
			r.ansible = append(r.ansible, d)
			// Ansible's ControlPersist masters would idle for 60 s and
			// load the next runs; end them now, outside the timing.
			h.endMasters(cp)
		}
	}
	fmt.Printf("#### Fan-out: `hostname` on 20 to 200 hosts, new connections each time\n\n")
	fmt.Println("| hosts | hoctl run | hoctl run --parallel N | pdsh -R ssh -f N | ansible -m command -f N | hoctl / pdsh | hoctl / ansible | hoctl wall per host | hoctl CPU per host | sshd CPU per host |")
	fmt.Println("|---|---|---|---|---|---|---|---|---|---|")
	ratio := func(a time.Duration, b []time.Duration) string {
		if len(b) == 0 {
			return "–"
		}
		return fmt.Sprintf("**%.3f×**", a.Seconds()/median(b).Seconds())
	}
	med := func(ds []time.Duration) string {
		if len(ds) == 0 {
			return "not run"
		}
		return secs(median(ds))
	}
	for _, n := range h.cfg.sizes {
		r := res[n]
		mh := median(r.hoctl)
		fmt.Printf("| %d | %s | %s | %s | %s | %s | %s | %.1f ms | %.2f ms | %.1f ms |\n", n, secs(mh), secs(median(r.hoctlN)), med(r.pdsh), med(r.ansible),
			ratio(mh, r.pdsh), ratio(mh, r.ansible), ms(mh)/float64(n), ms(median(r.hoctlCPU))/float64(n), ms(median(r.sshdCPU))/float64(n))
	}
	fmt.Println()
	fmt.Println("Every run (seconds), in the order taken:")
	fmt.Println()
	for _, n := range h.cfg.sizes {
		r := res[n]
		fmt.Printf("- %d hosts: hoctl %s; hoctl --parallel %d %s; pdsh %s; ansible %s\n", n, list(r.hoctl), n, list(r.hoctlN), list(r.pdsh), list(r.ansible))
	}
	fmt.Println()
	if len(h.cfg.sizes) >= 2 {
		var xs, ys []float64
		for _, n := range h.cfg.sizes {
			xs = append(xs, float64(n))
			ys = append(ys, median(res[n].hoctl).Seconds())
		}
		a, b, r2 := linearFit(xs, ys)
		fmt.Printf("Growth: hoctl's median wall time fits %.3f s + %.2f ms × hosts (R² %.3f) over %v hosts.\n\n", a, b*1000, r2, h.cfg.sizes)
	}
	largest := slices.Max(h.cfg.sizes)
	r := res[largest]
	mh, mhc, msc := median(r.hoctl), median(r.hoctlCPU), median(r.sshdCPU)
	fmt.Printf("Where the time goes at %d hosts (median per run, %d cores): wall %s; hoctl process CPU %s; lab sshd CPU %s (fork, re-exec, key exchange, session, `hostname`). ", largest, runtime.NumCPU(), secs(mh), secs(mhc), secs(msc))
	fmt.Printf("CPU demand %s over %d cores = %s of the wall time.\n\n", secs(mhc+msc), runtime.NumCPU(), secs((mhc+msc)/time.Duration(runtime.NumCPU())))
	if h.cfg.profile {
		if err := h.profileFanout(h.view(largest)); err != nil {
			return err
		}
	}
	return h.phases()
}

// settledSSHDCPU is sshdCPU once it stops changing (the lab's listeners
// have reaped every finished session), waiting at most 5 s.
func (h *harness) settledSSHDCPU() time.Duration {
	last := h.sshdCPU()
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); {
		time.Sleep(150 * time.Millisecond)
		cur := h.sshdCPU()
		if cur == last {
			return cur
		}
		last = cur
	}
	return last
}

// tool reports whether -tools includes name.
func (h *harness) tool(name string) bool {
	return strings.Contains(","+h.cfg.tools+",", ","+name+",")
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// linearFit is least squares y = a + b·x, with R².
func linearFit(xs, ys []float64) (a, b, r2 float64) {
	n := float64(len(xs))
	var sx, sy, sxx, sxy float64
	for i := range xs {
		sx, sy, sxx, sxy = sx+xs[i], sy+ys[i], sxx+xs[i]*xs[i], sxy+xs[i]*ys[i]
	}
	b = (n*sxy - sx*sy) / (n*sxx - sx*sx)
	a = (sy - b*sx) / n
	mean := sy / n
	var ssr, sst float64
	for i := range xs {
		e := ys[i] - (a + b*xs[i])
		ssr += e * e
		sst += (ys[i] - mean) * (ys[i] - mean)
	}
	if sst > 0 {
		r2 = 1 - ssr/sst
	}
	return a, b, r2
}

// endMasters asks every Ansible ControlMaster under dir to exit.
func (h *harness) endMasters(dir string) {
	matches, _ := filepath.Glob(filepath.Join(dir, "*"))
	for _, m := range matches {
		_ = lab.ToolCmd(context.Background(), "ssh", "-O", "exit", "-o", "ControlPath="+m, "x").Run()
	}
}

// profileFanout builds hoctl with -tags pprof and profiles its fan-out to
// v's hosts over several runs (one profile of a 2 s run holds too few
// samples), then prints where its CPU goes: the top functions and the
// share of the SSH handshake's parts.
func (h *harness) profileFanout(v *view) error {
	bin := filepath.Join(h.dir, "hoctl-pprof")
	build := lab.ToolCmd(context.Background(), "go", "build", "-tags", "pprof", "-o", bin, "./cmd/hoctl")
	build.Env = os.Environ()
	if out, err := build.CombinedOutput(); err != nil {
		return fmt.Errorf("building hoctl with -tags pprof: %w\n%s", err, out)
	}
	var profiles []string
	for i := 0; i < max(h.cfg.runs, 5); i++ {
		p := filepath.Join(h.dir, fmt.Sprintf("cpu%d.pprof", i))
		if _, _, err := h.timeCmd([]string{"HOCTL_CPUPROFILE=" + p}, bin, "run", v.target, "--", "hostname"); err != nil {
			return err
		}
		profiles = append(profiles, p)
	}
	pprof := func(args ...string) (string, error) {
		cmd := lab.ToolCmd(context.Background(), "go", append(append([]string{"tool", "pprof"}, args...), append([]string{bin}, profiles...)...)...)
		out, err := cmd.CombinedOutput()
		if err != nil {
			return "", fmt.Errorf("go tool pprof %v: %w\n%s", args, err, out)
		}
		return string(out), nil
	}
	fmt.Printf("Profile of hoctl at %d hosts (%d runs merged, `go tool pprof`), share of hoctl's CPU by part (cumulative, parts overlap where one calls another):\n\n", v.n, len(profiles))
	fmt.Println("| part | functions (regexp) | share |")
	fmt.Println("|---|---|---|")
	for _, part := range []struct{ name, re string }{
		{"connecting: TCP dial, SSH handshake, auth (all of it)", `sshexec\.\(\*Pool\)\.dial|ssh\.\(\*handshakeTransport\)\.kexLoop`},
		{"key exchange math (X25519)", `curve25519\.x25519|mlkem`},
		{"host key check (known_hosts lookup, signature)", `sshexec\.\(\*hostKeys\)|ed25519PublicKey\)\.Verify|ed25519\.Verify`},
		{"user auth signature", `ed25519\.PrivateKey\.Sign`},
		{"packet crypto (ciphers, MACs, hashes)", `chacha20|poly1305|aes|gcm|hmac|sha256\.block|sha512\.block`},
		{"socket reads and writes (syscalls)", `syscall\.Syscall|internal/poll`},
		{"session and command (after connecting)", `sshexec\.\(\*Conn\)\.Run|ssh\.\(\*Client\)\.NewSession`},
		{"loading inventory, ssh_config, keys", `inventory\.Load|sshexec\.LoadSSHConfig|sshexec\.\(\*keyring\)`},
		{"garbage collection and scheduler", `runtime\.gcBgMarkWorker|runtime\.mallocgc|runtime\.schedule|runtime\.findRunnable`},
	} {
		out, err := pprof("-top", "-nodecount=1", "-focus", part.re)
		if err != nil {
			return err
		}
		share := "0%"
		if m := regexp.MustCompile(`Showing nodes accounting for [^,]+, ([0-9.]+%) of ([^ ]+) total`).FindStringSubmatch(out); m != nil {
			share = m[1] + " of " + m[2]
		} else if strings.Contains(out, "no samples") || strings.Contains(out, "matched no samples") {
			share = "0%"
		}
		fmt.Printf("| %s | `%s` | %s |\n", part.name, part.re, share)
	}
	top, err := pprof("-top", "-cum", "-nodecount=30")
	if err != nil {
		return err
	}
	fmt.Printf("\nTop functions by cumulative CPU:\n\n```\n%s```\n\n", top)
	return nil
}

// phases splits a cold fan-out into its parts, measured inside one
// process with the same library hoctl uses: process start-up (hoctl
// version), connecting to every host at once (TCP, key exchange, auth),
// and running the command on the open connections.
func (h *harness) phases() error {
	targets, err := h.targets()
	if err != nil {
		return err
	}
	var startup, connect, execs, slowest []time.Duration
	for i := 0; i < h.cfg.runs; i++ {
		d, _, err := h.timeCmd(nil, h.cfg.hoctl, "version")
		if err != nil {
			return err
		}
		startup = append(startup, d)
		pool := sshexec.NewPool(sshexec.PoolOptions{})
		ctx := context.Background()
		per := make([]time.Duration, len(targets))
		start := time.Now()
		var failed error
		sshexec.ForEach(ctx, 32, targets, func(ctx context.Context, i int, t *sshexec.Target) {
			s := time.Now()
			if _, err := pool.Runner(ctx, t); err != nil {
				failed = err
			}
			per[i] = time.Since(s)
		})
		connect = append(connect, time.Since(start))
		slowest = append(slowest, median(per))
		start = time.Now()
		sshexec.ForEach(ctx, 32, targets, func(ctx context.Context, _ int, t *sshexec.Target) {
			r, err := pool.Runner(ctx, t)
			if err == nil {
				_, err = r.Run(ctx, sshexec.Cmd{Script: "hostname"})
			}
			if err != nil {
				failed = err
			}
		})
		execs = append(execs, time.Since(start))
		_ = pool.Close()
		if failed != nil {
			return failed
		}
	}
	fmt.Printf("Phases of a cold fan-out (median, same library in one process): hoctl process start-up and exit %s; connecting to all %d hosts at once %s (median host %s: TCP, key exchange, auth; sshd forks and re-execs itself per connection); `hostname` on the open connections %s.\n\n",
		secs(median(startup)), h.cfg.hosts, secs(median(connect)), secs(median(slowest)), secs(median(execs)))
	return nil
}

func cpu(ru *syscall.Rusage) time.Duration {
	if ru == nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// sshdCPU sums user+system time of every lab sshd listener and its reaped
// children (the per-connection sshd processes and the commands they ran).
func (h *harness) sshdCPU() time.Duration {
	tick := 100.0 // USER_HZ on Linux
	var total float64
	for _, host := range h.lab.Hosts {
		data, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", host.Pid, host.Pid))
		if err != nil {
			continue
		}
		for _, f := range strings.Fields(string(data)) {
			stat, err := os.ReadFile("/proc/" + f + "/stat")
			if err != nil {
				continue
			}
			s := string(stat)
			fields := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
			// utime stime cutime cstime are fields 14-17 (1-based) of
			// stat, 12-15 here after pid and comm are cut off.
			for _, idx := range []int{11, 12, 13, 14} {
				v, _ := strconv.ParseFloat(fields[idx], 64)
				total += v
			}
		}
	}
	return time.Duration(total / tick * float64(time.Second))
}

func list(ds []time.Duration) string {
	var s []string
	for _, d := range ds {
		s = append(s, fmt.Sprintf("%.2f", d.Seconds()))
	}
	return strings.Join(s, " ")
}

func (h *harness) sequence(ctx context.Context) error {
	targets, err := h.targets()
	if err != nil {
		return err
	}
	cmds := []string{"hostname", "uptime", "id -u", "true", "uname -r", "date +%s", "test -d /persist", "cat /proc/loadavg", "df -h /data", "echo done"}
	var hoctl, pdsh []time.Duration
	for i := 0; i < h.cfg.runs; i++ {
		start := time.Now()
		pool := sshexec.NewPool(sshexec.PoolOptions{})
		for _, c := range cmds {
			var failed error
			sshexec.ForEach(ctx, 32, targets, func(ctx context.Context, _ int, t *sshexec.Target) {
				r, err := pool.Runner(ctx, t)
				if err == nil {
					_, err = r.Run(ctx, sshexec.Cmd{Script: c})
				}
				if err != nil {
					failed = err
				}
			})
			if failed != nil {
				_ = pool.Close()
				return failed
			}
		}
		_ = pool.Close()
		hoctl = append(hoctl, time.Since(start))

		start = time.Now()
		for _, c := range cmds {
			if _, _, err := h.timeCmd(nil, "pdsh", "-R", "ssh", "-f", strconv.Itoa(h.cfg.hosts), "-l", "root", "-w", h.view(h.cfg.hosts).pdshHosts, c); err != nil {
				return err
			}
		}
		pdsh = append(pdsh, time.Since(start))
	}
	mh, mp := median(hoctl), median(pdsh)
	fmt.Printf("#### Sequence: 10 commands one after another on %d hosts\n\n", h.cfg.hosts)
	fmt.Println("| tool | median wall | runs | hoctl ratio |")
	fmt.Println("|---|---|---|---|")
	fmt.Printf("| hoctl engine (pkg/sshexec, one connection per host) | %s | %s | 1.00 |\n", secs(mh), list(hoctl))
	fmt.Printf("| 10 × pdsh -R ssh -f %d | %s | %s | **%.3f×** |\n\n", h.cfg.hosts, secs(mp), list(pdsh), mh.Seconds()/mp.Seconds())
	return nil
}

func machine() string {
	model := "unknown CPU"
	if data, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(data), "\n") {
			if strings.HasPrefix(line, "model name") {
				model = strings.TrimSpace(line[strings.IndexByte(line, ':')+1:])
				break
			}
		}
	}
	var u syscall.Utsname
	_ = syscall.Uname(&u)
	rel := make([]byte, 0, len(u.Release))
	for _, c := range u.Release {
		if c == 0 {
			break
		}
		rel = append(rel, byte(c))
	}
	return fmt.Sprintf("%d cores (%s), Linux %s, %s", runtime.NumCPU(), model, rel, runtime.Version())
}
