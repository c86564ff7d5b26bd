package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/hoctl/hoctl/internal/lab"
	"github.com/hoctl/hoctl/pkg/tasks"
)

// labSuite: the real cluster (the seed's hosts as systemd-nspawn
// machines, real Consul, Nomad, nfs-ganesha and Nix) booted from the
// cache `runs` times: the whole cluster and each stage of it; the memory
// of the last one, by machine and by service; and on it, the NFS
// unavailability window of a planned failover (and back) as a client
// sees it, reading the export over real NFSv4 every 100 ms.
func (h *harness) labSuite(ctx context.Context, net, runs int) error {
	cache, err := lab.CacheDir()
	if err != nil {
		return err
	}
	start := time.Now()
	parts, err := lab.EnsureCache(ctx, cache, os.Stderr)
	if err != nil {
		return err
	}
	cacheCheck := time.Since(start)
	hosts, groups := lab.SeedHosts()
	// hoctl on every machine: replication runs its dir primitive there,
	// and the NFS hosts run its guard, as an operator's hosts do.
	self, err := filepath.Abs(h.cfg.hoctl)
	if err != nil {
		return err
	}
	cfg := lab.Config{Dir: labDir("machines", net, -1), Net: net, Hosts: hosts, Groups: groups, DiskSize: 512 << 20, ConnectTimeout: 5 * time.Second, Parts: parts, Hoctl: self}
	var boots []lab.BootTimes
	var l *lab.Lab
	for i := 0; i < runs; i++ {
		if l != nil {
			if err := l.Stop(); err != nil {
				return err
			}
		}
		if l, err = lab.Start(ctx, cfg); err != nil {
			return err
		}
		boots = append(boots, l.Boot)
	}
	defer func() { _ = l.Stop() }()

	fmt.Printf("#### The real cluster: boot from the cache (%d machines on 127.0.%d.x: zippy, c1-c3, fractal, sunny, chilly)\n\n", len(hosts), net)
	fmt.Printf("The cache's sha256 check before booting (rootfs tree, Consul, Nomad): %s. Then `lab.Start`, %d times:\n\n", secs(cacheCheck), runs)
	fmt.Println("| stage (from the start of lab.Start) | median | runs |")
	fmt.Println("|---|---|---|")
	stage := func(name string, f func(lab.BootTimes) time.Duration) {
		var ds []time.Duration
		for _, b := range boots {
			ds = append(ds, f(b))
		}
		fmt.Printf("| %s | %s | %s |\n", name, secs(median(ds)), list(ds))
	}
	var sshd []time.Duration
	for _, b := range boots {
		for _, d := range b.Sshd {
			sshd = append(sshd, d)
		}
	}
	sort.Slice(sshd, func(i, j int) bool { return sshd[i] < sshd[j] })
	fmt.Printf("| one machine, its nspawn started → its sshd answers (all %d boots) | %s | min %.2f, max %.2f |\n", len(sshd), secs(median(sshd)), sshd[0].Seconds(), sshd[len(sshd)-1].Seconds())
	stage("every machine prepared (layers, keys, btrfs images) and its sshd answering", func(b lab.BootTimes) time.Duration { return b.AllSshd })
	stage("Consul leader elected (c1-c3 servers)", func(b lab.BootTimes) time.Duration { return b.ConsulLeader })
	stage("NFS served (owner key written, zippy's nfs-server.service started)", func(b lab.BootTimes) time.Duration { return b.NFSServed })
	stage("Nomad leader and all 4 clients ready", func(b lab.BootTimes) time.Duration { return b.NomadReady })
	stage("every machine's first Nix system generation installed", func(b lab.BootTimes) time.Duration { return b.Systems })
	stage("**whole cluster** (lab.Start returns)", func(b lab.BootTimes) time.Duration { return b.Total })
	fmt.Println()

	h.labMemory(l)
	return h.failoverWindow(ctx, l, runs)
}

