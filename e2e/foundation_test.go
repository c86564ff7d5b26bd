package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hoctl/hoctl/internal/lab"
)

func TestPingAllFleet(t *testing.T) {
	r := hoctl(t, fleet.Inventory, "ping", "all")
	if r.code != 0 {
		t.Fatalf("exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	for _, h := range fleet.Hosts {
		// The remote hostname proves each sshd runs in its own UTS namespace.
		if !strings.Contains(r.stdout, fmt.Sprintf("✓ %s  %s  rtt", h.Name, h.Name)) {
			t.Errorf("no ok line for %s in:\n%s", h.Name, r.stdout)
		}
	}
	if !strings.Contains(r.stderr, fmt.Sprintf("%d/%d hosts answered", fleetSize, fleetSize)) {
		t.Errorf("stderr: %s", r.stderr)
	}
}

func TestRunOnFleetStreamsAndJSON(t *testing.T) {
	r := hoctl(t, fleet.Inventory, "run", "all", "--", "hostname; echo to-stderr >&2")
	if r.code != 0 {
		t.Fatalf("exit %d\n%s", r.code, r.stderr)
	}
	for _, h := range fleet.Hosts {
		if !strings.Contains(r.stdout, h.Name+" | "+h.Name+"\n") {
			t.Errorf("missing %s line", h.Name)
		}
		if !strings.Contains(r.stderr, h.Name+" ! to-stderr\n") {
			t.Errorf("missing %s stderr line", h.Name)
		}
	}
	r = hoctl(t, fleet.Inventory, "--json", "run", "odd", "--", "sh", "-c", "echo $1; exit 3", "x", "arg with space")
	if r.code != 1 {
		t.Fatalf("exit %d, want 1\n%s", r.code, r.stderr)
	}
	// One host_result per host, then the error event with the exit code.
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	if len(lines) != fleetSize/2+1 {
		t.Fatalf("%d JSON lines for the odd group", len(lines))
	}
	for i, l := range lines {
		var ev struct {
			Event    string `json:"event"`
			Host     string `json:"host"`
			Stdout   string `json:"stdout"`
			ExitCode int    `json:"exit_code"`
		}
		if err := json.Unmarshal([]byte(l), &ev); err != nil {
			t.Fatalf("not JSON: %q", l)
		}
		if i == len(lines)-1 {
			if ev.Event != "error" || ev.ExitCode != 1 {
				t.Errorf("last event %s, want the error with exit_code 1", l)
			}
			continue
		}
		if ev.Event != "host_result" || ev.Stdout != "arg with space\n" || ev.ExitCode != 3 {
			t.Errorf("%+v", ev)
		}
	}
}

func TestDownAndHungHostsReportedWhileOthersAnswer(t *testing.T) {
	down, hung := fleet.Hosts[2].Name, fleet.Hosts[3].Name
	if err := fleet.Kill(down); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := fleet.Restart(context.Background(), down); err != nil {
			t.Error(err)
		}
	})
	if err := fleet.Hang(hung); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = fleet.Resume(hung) })

	r := hoctl(t, fleet.Inventory, "ping", "all")
	if r.code != 4 {
		t.Fatalf("exit %d, want 4\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	if !strings.Contains(r.stdout, "✗ "+down+"  CONNECTION REFUSED") {
		t.Errorf("down host not reported as refused:\n%s", r.stdout)
	}
	if !strings.Contains(r.stdout, "✗ "+hung+"  TIMED OUT") {
		t.Errorf("hung host not reported as timed out:\n%s", r.stdout)
	}
	if !strings.Contains(r.stderr, fmt.Sprintf("%d/%d hosts answered, 2 unreachable", fleetSize-2, fleetSize)) {
		t.Errorf("summary: %s", r.stderr)
	}
	// connect_timeout is 2s in the lab inventory: the hung host must not
	// hold the run much longer. The bound is loose on purpose (noisy
	// machine); it catches a hang, not a slow run.
	if r.duration > 30*time.Second {
		t.Errorf("ping took %s", r.duration)
	}

	r = hoctl(t, fleet.Inventory, "run", "all", "--", "true")
	if r.code != 4 {
		t.Fatalf("run: exit %d, want 4\n%s", r.code, r.stderr)
	}
	if !strings.Contains(r.stderr, fmt.Sprintf("%d/%d hosts exited 0; 0 failed, 2 unreachable", fleetSize-2, fleetSize)) {
		t.Errorf("run summary:\n%s", r.stderr)
	}
}

func TestChangedHostKeyIsRefused(t *testing.T) {
	h := fleet.Hosts[5].Name
	before := hoctl(t, fleet.Inventory, "--json", "ping", h)
	if before.code != 0 {
		t.Fatalf("before rotation: %d %s", before.code, before.stderr)
	}
	if err := fleet.RotateHostKey(context.Background(), h); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := fleet.RefreshKnownHosts(); err != nil {
			t.Error(err)
		}
	})
	r := hoctl(t, fleet.Inventory, "ping", h)
	if r.code != 4 {
		t.Fatalf("exit %d, want 4\n%s", r.code, r.stdout)
	}
	if !strings.Contains(r.stdout, "HOST KEY CHANGED") || strings.Count(r.stdout, "SHA256:") != 2 {
		t.Fatalf("want both fingerprints:\n%s", r.stdout)
	}
	// accept-new must not accept a changed key either.
	inv := withPolicy(t, "accept-new")
	if r := hoctl(t, inv, "ping", h); r.code != 4 || !strings.Contains(r.stdout, "HOST KEY CHANGED") {
		t.Fatalf("accept-new accepted a changed key: %d\n%s", r.code, r.stdout)
	}
}

