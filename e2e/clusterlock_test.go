package e2e

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	consulapi "github.com/hashicorp/consul/api"

	"github.com/hoctl/hoctl/internal/lab"
	"github.com/hoctl/hoctl/pkg/consul"
	"github.com/hoctl/hoctl/pkg/httpapi"
	"github.com/hoctl/hoctl/pkg/inventory"
)

func startRun(t *testing.T, inv string, env []string, args ...string) (*exec.Cmd, *bytes.Buffer) {
	t.Helper()
	cmd := exec.Command(hoctlBin, args...)
	cmd.Env = append(append(os.Environ(), "HOCTL_INVENTORY="+inv, "NO_COLOR=1"), env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Pdeathsig: syscall.SIGKILL} // no terminal to ask on; gone with the test process
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	return cmd, &out
}

func waitProcs(t *testing.T, pattern string, n int) {
	t.Helper()
	if !waitEvery(t, 20*time.Millisecond, 20*time.Second, fmt.Sprintf("%q to reach %d processes", pattern, n), func() error {
		if c := countProcs(t, pattern); c < n {
			return fmt.Errorf("%d processes", c)
		}
		return nil
	}) {
		t.FailNow()
	}
}

// realConsul is a client of the real cluster's Consul (c1's agent), as
// an operator's own tools would reach it.
func realConsul(t *testing.T, l *lab.Lab) *consulapi.Client {
	t.Helper()
	c, err := consul.NewClient(&inventory.API{Address: fmt.Sprintf("http://%s:%d", l.Host("c1").Addr, lab.ConsulPort)}, nil, os.Getenv, httpapi.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// lockSessions are the Consul sessions of hoctl's cluster lock on scope.
func lockSessions(t *testing.T, c *consulapi.Client, scope string) []*consulapi.SessionEntry {
	t.Helper()
	all, _, err := c.Session().List(nil)
	if err != nil {
		t.Fatal(err)
	}
	var out []*consulapi.SessionEntry
	for _, s := range all {
		if s.Name == "hoctl lock "+scope {
			out = append(out, s)
		}
	}
	return out
}

// uniqueSleep is a remote command this test alone runs (other checkouts'
// tests may run at once), to wait for with waitProcs.
func uniqueSleep(secs int) string {
	return fmt.Sprintf("sleep %d.%04d", secs, os.Getpid()%10000)
}

// Two operators on two workstations (two state directories, so the local
// flock cannot help): the real Consul's session and KV acquire let
// exactly one proceed; both runs leave no session behind.
func TestClusterLockExcludesAnotherWorkstation(t *testing.T) {
	l := realCluster(t)
	c := realConsul(t, l)
	hold := uniqueSleep(10)
	rb := writeRunbook(t, "name: cl\nlock: cl-scope\ncluster_lock: true\nsteps:\n  - {title: hold, hosts: c2, run: '"+hold+"'}\n")
	a, out := startRun(t, l.Inventory, stateEnv(t), "--yes", "runbook", "run", rb)
	waitProcs(t, "^"+hold+"$", 1)
	if n := len(lockSessions(t, c, "cl-scope")); n != 1 {
		t.Fatalf("%d sessions hold the lock during the run", n)
	}
	r := hoctlEnv(t, l.Inventory, stateEnv(t), "--yes", "runbook", "run", rb)
	if r.code != 3 || !strings.Contains(r.stderr, `cluster lock "cl-scope" is held by`) || !strings.Contains(r.stderr, fmt.Sprintf("pid %d", a.Process.Pid)) {
		t.Fatalf("second operator: exit %d\n%s", r.code, r.stderr)
	}
	if err := a.Wait(); err != nil {
		t.Fatalf("first operator: %v\n%s", err, out)
	}
	if s := lockSessions(t, c, "cl-scope"); len(s) != 0 {
		t.Fatalf("%d sessions left after both runs", len(s))
	}
	if p, _, err := c.KV().Get(consul.LockPrefix+"cl-scope", nil); err != nil || p != nil && p.Session != "" {
		t.Fatalf("the lock key is still held: %+v %v", p, err)
	}
}

// The lock's session destroyed behind hoctl's back (PUT
// /v1/session/destroy/ID on the real Consul, as an operator or Consul's
// own invalidation would): the run stops before its next step.
func TestLostClusterLockStopsBeforeNextStep(t *testing.T) {
	l := realCluster(t)
	c := realConsul(t, l)
	marker := fmt.Sprintf("/root/after-lost-%d", time.Now().UnixNano())
	t.Cleanup(func() { _, _ = inMachine(l, "c2", "rm -f "+marker) })
	long := uniqueSleep(10)
	rb := writeRunbook(t, fmt.Sprintf("name: lost\nlock: lost-scope\ncluster_lock: true\nsteps:\n  - {title: long, hosts: c2, run: '%s'}\n  - {title: next, hosts: c2, run: 'touch %s'}\n", long, marker))
	a, out := startRun(t, l.Inventory, stateEnv(t), "--yes", "runbook", "run", rb)
	waitProcs(t, "^"+long+"$", 1)
	sessions := lockSessions(t, c, "lost-scope")
	if len(sessions) != 1 {
		t.Fatalf("sessions: %v", sessions)
	}
	if _, err := c.Session().Destroy(sessions[0].ID, nil); err != nil {
		t.Fatal(err)
	}
	err := a.Wait()
	ee, ok := err.(*exec.ExitError)
	if !ok || ee.ExitCode() != 1 || !strings.Contains(out.String(), "cluster lock lost") {
		t.Fatalf("exit %v\n%s", err, out)
	}
	if got, _ := inMachine(l, "c2", "test -e "+marker+" && echo RAN || echo stopped"); !strings.Contains(got, "stopped") {
		t.Fatal("step 2 ran after the lock was lost")
	}
	if s := lockSessions(t, c, "lost-scope"); len(s) != 0 {
		t.Fatalf("%d sessions left", len(s))
	}
}

// consul.via: hoctl reaches the real Consul through an SSH tunnel to c2.
// The lock is really held in Consul's KV during the run, and the
// connections to Consul's HTTP port come from c2's sshd, not from hoctl.
func TestClusterLockThroughSSHTunnel(t *testing.T) {
	l := realCluster(t)
	c := realConsul(t, l)
	consulAddr := fmt.Sprintf("%s:%d", l.Host("c1").Addr, lab.ConsulPort)
	inv := labInventory(t, l, "consul:\n  address: http://"+consulAddr+"\n", "consul:\n  address: http://"+consulAddr+"\n  via: c2\n")
	hold := uniqueSleep(10)
	rb := writeRunbook(t, "name: via\nlock: via-scope\ncluster_lock: true\nsteps:\n  - {title: one, hosts: c3, run: '"+hold+"'}\n")
	a, out := startRun(t, inv, stateEnv(t), "--yes", "runbook", "run", rb)
	waitProcs(t, "^"+hold+"$", 1)
	p, _, err := c.KV().Get(consul.LockPrefix+"via-scope", nil)
	if err != nil || p == nil || p.Session == "" || !strings.Contains(string(p.Value), fmt.Sprintf("pid %d", a.Process.Pid)) {
		t.Fatalf("lock not held during the run: %+v %v", p, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ss, err := lab.ToolCmd(ctx, "ss", "-Htnp", "dst", consulAddr).Output()
	if err != nil {
		t.Fatal(err)
	}
	// By pid: the NFS hosts' guards are hoctl processes too, and talk
	// to their own Consul agents.
	if !strings.Contains(string(ss), `"sshd"`) || strings.Contains(string(ss), fmt.Sprintf("pid=%d,", a.Process.Pid)) {
		t.Fatalf("connections to Consul:\n%s", ss)
	}
	if err := a.Wait(); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if s := lockSessions(t, c, "via-scope"); len(s) != 0 {
		t.Fatalf("%d sessions left", len(s))
	}
}
