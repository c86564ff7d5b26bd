// Package e2e runs the built hoctl binary against the lab (internal/lab):
// real sshd processes in their own namespaces on loopback addresses, and
// the real cluster's machines. Its groups of tests run at once, each in a
// process of its own (groups_test.go).
package e2e

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hoctl/hoctl/internal/lab"
)

var (
	hoctlBin string
	fleet    *lab.Lab
	// storage is zippy and c1 with real btrfs /persist, for replication.
	storage *lab.Lab
)

const fleetSize = 20

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	flag.Parse()
	if listing() {
		return m.Run() // a list boots nothing
	}
	if err := lab.Check(); err != nil {
		if os.Getenv("CI") == "true" {
			fmt.Fprintln(os.Stderr, "FAIL: lab tests must run in CI:", err)
			return 1
		}
		fmt.Fprintln(os.Stderr, "SKIP: lab tests need root, sshd and btrfs-progs:", err)
		return 0
	}
	// HOCTL_E2E_NET moves every lab of this run to 127.0.<N> and up (and
	// its own /tmp dirs), so that two checkouts can run their end-to-end
	// tests at once without sharing an address or a directory; each group
	// (groups_test.go) takes the next 8 blocks.
	base, err := e2eNetBase()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if hoctlBin = os.Getenv(binEnv); hoctlBin == "" {
		tmp, err := os.MkdirTemp("", "hoctl-e2e-bin")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		defer func() { _ = os.RemoveAll(tmp) }()
		hoctlBin = filepath.Join(tmp, "hoctl")
		_, file, _, _ := runtime.Caller(0)
		root := filepath.Dir(filepath.Dir(file))
		build := lab.ToolCmd(context.Background(), "go", "build", "-o", hoctlBin, "./cmd/hoctl")
		build.Dir = root
		if out, err := build.CombinedOutput(); err != nil {
			fmt.Fprintf(os.Stderr, "building hoctl: %v\n%s", err, out)
			return 1
		}
	}
	if os.Getenv(groupEnv) == "" {
		return runGroups(base)
	}
	// This process's labs go down at its end, and on SIGINT or SIGTERM
	// (Ctrl-C, or the parent's) without waiting for the running test.
	defer labs.stopAll()
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	// A parent that died (its SIGTERM) left a broken pipe: a write to
	// it must fail, not kill this process before its teardown.
	signal.Notify(make(chan os.Signal, 1), syscall.SIGPIPE)
	go func() {
		s := <-sig
		labs.stopAll()
		fmt.Fprintf(os.Stderr, "%v: the labs are torn down\n", s)
		os.Exit(1)
	}()
	hosts, groups := lab.NumberedHosts("h", fleetSize)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	fleet, err = labs.start(ctx, lab.Config{Dir: labDir(base, "fleet"), Net: base, Hosts: hosts, Groups: groups, ConnectTimeout: 2 * time.Second})
	if err != nil {
		fmt.Fprintln(os.Stderr, "starting lab:", err)
		return 1
	}
	seed, _ := lab.SeedHosts()
	storage, err = labs.start(ctx, lab.Config{Dir: labDir(base, "storage"), Net: base + 2, Hosts: seed[:2], DiskSize: 512 << 20,
		Groups: map[string][]string{"cattle": {"c1"}}, ConnectTimeout: 5 * time.Second}) // no hang tests here: room for a loaded machine
	if err != nil {
		fmt.Fprintln(os.Stderr, "starting the storage lab:", err)
		return 1
	}
	// Replication runs hoctl's dir primitive on both hosts
	// (docs/replicate.md, "hoctl on the hosts"): each storage host's own
	// bin/ is first on its PATH.
	for _, h := range storage.Hosts {
		if err := os.Symlink(hoctlBin, filepath.Join(h.Dir, "bin", "hoctl")); err != nil {
			fmt.Fprintln(os.Stderr, "hoctl on the storage hosts:", err)
			return 1
		}
	}
	return m.Run()
}