// labMemory prints the PSS of the lab: in all, per machine, per service.
func (h *harness) labMemory(l *lab.Lab) {
	perHost := map[string]int64{}
	perPart := map[string][]int64{}
	var total int64
	for _, m := range l.Memory() {
		perHost[m.Host] += m.PSS
		total += m.PSS
		part := m.Part
		if hasRole(l, m.Host, "quorum") && (part == "consul.service" || part == "nomad.service") {
			part += " (server)"
		} else if part == "consul.service" || part == "nomad.service" {
			part += " (client)"
		}
		perPart[part] = append(perPart[part], m.PSS)
	}
	mib := func(b int64) string { return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20)) }
	fmt.Printf("#### The real cluster: memory (PSS, after boot, idle)\n\n")
	fmt.Printf("Whole lab: **%s** (every process in the lab's cgroups: the machines and their nspawn supervisors).\n\n", mib(total))
	fmt.Println("| machine | PSS |")
	fmt.Println("|---|---|")
	for _, hst := range l.Hosts {
		fmt.Printf("| %s (%s) | %s |\n", hst.Name, strings.Join(roles(l, hst.Name), ", "), mib(perHost[hst.Name]))
	}
	fmt.Println()
	fmt.Println("| service (systemd unit in each machine) | machines | PSS each (median) | in all |")
	fmt.Println("|---|---|---|---|")
	var names []string
	for k := range perPart {
		names = append(names, k)
	}
	sort.Slice(names, func(i, j int) bool { return sum(perPart[names[i]]) > sum(perPart[names[j]]) })
	for _, k := range names {
		v := append([]int64(nil), perPart[k]...)
		sort.Slice(v, func(i, j int) bool { return v[i] < v[j] })
		fmt.Printf("| %s | %d | %s | %s |\n", k, len(v), mib(v[len(v)/2]), mib(sum(v)))
	}
	fmt.Println()
}

func sum(v []int64) int64 {
	var s int64
	for _, x := range v {
		s += x
	}
	return s
}

func roles(l *lab.Lab, host string) []string {
	data, err := os.ReadFile(l.Inventory)
	if err != nil {
		return nil
	}
	for _, line := range strings.Split(string(data), "\n") {
		if strings.HasPrefix(line, "  "+host+": ") {
			if i := strings.Index(line, "roles: ["); i >= 0 {
				return strings.Split(line[i+len("roles: ["):strings.Index(line[i:], "]")+i], ", ")
			}
		}
	}
	return nil
}

func hasRole(l *lab.Lab, host, role string) bool {
	for _, r := range roles(l, host) {
		if r == role {
			return true
		}
	}
	return false
}

// nfsRead is one client read of the export.
type nfsRead struct {
	at   time.Time // when it started
	ok   bool      // the file's content, from the host the owner key named
	host string
}

