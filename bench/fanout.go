package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/hoctl/hoctl/internal/lab"
	"github.com/hoctl/hoctl/pkg/sshexec"
)

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
			before := settledSSHDCPU(h.lab.Hosts)
			d, ru, err := h.timeCmd(nil, h.cfg.hoctl, "run", v.target, "--", "hostname")
			if err != nil {
				return err
			}
			r.sshdCPU = append(r.sshdCPU, settledSSHDCPU(h.lab.Hosts)-before)
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

// settledSSHDCPU is sshdCPU of hosts once it stops changing (their
// listeners have reaped every finished session), waiting at most 5 s.
func settledSSHDCPU(hosts []*lab.Host) time.Duration {
	last := sshdCPU(hosts)
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); {
		time.Sleep(150 * time.Millisecond)
		cur := sshdCPU(hosts)
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

// sshdCPU sums user+system time of the hosts' sshd listeners and their
// reaped children (the per-connection sshd processes and the commands
// they ran).
func sshdCPU(hosts []*lab.Host) time.Duration {
	tick := 100.0 // USER_HZ on Linux
	var total float64
	for _, host := range hosts {
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
