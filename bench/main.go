// Command bench measures hoctl against the tools its users compare it with,
// side by side in one run on the lab, and prints medians and ratios as
// Markdown for docs/benchmarks.md. Run it as root with `make bench`.
//
// Fan-out: `hostname` on 20 lab hosts, cold (new connections every time):
// hoctl run vs pdsh -R ssh -f 20 vs ansible -m command -f 20. Iterations
// are interleaved (hoctl, pdsh, ansible, hoctl, ...) so machine noise hits
// all three alike.
//
// Sequence: 10 commands one after another on the same 20 hosts: hoctl's
// engine (pkg/sshexec, one connection per host reused by every command)
// vs 10 pdsh calls.
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
	"os/exec"
	"path/filepath"
	"runtime"
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
	hosts, runs int
	hoctl       string
	only        string
	memoryNet   int
}

func run() error {
	var c config
	flag.IntVar(&c.hosts, "hosts", 20, "lab hosts")
	flag.IntVar(&c.runs, "runs", 5, "iterations per tool (median reported)")
	flag.StringVar(&c.hoctl, "hoctl", "bin/hoctl", "hoctl binary")
	flag.StringVar(&c.only, "only", "", "comma list of suites: fanout,sequence,runbook,replicate,jobs,memory (default all)")
	flag.IntVar(&c.memoryNet, "memory-net", 36, "loopback block (127.0.N) of the memory suite's lab")
	flag.Parse()
	want := func(s string) bool { return c.only == "" || strings.Contains(","+c.only+",", ","+s+",") }

	ctx := context.Background()
	h, err := newHarness(c)
	if err != nil {
		return err
	}
	defer h.cleanup()
	fmt.Printf("### %s, %s\n\n", time.Now().UTC().Format("2006-01-02"), machine())
	fmt.Printf("Command: `make bench` (`go run ./bench -hosts %d -runs %d -only %s`). Median of %d interleaved runs.\n\n", c.hosts, c.runs, c.only, c.runs)
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
	if !want("fanout") && !want("sequence") && !want("runbook") {
		return nil
	}
	hosts, groups := lab.NumberedHosts("b", c.hosts)
	l, err := lab.Start(ctx, lab.Config{Dir: "/tmp/hoctl-bench-lab", Net: 3, Hosts: hosts, Groups: groups, ConnectTimeout: 10 * time.Second})
	if err != nil {
		return err
	}
	defer func() { _ = l.Stop() }()
	if err := h.useFleet(l); err != nil {
		return err
	}
	fmt.Printf("Fleet lab: %d sshd hosts on 127.0.3.x.\n\n", c.hosts)
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
		fmt.Fprintf(&rb, "  - {title: step %d, hosts: all, run: '%s'}\n", i+1, c)
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
		d, _, err = h.timeCmd([]string{"ANSIBLE_SSH_CONTROL_PATH_DIR=" + cp}, "ansible-playbook", "-i", h.ansInv, "-f", strconv.Itoa(h.cfg.hosts), playPath)
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
	lab       *lab.Lab
	cfg       config
	dir       string
	pdshHosts string
	ansInv    string
	env       []string
}

func newHarness(c config) (*harness, error) {
	dir, err := os.MkdirTemp("", "hoctl-bench")
	if err != nil {
		return nil, err
	}
	return &harness{cfg: c, dir: dir, env: append(os.Environ(), "NO_COLOR=1", "SSH_AUTH_SOCK=")}, nil
}