// failoverWindow measures, runs times, `hoctl --yes failover --to c1` and
// back while a client reads a file of the export every 100 ms, each time
// from the host the Consul owner key names, with a fresh nfs-cat (libnfs
// does not reconnect). The window is from the start of the last good read
// before the failover's outage to the start of the first good read after.
func (h *harness) failoverWindow(ctx context.Context, l *lab.Lab, runs int) error {
	state := filepath.Join(h.dir, "labstate")
	env := []string{"HOCTL_INVENTORY=" + l.Inventory, "XDG_STATE_HOME=" + state}
	consul := fmt.Sprintf("http://%s:%d", l.Host("c1").Addr, lab.ConsulPort)
	const file, want = "hello", "hello from zippy\n"
	type result struct {
		bin    string // "" for -hoctl, else -baseline
		to     string
		window time.Duration
		failed int
		reads  int
		total  time.Duration
		steps  []stepTime
		outage [2]time.Time
		// The other clients (failoverclients.go): one that opens new
		// files, one that holds a file open and writes.
		opener, writer time.Duration
		lost           int
		// When each client succeeded again after its longest gap, and
		// when the sticky reader's gap began: for the timeline.
		openerBack, writerBack, writerGap time.Time
		sticky                            [2]time.Time
		stickyWindow                      time.Duration
	}
	var results []result
	writerBin, err := buildNFSWriter(ctx, h.dir)
	if err != nil {
		return err
	}
	small := filepath.Join(h.dir, "opener-file")
	if err := os.WriteFile(small, []byte("a new file\n"), 0o644); err != nil {
		return err
	}
	const writerFile = "bench-writer"
	var nextRecord int64
	// With -baseline, each run fails over there and back with both
	// builds, the first of them alternating from run to run.
	bins := []string{h.cfg.hoctl}
	if h.cfg.baseline != "" {
		bins = append(bins, h.cfg.baseline)
	}
	binName := func(bin string) string {
		if bin == h.cfg.hoctl {
			return "-hoctl " + bin
		}
		return "-baseline " + bin
	}
	type job struct{ bin, to string }
	for i := 0; i < runs; i++ {
		var jobs []job
		for k := range bins {
			bin := bins[(i+k)%len(bins)]
			jobs = append(jobs, job{bin, "c1"}, job{bin, "zippy"})
		}
		for _, jb := range jobs {
			to, hoctl := jb.to, jb.bin
			// The seed's timer replicates every 5 minutes: the final sync
			// carries what changed since, not the whole service.
			if _, _, err := h.timeCmd(env, hoctl, "--yes", "replicate", "--name", "services"); err != nil {
				return err
			}
			rctx, stop := context.WithCancel(ctx)
			var mu sync.Mutex
			var reads []nfsRead
			var wg sync.WaitGroup
			opener := runOpener(rctx, &wg, l, consul, small, fmt.Sprintf("opener-%d-%s", i, to))
			wr := runWriter(rctx, &wg, l, consul, writerBin, writerFile, nextRecord)
			sticky := runStickyReader(rctx, &wg, l, consul, file, want)
			wg.Add(1)
			go func() {
				defer wg.Done()
				tick := time.NewTicker(100 * time.Millisecond)
				defer tick.Stop()
				var inflight sync.WaitGroup
				defer inflight.Wait()
				for {
					select {
					case <-rctx.Done():
						return
					case <-tick.C:
					}
					inflight.Add(1)
					go func() {
						defer inflight.Done()
						r := readExport(l, consul, file, want)
						mu.Lock()
						reads = append(reads, r)
						mu.Unlock()
					}()
				}
			}()
			time.Sleep(time.Second) // good reads before
			d, _, err := h.timeCmd(env, hoctl, "--yes", "failover", "--to", to)
			var exit *exec.ExitError
			switch {
			case errors.As(err, &exit) && exit.ExitCode() == 5:
				// The new primary serves, and a client's remount was not
				// verified (a server in its grace period outlasts the
				// lab's mount retries): the windows are still measured.
				fmt.Fprintf(os.Stderr, "bench: failover --to %s: exit 5 (changed, not verified): measuring on\n", to)
			case err != nil:
				stop()
				wg.Wait()
				return err
			}
			// Read on until every client succeeded after the failover (at
			// most 150 s: the server's whole grace period, 90 s, fits).
			ended := time.Now()
			for deadline := ended.Add(150 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
				mu.Lock()
				n := len(reads)
				good := n > 0 && reads[n-1].ok && reads[n-1].at.After(ended)
				mu.Unlock()
				if good && opener.okAfter(ended) && wr.okAfter(ended) && sticky.okAfter(ended) {
					break
				}
			}
			stop()
			wg.Wait()
			// A client that never succeeded after the failover is said,
			// and its window left out; the other clients' figures stand.
			if !opener.okAfter(ended) {
				fmt.Fprintf(os.Stderr, "bench: failover --to %s: the opener created no file within 150 s after it; its last failure: %s\n", to, opener.last())
			}
			if !wr.okAfter(ended) {
				fmt.Fprintf(os.Stderr, "bench: failover --to %s: the writer wrote nothing within 150 s after it; its last failure: %s\n", to, wr.last())
			}
			nextRecord = wr.next
			lost, err := wr.lost(ctx, l, consul, writerFile)
			if err != nil {
				return err
			}
			sort.Slice(reads, func(a, b int) bool { return reads[a].at.Before(reads[b].at) })
			res := result{bin: binName(hoctl), to: to, total: d, reads: len(reads), opener: opener.window(), writer: wr.window(), lost: lost}
			_, res.openerBack = opener.gap()
			res.writerGap, res.writerBack = wr.gap()
			res.sticky[0], res.sticky[1] = sticky.gap()
			res.stickyWindow = sticky.window()
			if !opener.okAfter(ended) {
				res.opener = -1
			}
			if !wr.okAfter(ended) {
				res.writer = -1
			}
			var lastGood, firstBad time.Time
			for _, r := range reads {
				if !r.ok {
					res.failed++
					if firstBad.IsZero() || firstBad.Before(lastGood) {
						firstBad = r.at
					}
					continue
				}
				if !lastGood.IsZero() && r.at.Sub(lastGood) > res.window {
					res.window = r.at.Sub(lastGood)
					// What the steps are measured against: from the
					// first failed read to the first good one after.
					res.outage = [2]time.Time{firstBad, r.at}
				}
				lastGood = r.at
			}
			if lastGood.Before(ended) {
				return fmt.Errorf("failover --to %s: no good read of the export within 30 s after it ended", to)
			}
			if res.steps, err = journalSteps(state); err != nil {
				return err
			}
			results = append(results, res)
		}
	}

	fmt.Printf("#### The real cluster: NFS unavailability of a planned failover\n\n")
	fmt.Printf("A client reads `%s` of the export over NFSv4 every 100 ms (`nfs-cat 'nfs://ADDR%s/%s?version=4'`, a fresh process and connection each time, ADDR the host the Consul owner key names at that moment), while `hoctl --yes failover --to HOST` runs, each time right after a `hoctl --yes replicate --name services` (as the seed's 5-minute timer leaves it). Window: from the start of the last good read before the outage to the start of the first good read after. Goal ≤ 2 s (the seed's manual runbook takes minutes).\n\n", file, lab.NFSExport, file)
	fmt.Println("| hoctl | failover | reader's window (median) | windows | failover's wall time (median) | failed reads (median) | sticky reader's window (median) | windows |")
	fmt.Println("|---|---|---|---|---|---|---|---|")
	for _, bin := range bins {
		for _, to := range []string{"c1", "zippy"} {
			var ws, ts, fs, ss []time.Duration
			for _, r := range results {
				if r.to == to && r.bin == binName(bin) {
					ws, ts, fs, ss = append(ws, r.window), append(ts, r.total), append(fs, time.Duration(r.failed)), append(ss, r.stickyWindow)
				}
			}
			fmt.Printf("| %s | %s | **%s** | %s | %s | %d | **%s** | %s |\n", binName(bin), direction(to), secs(median(ws)), list(ws), secs(median(ts)), int(median(fs)), secs(median(ss)), list(ss))
		}
	}
	fmt.Println()
	fmt.Println("The sticky reader reads the same file every 100 ms from the host it last read it from, and asks the owner key only when a read fails: a client that keeps its mount until it fails, then remounts at once.")
	fmt.Println()
	// Each failover's timeline, from the fence step's start (the owner
	// key's move): the steps on the outage's path, and each client's
	// return.
	fmt.Println("Timeline of each failover, seconds from the fence step's start (the owner key moves at its beginning): when the old primary had stopped (the fence step's end), the send, the promote and the start ended; when each client read or wrote again; the sticky reader's and the writer's gap as from–to; and when hoctl's remount of the clients' mount units ended (a kernel client's hard mount of the old primary's address reads again only then):")
	fmt.Println()
	fmt.Println("| hoctl | failover | stopped | sent | promoted | started | reader back | opener back | sticky reader | writer | remounted |")
	fmt.Println("|---|---|---|---|---|---|---|---|---|---|---|")
	for _, r := range results {
		t0 := stepEnd(r.steps, "fence ", false)
		rel := func(t time.Time) string {
			if t.IsZero() || t0.IsZero() {
				return "-"
			}
			return fmt.Sprintf("%.2f", t.Sub(t0).Seconds())
		}
		fmt.Printf("| %s | %s | %s | %s | %s | %s | %s | %s | %s–%s | %s–%s | %s |\n", r.bin, direction(r.to),
			rel(stepEnd(r.steps, "fence ", true)), rel(stepEnd(r.steps, "final sync: send", true)), rel(stepEnd(r.steps, "promote ", true)), rel(stepEnd(r.steps, "start ", true)),
			rel(r.outage[1]), rel(r.openerBack), rel(r.sticky[0]), rel(r.sticky[1]), rel(r.writerGap), rel(r.writerBack), rel(stepEnd(r.steps, "remount ", true)))
	}
	fmt.Println()
	fmt.Printf("The same failovers, as two more clients saw them: one creates a new file every 100 ms (`nfs-cp` to a new name: an OPEN with CREATE), one holds `%s` open and appends a record every 50 ms, each written and committed (bench/nfswriter, libnfs; it starts again on the owner key's host when a call fails, as after a remount). Window: the longest gap between two successes. Lost: records the writer had acknowledged (committed) that the file, read back from the new primary, lacks. ganesha runs with its own grace period and lease (90 s, 60 s).\n\n", writerFile)
	fmt.Println("| hoctl | failover | opener's window (median) | windows | writer's window (median) | windows | acknowledged writes lost |")
	fmt.Println("|---|---|---|---|---|---|---|")
	for _, bin := range bins {
		for _, to := range []string{"c1", "zippy"} {
			var os, ws []time.Duration
			lost := 0
			for _, r := range results {
				if r.to == to && r.bin == binName(bin) {
					os, ws = append(os, r.opener), append(ws, r.writer)
					lost += r.lost
				}
			}
			fmt.Printf("| %s | %s | **%s** | %s | **%s** | %s | %d |\n", binName(bin), direction(to), clientSecs(median(os)), clientList(os), clientSecs(median(ws)), clientList(ws), lost)
		}
	}
	fmt.Println()
	// Where the time goes: each step's median duration, and which steps
	// the outage spans.
	fmt.Println("Where the time goes (the failover's journal, median over all runs of both directions of -hoctl's build; ◆: the step overlaps the outage, from the first failed read to the first good one after, in most runs):")
	fmt.Println()
	fmt.Println("| step | median |")
	fmt.Println("|---|---|")
	byStep := map[int][]time.Duration{}
	inOutage := map[int]int{}
	titles := map[int]string{}
	for _, r := range results {
		if r.bin != binName(h.cfg.hoctl) {
			continue // the builds' steps need not be the same
		}
		for _, s := range r.steps {
			byStep[s.n] = append(byStep[s.n], s.end.Sub(s.start))
			if _, ok := titles[s.n]; !ok {
				titles[s.n] = genericTitle(s.title)
			}
			if s.end.After(r.outage[0]) && s.start.Before(r.outage[1]) {
				inOutage[s.n]++
			}
		}
	}
	var ns []int
	for n := range byStep {
		ns = append(ns, n)
	}
	sort.Ints(ns)
	for _, n := range ns {
		mark := ""
		if 2*inOutage[n] > len(results)/len(bins) {
			mark = " ◆"
		}
		fmt.Printf("| %d. %s%s | %s |\n", n, titles[n], mark, secs(median(byStep[n])))
	}
	fmt.Println()
	return nil
}

