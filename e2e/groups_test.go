package e2e

// The suite in groups: `go test ./e2e` starts one test process per group,
// all at once, each on its own address block and with its own labs, and
// reports the slowest tests. A group is a set of test files; the tests of
// one file run in one process, in their order, on one lab. The first
// group takes every file no other group names, so a new file runs
// somewhere without being listed.
//
// HOCTL_E2E_GROUP=NAME runs the tests in this one process instead (on
// HOCTL_E2E_NET itself; the parent sets it for each group it starts).

import (
	"bufio"
	"bytes"
	"context"
	"flag"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/hoctl/hoctl/internal/lab"
)

// group is a set of test files run in one process on one block: the
// tests that change a booted cluster in ways the next test must undo run
// one after another on it; tests that only read a cluster share it.
type group struct {
	name  string
	files []string // none: every file that no other group names
}

// groups are started in this order; group i uses block HOCTL_E2E_NET+8i.
// The real cluster's tests are split by what they change, so that each
// group's cluster goes from one test to the next as its tests expect:
// failover moves the NFS service (its order is kept: a test's clean-up
// leaves what the next expects); the guards' tests freeze, partition and
// restart zippy; deploy switches generations and drains nodes; the
// timer's tests run units on zippy, beside the tests that mostly read
// the cluster (status, the contracts, the cluster lock, jobs). A test
// that starts from nfsStart puts the NFS service back as the lab started
// it, before and after, so it can join any group with a real cluster.
// The namespace labs' tests (every group's process boots the fleet and
// the storage lab) fill the groups without one. The groups are balanced
// by the time their tests took (docs/lab.md, "The end-to-end suite").
var groups = []group{
	{name: "fleet"}, // with deploy's, the lease floor's and the guard's slow start: every file not named below
	{name: "failover", files: []string{"failover_test.go", "failover_recovery_test.go"}},
	{name: "guard", files: []string{"guard_test.go", "guard_enforce_test.go", "partition_test.go", "guard_slowfence_test.go", "guard_killed_test.go"}},
	{name: "cluster", files: []string{"machines_test.go", "contract_test.go", "status_test.go", "clusterlock_test.go", "jobs_test.go", "timer_test.go", "runbook_phase3_test.go", "apis_test.go",
		"replicate_lock_test.go"}},
	{name: "storage", files: []string{"replicate_test.go", "replicate_transport_test.go", "dirsafe_test.go", "hostops_test.go", "security_test.go",
		"retention_test.go", "receivefilter_test.go", "streamcheck_test.go", "sendstream_test.go", "snapshots_test.go", "runbook_docs_test.go",
		"hungapi_test.go", "output_test.go", "copy_test.go", "replicate_setuid_test.go"}},
}

// blockWidth is how many 127.0.x blocks one group's labs use: the fleet
// on N, the hung API on N+1, the storage lab on N+2, the real cluster on
// N+6.
const blockWidth = 8

const (
	groupEnv = "HOCTL_E2E_GROUP"
	binEnv   = "HOCTL_E2E_BIN"
)

// labDir is the directory of the lab called name on block n.
func labDir(n int, name string) string {
	if n == 2 { // the default block keeps its historical names
		return "/tmp/hoctl-e2e-" + name
	}
	return fmt.Sprintf("/tmp/hoctl-e2e%d-%s", n, name)
}

// labNames are the labs a test process may boot (labDir's names).
var labNames = []string{"fleet", "storage", "machines"}

// listing reports whether this process only lists tests (-test.list).
func listing() bool {
	f := flag.Lookup("test.list")
	return f != nil && f.Value.String() != ""
}

// testFiles maps each top-level test of the package to its file.
func testFiles(dir string) (map[string]string, error) {
	files, err := filepath.Glob(filepath.Join(dir, "*_test.go"))
	if err != nil {
		return nil, err
	}
	out := map[string]string{}
	fset := token.NewFileSet()
	for _, f := range files {
		af, err := parser.ParseFile(fset, f, nil, parser.SkipObjectResolution)
		if err != nil {
			return nil, err
		}
		for _, d := range af.Decls {
			if fd, ok := d.(*ast.FuncDecl); ok && fd.Recv == nil && strings.HasPrefix(fd.Name.Name, "Test") && fd.Name.Name != "TestMain" {
				out[fd.Name.Name] = filepath.Base(f)
			}
		}
	}
	return out, nil
}

