package e2e

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// hungAPI is a Consul or Nomad that accepts TCP and never answers (a
// frozen server), on its group's spare loopback block N+1 (groups_test.go).
// accepted counts the connections it took.
func hungAPI(t *testing.T) (addr string, accepted func() int) {
	t.Helper()
	base, err := e2eNetBase()
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", fmt.Sprintf("127.0.%d.1:0", base+1))
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var conns []net.Conn
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		_ = ln.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			_ = c.Close()
		}
	})
	return ln.Addr().String(), func() int { mu.Lock(); defer mu.Unlock(); return len(conns) }
}

// hungInventory is the storage lab's inventory (zippy and c1, real SSH)
// with Consul and Nomad both at the hung address, a deploy command, and
// the given connect_timeout and keepalive; and a job directory with a file
// to rewrite.
func hungInventory(t *testing.T, hung, connectTimeout, keepalive string) (inv, jobsDir string) {
	t.Helper()
	inv = labInventory(t, storage,
		"\nreplication:\n", "\nconsul:\n  address: http://"+hung+"\n\nnomad:\n  address: http://"+hung+"\n\nreplication:\n",
		"connect_timeout: 5s", "connect_timeout: "+connectTimeout,
		"keepalive: 4s", "keepalive: "+keepalive,
		"deploy:\n  quorum: quorum\n", "deploy:\n  quorum: quorum\n  command: \"true\"\n")
	jobsDir = t.TempDir()
	job := "job \"web\" {\n  group \"g\" {\n    task \"t\" {\n      driver = \"docker\"\n      config {\n        volumes = [\"/data/compute/web:/srv\"]\n      }\n    }\n  }\n}\n"
	if err := os.WriteFile(filepath.Join(jobsDir, "web.hcl"), []byte(job), 0o644); err != nil {
		t.Fatal(err)
	}
	return inv, jobsDir
}

func hungCommands(t *testing.T, jobsDir string) map[string][]string {
	rb := writeRunbook(t, "name: hung\nlock: hung-scope\ncluster_lock: true\nsteps:\n  - {title: s, hosts: c1, run: 'true'}\n")
	return map[string][]string{
		"status":            {"status"},
		"deploy --dry-run":  {"--dry-run", "deploy", "c1"},
		"failover":          {"--dry-run", "failover", "--to", "c1"},
		"migrate-jobs plan": {"migrate-jobs", "--dir", jobsDir, "--from", "/data/compute", "--to", "/data/services", "--plan"},
		"cluster_lock":      {"--yes", "runbook", "run", rb},
	}
}

// A Consul and a Nomad that accept TCP and never answer: every command
// that asks them fails in bounded time (connect_timeout + keepalive per
// call, status's probes too) with one line naming the
// API, its address and what to check. The ceiling asserted is generous;
// the durations are logged.
func TestHungConsulAndNomadAreBounded(t *testing.T) {
	hung, _ := hungAPI(t)
	inv, jobsDir := hungInventory(t, hung, "1s", "1s")
	env := stateEnv(t)
	for name, args := range hungCommands(t, jobsDir) {
		r := hoctlEnv(t, inv, env, args...)
		if r.duration > 20*time.Second {
			t.Errorf("%s: took %s against a hung API", name, r.duration)
		}
		out := r.stdout + r.stderr
		if r.code == 0 {
			t.Errorf("%s: exit 0 with a hung API\n%s", name, out)
		}
		want := "API at http://" + hung + " did not answer within "
		if name == "status" {
			// status says its own per-probe limit, which ended the call.
			want = "API at http://" + hung + ": no answer within "
		}
		if !strings.Contains(out, want) {
			t.Errorf("%s: output lacks %q:\n%s", name, want, out)
		}
		if strings.Contains(out, `Get "http`) || strings.Contains(out, `Put "http`) || strings.Contains(out, "context deadline exceeded") {
			t.Errorf("%s: raw Go HTTP error:\n%s", name, out)
		}
	}
	// status promises connect_timeout + keepalive per probe, and says so.
	r := hoctlEnv(t, inv, env, "status")
	if !strings.Contains(r.stdout, "Consul API at http://"+hung+": no answer within 2s, status's limit per probe (connect_timeout 1s + keepalive 1s") {
		t.Errorf("status bound:\n%s", r.stdout)
	}
}

// Ctrl-C in the middle of a call to a hung API stops hoctl at once, with
// exit 130, even though the call's own bound (connect_timeout 30s) is far
// away. "At once" is asserted with a generous ceiling (10 s), not a tight
// one; the measured time is logged.
func TestCtrlCStopsHungAPICall(t *testing.T) {
	hung, accepted := hungAPI(t)
	inv, jobsDir := hungInventory(t, hung, "30s", "4s")
	for name, args := range hungCommands(t, jobsDir) {
		before := accepted()
		cmd := exec.Command(hoctlBin, args...)
		cmd.Env = append(append(os.Environ(), "HOCTL_INVENTORY="+inv, "NO_COLOR=1", "SSH_AUTH_SOCK="), stateEnv(t)...)
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		// Wait until hoctl is inside a call to the hung API.
		if poll(20*time.Millisecond, 30*time.Second, func() error {
			if accepted() == before {
				return errNotYet
			}
			return nil
		}) != nil {
			_ = cmd.Process.Kill()
			<-done //nolint:errcheck // killed: the exit status says nothing
			t.Fatalf("%s: never called the API\n%s", name, out.String())
		}
		time.Sleep(200 * time.Millisecond)
		start := time.Now()
		_ = cmd.Process.Signal(syscall.SIGINT)
		select {
		case err := <-done:
			took := time.Since(start)
			t.Logf("%s: stopped %s after SIGINT", name, took.Round(time.Millisecond))
			ee, ok := err.(*exec.ExitError)
			if !ok || ee.ExitCode() != 130 {
				t.Errorf("%s: exit %v after SIGINT, want 130\n%s", name, err, out.String())
			}
			if took > 10*time.Second {
				t.Errorf("%s: took %s to stop after SIGINT", name, took)
			}
		case <-time.After(25 * time.Second):
			_ = cmd.Process.Kill()
			<-done //nolint:errcheck // killed: the exit status says nothing
			t.Errorf("%s: still running 25s after SIGINT\n%s", name, out.String())
		}
	}
}