// labs are the labs this test process booted.
var labs labSet

// labSet tears down every lab it started, once: at the end of TestMain,
// or at once on a signal while a test still runs.
type labSet struct {
	mu      sync.Mutex
	labs    []*lab.Lab
	stopped bool
}

// start boots a lab and records it; after stopAll it boots none.
func (s *labSet) start(ctx context.Context, cfg lab.Config) (*lab.Lab, error) {
	l, err := lab.Start(ctx, cfg)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopped {
		_ = l.Stop()
		return nil, fmt.Errorf("%s: the test process is stopping", cfg.Dir)
	}
	s.labs = append(s.labs, l)
	return l, nil
}

// mountNamespaces are this machine's own mount namespace and those of
// the hosts of the labs s started (a namespace host's wrapper, unshare
// --mount, is in its host's).
func (s *labSet) mountNamespaces() map[string]bool {
	own := map[string]bool{}
	if ns, err := os.Readlink("/proc/self/ns/mnt"); err == nil {
		own[ns] = true
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, l := range s.labs {
		for _, h := range l.Hosts {
			if ns, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/mnt", h.Pid)); err == nil {
				own[ns] = true
			}
		}
	}
	return own
}

func (s *labSet) stopAll() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stopped = true
	for i := len(s.labs) - 1; i >= 0; i-- {
		if err := s.labs[i].Stop(); err != nil {
			fmt.Fprintf(os.Stderr, "lab teardown %s: %v\n", s.labs[i].Dir, err)
		}
	}
	s.labs = nil
}

// e2eNetBase is HOCTL_E2E_NET, 2 by default.
func e2eNetBase() (int, error) {
	v := os.Getenv("HOCTL_E2E_NET")
	if v == "" {
		return 2, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 || n > 250 {
		return 0, fmt.Errorf("HOCTL_E2E_NET=%q: want a number from 1 to 250 (a group's labs use 127.0.N to N+7)", v)
	}
	return n, nil
}

// result is one hoctl invocation.
type result struct {
	code     int
	stdout   string
	stderr   string
	duration time.Duration
}

// hoctl runs the binary against inventory inv.
func hoctl(t *testing.T, inv string, args ...string) result {
	t.Helper()
	return hoctlEnv(t, inv, nil, args...)
}

// hoctlEnv is hoctl with extra environment variables.
func hoctlEnv(t *testing.T, inv string, env []string, args ...string) result {
	t.Helper()
	return hoctlIn(t, inv, nil, env, args...)
}

// hoctlIn is hoctlEnv with stdin (nil: /dev/null).
func hoctlIn(t *testing.T, inv string, stdin io.Reader, env []string, args ...string) result {
	t.Helper()
	// A hung hoctl fails its test with what it printed, not the whole
	// binary with a stack dump.
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, hoctlBin, args...)
	cmd.WaitDelay = 5 * time.Second
	cmd.Env = append(append(os.Environ(), "HOCTL_INVENTORY="+inv, "NO_COLOR=1", "SSH_AUTH_SOCK="), env...)
	// A session of its own, without a controlling terminal: hoctl asks
	// on /dev/tty, and must not find the terminal the tests run in.
	// Killed with the test process, whatever ends it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Pdeathsig: syscall.SIGKILL}
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	cmd.Stdin = stdin
	start := time.Now()
	err := cmd.Run()
	r := result{stdout: out.String(), stderr: errOut.String(), duration: time.Since(start)}
	t.Logf("hoctl %v: %s", args, r.duration.Round(time.Millisecond))
	if ctx.Err() != nil {
		t.Fatalf("hoctl %v did not finish in 2 minutes:\n%s%s", args, r.stdout, r.stderr)
	}
	if ee, ok := err.(*exec.ExitError); ok {
		r.code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("hoctl %v: %v", args, err)
	}
	return r
}