// groupOf is the group index of a test file.
func groupOf(file string) int {
	for i, g := range groups {
		for _, f := range g.files {
			if f == file {
				return i
			}
		}
	}
	return 0
}

// groupRun is one group's test process and what it printed.
type groupRun struct {
	group
	block   int
	tests   []string // selected, in no particular order
	out     bytes.Buffer
	log     string
	err     error
	wall    time.Duration
	results []testResult
	left    []string // what its labs left behind
}

type testResult struct {
	name, status string
	took         time.Duration
}

// runGroups is TestMain in the parent: it starts a test process per
// group that has a selected test, waits for all of them, tears down
// whatever a process's labs left (a process that panicked or was killed
// cannot), and prints each group's output and the slowest tests.
func runGroups(base int) int {
	_, file, _, _ := runtime.Caller(0)
	dir := filepath.Dir(file)
	if last := base + blockWidth*len(groups) - 1; last > 255 {
		fmt.Fprintf(os.Stderr, "HOCTL_E2E_NET=%d: %d groups of %d blocks end past 127.0.255 (take %d at most)\n", base, len(groups), blockWidth, 256-blockWidth*len(groups))
		return 1
	}
	where, err := testFiles(dir)
	if err != nil {
		fmt.Fprintln(os.Stderr, "reading the tests:", err)
		return 1
	}
	names, err := listTests()
	if err != nil {
		fmt.Fprintln(os.Stderr, "listing the tests:", err)
		return 1
	}
	runs := make([]*groupRun, len(groups))
	for i, g := range groups {
		runs[i] = &groupRun{group: g, block: base + blockWidth*i,
			log: filepath.Join(os.TempDir(), fmt.Sprintf("hoctl-e2e%d-%s.log", base+blockWidth*i, g.name))}
	}
	for _, n := range names {
		f, ok := where[n]
		if !ok {
			continue // an example or benchmark: not this runner's
		}
		runs[groupOf(f)].tests = append(runs[groupOf(f)].tests, n)
	}
	var started []*groupRun
	for _, r := range runs {
		if len(r.tests) > 0 {
			started = append(started, r)
		}
	}
	if len(started) == 0 {
		fmt.Println("testing: warning: no tests to run")
		fmt.Println("PASS")
		return 0
	}
	start := time.Now()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	// HOCTL_E2E_JOBS bounds how many groups run at once (all by
	// default): the machine's cores are shared by every group's labs.
	jobs := len(started)
	if v := os.Getenv("HOCTL_E2E_JOBS"); v != "" {
		if jobs, err = strconv.Atoi(v); err != nil || jobs < 1 {
			fmt.Fprintf(os.Stderr, "HOCTL_E2E_JOBS=%q: want a number of groups, 1 or more\n", v)
			return 1
		}
	}
	slots := make(chan struct{}, jobs)
	var wg sync.WaitGroup
	for _, r := range started {
		wg.Add(1)
		go func() {
			defer wg.Done()
			slots <- struct{}{}
			defer func() { <-slots }()
			if ctx.Err() != nil {
				r.err = ctx.Err() // interrupted before it started
				return
			}
			r.run(ctx, where)
		}()
	}
	wg.Wait()
	failed := ctx.Err() != nil
	for _, r := range started {
		if r.err != nil || len(r.left) > 0 {
			failed = true
		}
		r.print(os.Stdout)
	}
	report := summary(started, base, time.Since(start))
	fmt.Print(report)
	if p := reportPath(base); p != "" {
		if err := os.WriteFile(p, []byte(report), 0o644); err != nil {
			fmt.Fprintln(os.Stderr, err)
		}
	}
	if failed {
		fmt.Println("FAIL")
		return 1
	}
	fmt.Println("PASS")
	return 0
}

// reportPath is where the summary is kept for make test to show (go test
// shows a passing package's output only with -v).
func reportPath(base int) string {
	if p, ok := os.LookupEnv("HOCTL_E2E_REPORT"); ok {
		return p
	}
	return filepath.Join(os.TempDir(), fmt.Sprintf("hoctl-e2e%d-report.txt", base))
}