// useFleet points the fan-out suites at the fleet lab.
func (h *harness) useFleet(l *lab.Lab) error {
	h.lab = l
	dir := h.dir
	var addrs, ini []string
	ini = append(ini, "[fleet]")
	for _, host := range l.Hosts {
		addrs = append(addrs, host.Addr)
		ini = append(ini, fmt.Sprintf("%s ansible_host=%s ansible_port=%d ansible_user=root", host.Name, host.Addr, lab.Port))
	}
	h.pdshHosts = strings.Join(addrs, ",")
	h.ansInv = filepath.Join(dir, "hosts.ini")
	if err := os.WriteFile(h.ansInv, []byte(strings.Join(ini, "\n")+"\n"), 0o600); err != nil {
		return err
	}
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
	inv, err := inventory.Load(h.lab.Inventory)
	if err != nil {
		return nil, err
	}
	res := &sshexec.Resolver{Inventory: inv, Home: os.Getenv("HOME")}
	var targets []*sshexec.Target
	for _, n := range inv.HostNames() {
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
		_ = exec.Command("ssh", "-O", "exit", "-o", "ControlPath="+m, "x").Run()
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
	cmd := exec.Command(argv[0], argv[1:]...)
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

func (h *harness) fanout() error {
	var hoctl, pdsh, ansible []time.Duration
	var hoctlCPU, sshdCPU []time.Duration
	for i := 0; i < h.cfg.runs; i++ {
		before := h.sshdCPU()
		d, ru, err := h.timeCmd(nil, h.cfg.hoctl, "run", "all", "--", "hostname")
		if err != nil {
			return err
		}
		sshdCPU = append(sshdCPU, h.sshdCPU()-before)
		hoctlCPU = append(hoctlCPU, cpu(ru))
		hoctl = append(hoctl, d)

		d, _, err = h.timeCmd(nil, "pdsh", "-R", "ssh", "-f", strconv.Itoa(h.cfg.hosts), "-l", "root", "-w", h.pdshHosts, "hostname")
		if err != nil {
			return err
		}
		pdsh = append(pdsh, d)

		cp := filepath.Join(h.dir, fmt.Sprintf("cp%d", i))
		if err := os.MkdirAll(cp, 0o700); err != nil {
			return err
		}
		d, _, err = h.timeCmd([]string{"ANSIBLE_SSH_CONTROL_PATH_DIR=" + cp}, "ansible", "all", "-i", h.ansInv, "-m", "command", "-a", "hostname", "-f", strconv.Itoa(h.cfg.hosts))
		if err != nil {
			return err
		}
		ansible = append(ansible, d)
	}
	mh, mp, ma := median(hoctl), median(pdsh), median(ansible)
	fmt.Printf("#### Fan-out: `hostname` on %d hosts, new connections each time\n\n", h.cfg.hosts)
	fmt.Println("| tool | median wall | runs | hoctl ratio |")
	fmt.Println("|---|---|---|---|")
	fmt.Printf("| hoctl run all -- hostname | %s | %s | 1.00 |\n", secs(mh), list(hoctl))
	fmt.Printf("| pdsh -R ssh -f %d | %s | %s | **%.3f×** (target ≤ 0.60) |\n", h.cfg.hosts, secs(mp), list(pdsh), mh.Seconds()/mp.Seconds())
	fmt.Printf("| ansible -m command -f %d | %s | %s | **%.3f×** (target ≤ 0.35) |\n\n", h.cfg.hosts, secs(ma), list(ansible), mh.Seconds()/ma.Seconds())
	mhc, msc := median(hoctlCPU), median(sshdCPU)
	fmt.Printf("Where hoctl's fan-out time goes (median per run, %d cores): wall %s; hoctl process CPU %s; lab sshd CPU %s (fork, re-exec, key exchange, session, `hostname`). ", runtime.NumCPU(), secs(mh), secs(mhc), secs(msc))
	fmt.Printf("CPU demand %s over %d cores = %s of the wall time.\n\n", secs(mhc+msc), runtime.NumCPU(), secs((mhc+msc)/time.Duration(runtime.NumCPU())))
	return h.phases()
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
			if _, _, err := h.timeCmd(nil, "pdsh", "-R", "ssh", "-f", strconv.Itoa(h.cfg.hosts), "-l", "root", "-w", h.pdshHosts, c); err != nil {
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
