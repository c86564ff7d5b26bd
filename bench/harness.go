package main

// The harness the suites share: the bench's temp dir, the fleet lab's
// views of its hosts, timed commands, and the figures' formatting.

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/hoctl/hoctl/internal/lab"
	"github.com/hoctl/hoctl/pkg/inventory"
	"github.com/hoctl/hoctl/pkg/sshexec"
)

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
	dirs, _ := filepath.Glob(filepath.Join(h.dir, "cp*"))
	for _, d := range dirs {
		h.endMasters(d)
	}
	_ = os.RemoveAll(h.dir)
}

// endMasters asks every Ansible ControlMaster under dir to exit.
func (h *harness) endMasters(dir string) {
	matches, _ := filepath.Glob(filepath.Join(dir, "*"))
	for _, m := range matches {
		_ = lab.ToolCmd(context.Background(), "ssh", "-O", "exit", "-o", "ControlPath="+m, "x").Run()
	}
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
	s := sorted(ds)
	return s[len(s)/2]
}

func sorted(ds []time.Duration) []time.Duration {
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s
}

func secs(d time.Duration) string { return fmt.Sprintf("%.3f s", d.Seconds()) }

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func cpu(ru *syscall.Rusage) time.Duration {
	if ru == nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func list(ds []time.Duration) string {
	var s []string
	for _, d := range ds {
		s = append(s, fmt.Sprintf("%.2f", d.Seconds()))
	}
	return strings.Join(s, " ")
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

// pairedRatio is the median of num[i]/den[i]: each run against the
// measurement taken right beside it, which shares its moment's load.
func pairedRatio(num, den []time.Duration) float64 {
	var r []float64
	for i := range min(len(num), len(den)) {
		r = append(r, num[i].Seconds()/den[i].Seconds())
	}
	if len(r) == 0 {
		return 0
	}
	slices.Sort(r)
	return r[len(r)/2]
}