// listTests lists the top-level tests -test.run selects, by running this
// binary with -test.list (TestMain boots nothing for a list).
func listTests() ([]string, error) {
	pattern := "."
	if f := flag.Lookup("test.run"); f != nil && f.Value.String() != "" {
		// -run's first element selects the top-level tests; the rest,
		// subtests, is the group processes' business.
		pattern = strings.SplitN(f.Value.String(), "/", 2)[0]
	}
	e2eBin := os.Args[0]
	cmd := exec.Command(e2eBin, "-test.list", pattern)
	cmd.Env = append(os.Environ(), groupEnv+"=list")
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, err
	}
	var names []string
	for _, l := range strings.Split(string(out), "\n") {
		if strings.HasPrefix(l, "Test") {
			names = append(names, l)
		}
	}
	return names, nil
}

// childArgs are this process's flags for a group's process: the same,
// but verbose (the parent reads each test's result and duration, and
// prints only the failures' output when it is not verbose itself), with
// the other groups' tests skipped, and without the flags naming files
// that two processes would write at once.
func childArgs(skip []string) []string {
	var args []string
	for _, a := range os.Args[1:] {
		name := strings.TrimLeft(strings.SplitN(a, "=", 2)[0], "-")
		switch name {
		case "test.testlogfile", "test.coverprofile", "test.cpuprofile", "test.memprofile", "test.blockprofile",
			"test.mutexprofile", "test.trace", "test.outputdir", "test.gocoverdir", "test.v", "test.skip":
			continue
		}
		args = append(args, a)
	}
	v := "true"
	if verbose() {
		v = flag.Lookup("test.v").Value.String() // "test2json" under go test -json
	}
	pattern := "^(" + strings.Join(skip, "|") + ")$"
	if len(skip) == 0 {
		pattern = ""
	}
	if f := flag.Lookup("test.skip"); f != nil && f.Value.String() != "" {
		if pattern != "" {
			pattern += "|"
		}
		pattern += f.Value.String()
	}
	args = append(args, "-test.v="+v)
	if pattern != "" {
		args = append(args, "-test.skip="+pattern)
	}
	return args
}

func verbose() bool {
	f := flag.Lookup("test.v")
	return f != nil && f.Value.String() != "false"
}

// run runs the group's process to its end, then tears down whatever its
// labs left.
func (r *groupRun) run(ctx context.Context, where map[string]string) {
	var skip []string
	for n, f := range where {
		if groupOf(f) != indexOf(r.name) {
			skip = append(skip, n)
		}
	}
	sort.Strings(skip)
	e2eBin := os.Args[0] // this test binary, run for the group
	cmd := exec.Command(e2eBin, childArgs(skip)...)
	cmd.Env = append(os.Environ(), groupEnv+"="+r.name, "HOCTL_E2E_NET="+strconv.Itoa(r.block), binEnv+"="+hoctlBin)
	// The group's process tears its labs down on SIGINT or SIGTERM; it
	// gets SIGTERM too if this process dies first.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	logf, err := os.Create(r.log)
	if err != nil {
		r.err = err
		return
	}
	defer func() { _ = logf.Close() }()
	w := io.MultiWriter(&r.out, logf)
	cmd.Stdout, cmd.Stderr = w, w
	start := time.Now()
	if err := cmd.Start(); err != nil {
		r.err = err
		return
	}
	done := make(chan struct{})
	go func() {
		select {
		case <-ctx.Done():
			_ = cmd.Process.Signal(os.Interrupt)
		case <-done:
		}
	}()
	r.err = cmd.Wait()
	close(done)
	r.wall = time.Since(start)
	for _, name := range labNames {
		d := labDir(r.block, name)
		if err := lab.Teardown(d); err != nil {
			r.left = append(r.left, fmt.Sprintf("%s: teardown: %v", d, err))
		}
		for _, l := range lab.Leftovers(d) {
			r.left = append(r.left, d+": "+l)
		}
	}
	r.results = parseResults(r.out.Bytes())
}

func indexOf(name string) int {
	for i, g := range groups {
		if g.name == name {
			return i
		}
	}
	return -1
}