// stepEnd is when the first step whose title starts with prefix ended
// (end) or started.
func stepEnd(steps []stepTime, prefix string, end bool) time.Time {
	for _, s := range steps {
		if strings.HasPrefix(s.title, prefix) {
			if end {
				return s.end
			}
			return s.start
		}
	}
	return time.Time{}
}

// clientSecs is a client's window; negative: it never succeeded after
// the failover (within 150 s).
func clientSecs(d time.Duration) string {
	if d < 0 {
		return "none within 150 s"
	}
	return secs(d)
}

func clientList(ds []time.Duration) string {
	var s []string
	for _, d := range ds {
		if d < 0 {
			s = append(s, "none")
			continue
		}
		s = append(s, fmt.Sprintf("%.2f", d.Seconds()))
	}
	return strings.Join(s, " ")
}

func direction(to string) string {
	if to == "zippy" {
		return "c1 → zippy (back)"
	}
	return "zippy → c1"
}

// genericTitle names a step without its hosts, so both directions share it.
func genericTitle(t string) string {
	r := strings.NewReplacer("zippy", "OLD/NEW", "c1", "OLD/NEW")
	return r.Replace(t)
}

func readExport(l *lab.Lab, consul, file, want string) nfsRead {
	r := nfsRead{at: time.Now()}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, consul+"/v1/kv/"+lab.NFSOwnerKey+"?raw", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return r
	}
	owner, _ := io.ReadAll(io.LimitReader(resp.Body, 256))
	_ = resp.Body.Close()
	r.host = string(owner)
	h := l.Host(r.host)
	if resp.StatusCode != http.StatusOK || h == nil {
		return r
	}
	out, err := lab.ToolCmd(ctx, "nfs-cat", fmt.Sprintf("nfs://%s%s/%s?version=4", h.Addr, lab.NFSExport, file)).Output()
	r.ok = err == nil && string(out) == want
	return r
}

type stepTime struct {
	n          int
	title      string
	start, end time.Time
}

// journalSteps reads the steps of the newest run journaled in state.
func journalSteps(state string) ([]stepTime, error) {
	runs, err := filepath.Glob(filepath.Join(state, "hoctl", "runs", "*.jsonl"))
	if err != nil || len(runs) == 0 {
		return nil, fmt.Errorf("no journal under %s", state)
	}
	sort.Strings(runs)
	f, err := os.Open(runs[len(runs)-1])
	if err != nil {
		return nil, err
	}
	defer func() { _ = f.Close() }()
	var steps []stepTime
	at := map[int]int{}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var r tasks.Record
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			return nil, err
		}
		switch r.Type {
		case "step_start":
			at[r.Step] = len(steps)
			steps = append(steps, stepTime{n: r.Step, title: r.Title, start: r.Time})
		case "step_end":
			if i, ok := at[r.Step]; ok {
				steps[i].end = r.Time
			}
		}
	}
	return steps, sc.Err()
}