func withPolicy(t *testing.T, policy string) string {
	t.Helper()
	data, err := os.ReadFile(fleet.Inventory)
	if err != nil {
		t.Fatal(err)
	}
	out := strings.Replace(string(data), "host_key_policy: strict", "host_key_policy: "+policy, 1)
	p := filepath.Join(t.TempDir(), "inventory.yaml")
	if err := os.WriteFile(p, []byte(out), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// countProcs counts the processes whose command line matches pattern and
// that are this test process's own: on this machine itself (in its mount
// namespace: a runbook's local step), on a host of one of its namespace
// labs, or in its real cluster's machines. Another group's labs, another
// checkout's suite and anything else on this shared machine run the same
// commands (a replication's btrfs receive) and are left out.
func countProcs(t *testing.T, pattern string) int {
	t.Helper()
	out, _ := lab.ToolCmd(context.Background(), "pgrep", "-f", pattern).Output()
	own := labs.mountNamespaces()
	n := 0
	for _, pid := range strings.Fields(string(out)) {
		if ownProc(pid, own) {
			n++
		}
	}
	return n
}

// ownProc reports whether pid is this test process's (countProcs): in its
// own real cluster's cgroups, or, outside every lab cgroup, in one of the
// mount namespaces own.
func ownProc(pid string, own map[string]bool) bool {
	cg, err := os.ReadFile("/proc/" + pid + "/cgroup")
	if err != nil {
		return false
	}
	if strings.Contains(string(cg), "/hoctl-lab/") {
		return !ofAnotherGroup(pid)
	}
	ns, err := os.Readlink("/proc/" + pid + "/ns/mnt")
	return err == nil && own[ns]
}

func TestCtrlCStopsRemoteCommandsEverywhere(t *testing.T) {
	marker := fmt.Sprintf("sleep %d.%d", 1000+os.Getpid()%1000, time.Now().Nanosecond()%1000)
	cmd := exec.Command(hoctlBin, "run", "all", "--", marker+"; echo finished")
	if out := ctrlCFleet(t, cmd, marker); strings.Contains(out, "finished") {
		t.Fatal("a remote command ran to completion after Ctrl-C")
	}
}

// ctrlCFleet starts cmd (hoctl on the whole fleet, running marker, a
// unique sleep, on each host), sends it SIGINT once every host runs the
// sleep, and checks it exits 130 and no sleep survives; it returns what
// hoctl printed.
func ctrlCFleet(t *testing.T, cmd *exec.Cmd, marker string) string {
	t.Helper()
	cmd.Env = append(os.Environ(), "HOCTL_INVENTORY="+fleet.Inventory, "NO_COLOR=1")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill() }()
	if !waitEvery(t, 50*time.Millisecond, 30*time.Second, "every remote sleep to start", func() error {
		if c := countProcs(t, "^"+marker); c < fleetSize {
			return fmt.Errorf("only %d remote sleeps started\n%s", c, out.String())
		}
		return nil
	}) {
		t.FailNow()
	}
	if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	err := cmd.Wait()
	ee, ok := err.(*exec.ExitError)
	if !ok || ee.ExitCode() != 130 {
		t.Fatalf("exit = %v, want 130\n%s", err, out.String())
	}
	if !waitEvery(t, 50*time.Millisecond, 10*time.Second, "the remote sleeps to end after Ctrl-C", func() error {
		if c := countProcs(t, "^"+marker); c > 0 {
			return fmt.Errorf("%d remote sleeps survived Ctrl-C", c)
		}
		return nil
	}) {
		t.FailNow()
	}
	return out.String()
}

func TestBadInventoryIsExit2WithPosition(t *testing.T) {
	p := filepath.Join(t.TempDir(), "inv.yaml")
	if err := os.WriteFile(p, []byte("hosts:\n  a: {address: 127.0.2.11, prot: 22}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	r := hoctl(t, p, "ping", "all")
	if r.code != 2 || !strings.Contains(r.stderr, p+":2:28: hosts.a: unknown field \"prot\"; did you mean \"port\"?") {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
}

func TestHostsSelectsFromLabInventory(t *testing.T) {
	r := hoctl(t, fleet.Inventory, "hosts", "h0*,odd")
	if r.code != 0 {
		t.Fatal(r.stderr)
	}
	if n := strings.Count(r.stdout, "\n"); n != 1+9+5 {
		t.Fatalf("%d lines:\n%s", n, r.stdout)
	}
	r = hoctl(t, fleet.Inventory, "hosts", "h99")
	if r.code != 2 || !strings.Contains(r.stderr, "did you mean") {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
}