// resultLine is a test's end in -v output ("--- PASS: TestX (1.23s)");
// under test2json each such line starts with a ^V.
var resultLine = regexp.MustCompile(`^\x16?--- (PASS|FAIL|SKIP): (\S+) \(([0-9.]+)s\)`)

func parseResults(out []byte) []testResult {
	var res []testResult
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		m := resultLine.FindStringSubmatch(sc.Text())
		if m == nil || strings.Contains(m[2], "/") {
			continue
		}
		secs, _ := strconv.ParseFloat(m[3], 64)
		res = append(res, testResult{name: m[2], status: m[1], took: time.Duration(secs * float64(time.Second))})
	}
	return res
}

// print writes the group's output: all of it when verbose; otherwise
// what go test would print, the output of the tests that did not pass
// and anything printed outside a test.
func (r *groupRun) print(w io.Writer) {
	status := "ok"
	if r.err != nil {
		status = "FAIL (" + r.err.Error() + ")"
	}
	if verbose() {
		_, _ = w.Write(r.out.Bytes())
	} else {
		passed := map[string]bool{}
		for _, t := range r.results {
			if t.status != "FAIL" {
				passed[t.name] = true
			}
		}
		// -v output of tests that do not run in parallel: a top-level
		// test's lines run from its "=== RUN" to its "--- " line.
		var cur string
		sc := bufio.NewScanner(bytes.NewReader(r.out.Bytes()))
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			line := sc.Text()
			if name, ok := strings.CutPrefix(line, "=== RUN   "); ok && !strings.Contains(name, "/") {
				cur = name
			}
			if cur == "" || !passed[cur] {
				if !strings.HasPrefix(line, "=== ") && line != "PASS" && line != "FAIL" {
					fmt.Fprintln(w, line)
				}
			}
			if m := resultLine.FindStringSubmatch(line); m != nil && m[2] == cur {
				cur = ""
			}
		}
	}
	for _, l := range r.left {
		fmt.Fprintf(w, "group %s left behind: %s\n", r.name, l)
	}
	fmt.Fprintf(w, "group %s (127.0.%d.x, %d tests): %s in %s; log %s\n", r.name, r.block, len(r.tests), status, r.wall.Round(time.Second), r.log)
}

// summary is the table of groups and the slowest tests.
func summary(runs []*groupRun, base int, wall time.Duration) string {
	var b strings.Builder
	fmt.Fprintf(&b, "e2e: %d groups at once from HOCTL_E2E_NET=%d, %s in all\n", len(runs), base, wall.Round(time.Second))
	fmt.Fprintf(&b, "  %-9s %-8s %5s %6s %8s  %s\n", "group", "block", "tests", "failed", "wall", "sum of tests")
	var all []testResult
	group := map[string]string{}
	for _, r := range runs {
		var sum time.Duration
		failed := 0
		for _, t := range r.results {
			sum += t.took
			if t.status == "FAIL" {
				failed++
			}
			all = append(all, t)
			group[t.name] = r.name
		}
		fmt.Fprintf(&b, "  %-9s %-8s %5d %6d %8s  %s\n", r.name, fmt.Sprintf("127.0.%d", r.block), len(r.results), failed, r.wall.Round(time.Second), sum.Round(time.Second))
	}
	sort.Slice(all, func(i, j int) bool { return all[i].took > all[j].took })
	fmt.Fprintf(&b, "slowest tests:\n")
	for _, t := range all[:min(15, len(all))] {
		fmt.Fprintf(&b, "  %7s  %-4s %-9s %s\n", t.took.Round(100*time.Millisecond), t.status, group[t.name], t.name)
	}
	return b.String()
}

// ofAnotherGroup reports whether process pid runs in a real cluster's
// machine other than this process's own (a machine's cgroup is
// hoctl-lab/<its lab's dir, / as _>/<host>; internal/lab machines.go).
func ofAnotherGroup(pid string) bool {
	cg, err := os.ReadFile("/proc/" + pid + "/cgroup")
	if err != nil || !strings.Contains(string(cg), "/hoctl-lab/") {
		return false
	}
	base, _ := e2eNetBase()
	own := "/hoctl-lab/" + strings.ReplaceAll(strings.Trim(labDir(base, "machines"), "/"), "/", "_") + "/"
	return !strings.Contains(string(cg), own)
}
