package lab

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// These tests boot real machines (systemd-nspawn, the cached rootfs) as
// root. Their address block is 127.0.<HOCTL_E2E_NET+3>: inside the block
// a checkout is given (N to N+6), never one of its e2e labs' (N, N+2,
// N+4, N+6); by default 5, which neither hoctl-lab (1) nor the bench (3,
// 7, 9, 36) uses.
func testNet(t *testing.T) int {
	t.Helper()
	n := 2
	if v := os.Getenv("HOCTL_E2E_NET"); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil || n < 1 || n > 250 {
			t.Fatalf("HOCTL_E2E_NET=%q: want 1-250", v)
		}
	}
	return n + 3
}

// cachedParts returns the lab's cached parts, or skips: a unit test does
// not build them (16 minutes and more; `make test` builds them first). In
// CI they must be there.
func cachedParts(t *testing.T) *Parts {
	t.Helper()
	skip := func(why string) {
		if os.Getenv("CI") == "true" {
			t.Fatalf("machine tests must run in CI: %s", why)
		}
		t.Skip(why)
	}
	if err := Check(); err != nil {
		skip(err.Error())
	}
	if err := CheckMachines(); err != nil {
		skip(err.Error())
	}
	dir, err := CacheDir()
	if err != nil {
		skip(err.Error())
	}
	for _, pat := range []string{"consul-*/consul.sha256", "nomad-*/nomad.sha256", "rootfs-*/tree.sha256"} {
		if m, _ := filepath.Glob(filepath.Join(dir, pat)); len(m) == 0 {
			skip("no cached lab parts in " + dir + " (make lab-cache)")
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	p, err := EnsureCache(ctx, dir, os.Stderr)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// Stale-lab helper: with HOCTL_LAB_STALE_DIR set, this test binary is the
// test run that gets killed with SIGKILL once its lab is up.
func TestMain(m *testing.M) {
	if dir := os.Getenv("HOCTL_LAB_STALE_DIR"); dir != "" {
		os.Exit(startAndWait(dir))
	}
	os.Exit(m.Run())
}

func startAndWait(dir string) int {
	net, _ := strconv.Atoi(os.Getenv("HOCTL_LAB_STALE_NET"))
	parts := &Parts{Consul: os.Getenv("HOCTL_LAB_STALE_CONSUL"), Nomad: os.Getenv("HOCTL_LAB_STALE_NOMAD"), Rootfs: os.Getenv("HOCTL_LAB_STALE_ROOTFS")}
	hosts, groups := NumberedHosts("m", 2)
	_, err := Start(context.Background(), Config{Dir: dir, Net: net, Hosts: hosts, Groups: groups, DiskSize: 128 << 20, Parts: parts})
	if err != nil {
		fmt.Println("error:", err)
		return 1
	}
	fmt.Println("up")
	select {} // until killed
}

func onHost(t *testing.T, l *Lab, host, script string) string {
	t.Helper()
	cmd, err := l.Command(host, "sh", "-c", script)
	if err != nil {
		t.Fatal(err)
	}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %s: %v\n%s", host, script, err, out)
	}
	return string(out)
}

// answers reports whether host's sshd sends its banner within a second.
func answers(h *Host) bool { return banner(h.Addr) == nil }

// accepts reports whether host's address takes a TCP connection.
func accepts(h *Host) bool {
	c, err := net.DialTimeout("tcp", net.JoinHostPort(h.Addr, strconv.Itoa(Port)), time.Second)
	if err != nil {
		return false
	}
	_ = c.Close()
	return true
}

func waitFor(t *testing.T, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("still not %s after 60s", what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// The fault controls on real machines: Kill powers a machine off (every
// process, its loop device and cgroup gone; its disk kept), Restart
// boots it again with its disk, Hang freezes all of it (TCP accepted by
// the kernel, nothing answers) and Resume thaws it, its systemd running.
func TestMachineFaults(t *testing.T) {
	parts := cachedParts(t)
	n := testNet(t)
	dir := fmt.Sprintf("/tmp/hoctl-labtest%d-faults", n)
	hosts, groups := NumberedHosts("m", 2)
	l, err := Start(context.Background(), Config{Dir: dir, Net: n, Hosts: hosts, Groups: groups, DiskSize: 128 << 20, Parts: parts})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := l.Stop(); err != nil {
			t.Error(err)
		}
		if left := Leftovers(dir); len(left) > 0 {
			t.Errorf("left after Stop: %s", strings.Join(left, "; "))
		}
	})
	m1, m2 := l.Host("m01"), l.Host("m02")
	if got := onHost(t, l, "m01", "systemctl is-system-running --wait; cat /proc/1/comm; hostname; findmnt -no FSTYPE /persist"); got != "running\nsystemd\nm01\nbtrfs\n" {
		t.Fatalf("m01 is not a booted machine: %q", got)
	}
	onHost(t, l, "m01", "echo kept > /persist/mark")

	if err := l.Kill("m01"); err != nil {
		t.Fatal(err)
	}
	if accepts(m1) {
		t.Fatal("a killed machine still accepts connections")
	}
	if !answers(m2) {
		t.Fatal("killing m01 took m02 down")
	}
	for _, left := range Leftovers(dir) {
		if strings.HasPrefix(left, "nix build root ") {
			continue // built on this machine for m01: the lab's while it lives, as a powered-off host's disks are
		}
		if strings.Contains(left, "/hosts/m01/") || strings.Contains(left, "/m01") {
			t.Errorf("m01 killed, but left: %s", left)
		}
	}
	if err := l.Restart(context.Background(), "m01"); err != nil {
		t.Fatal(err)
	}
	if got := onHost(t, l, "m01", "systemctl is-system-running --wait; cat /persist/mark"); got != "running\nkept\n" {
		t.Fatalf("restarted m01: %q", got)
	}

	if err := l.Hang("m02"); err != nil {
		t.Fatal(err)
	}
	if !accepts(m2) {
		t.Fatal("a hung machine must still accept TCP (the kernel does)")
	}
	if answers(m2) {
		t.Fatal("a hung machine's sshd answered")
	}
	frozen, _ := os.ReadFile(filepath.Join("/sys/fs/cgroup/unified", l.hostCgroup(m2), "cgroup.events"))
	if !strings.Contains(string(frozen), "frozen 1") {
		t.Errorf("m02's cgroup is not frozen: %s", frozen)
	}
	if err := l.Resume("m02"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "answering after Resume", func() bool { return answers(m2) })
	if got := onHost(t, l, "m02", "systemctl is-system-running --wait"); got != "running\n" {
		t.Fatalf("m02 after Resume: %q", got)
	}
}

// A test run killed with SIGKILL leaves its lab running: machines,
// overlay and loop mounts, loop devices, cgroups, processes. The next
// Start in that directory finds it and removes all of it (and Stop leaves
// nothing either), also when a machine was hung at the time.
func TestStaleLabIsRemovedAtStart(t *testing.T) {
	parts := cachedParts(t)
	n := testNet(t)
	dir := fmt.Sprintf("/tmp/hoctl-labtest%d-stale", n)
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := ToolCmd(context.Background(), self, "-test.run", "^$")
	cmd.Env = append(os.Environ(), "HOCTL_LAB_STALE_DIR="+dir, "HOCTL_LAB_STALE_NET="+strconv.Itoa(n),
		"HOCTL_LAB_STALE_CONSUL="+parts.Consul, "HOCTL_LAB_STALE_NOMAD="+parts.Nomad, "HOCTL_LAB_STALE_ROOTFS="+parts.Rootfs)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	line, _ := bufio.NewReader(out).ReadString('\n')
	if line != "up\n" {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		t.Fatalf("the doomed run's lab: %q", line)
	}
	_ = cmd.Process.Signal(syscall.SIGKILL)
	_ = cmd.Wait()
	stale, err := Attach(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := stale.Hang("m02"); err != nil {
		t.Fatal(err)
	}
	left := Leftovers(dir)
	t.Logf("the killed run left %d things, among them: %s", len(left), strings.Join(left[:min(len(left), 6)], "; "))
	for _, kind := range []string{"loop device", "cgroup", "process", "nix build root"} {
		if !strings.Contains(strings.Join(left, "\n"), kind) {
			t.Errorf("expected the killed run to leave a %s running (else this test shows nothing): %s", kind, strings.Join(left, "; "))
		}
	}

	hosts, groups := NumberedHosts("m", 1)
	l, err := Start(context.Background(), Config{Dir: dir, Net: n, Hosts: hosts, Groups: groups, DiskSize: 128 << 20, Parts: parts})
	if err != nil {
		t.Fatal(err)
	}
	if !answers(l.Host("m01")) {
		t.Error("the new lab's m01 does not answer")
	}
	// Only the new lab's one machine is left; m02's address is free.
	if accepts(&Host{Addr: stale.Host("m02").Addr}) {
		t.Error("the stale lab's m02 still accepts connections")
	}
	for _, s := range Leftovers(dir) {
		if strings.Contains(s, "m02") {
			t.Errorf("stale m02 left: %s", s)
		}
	}
	if err := l.Stop(); err != nil {
		t.Fatal(err)
	}
	if left := Leftovers(dir); len(left) > 0 {
		t.Fatalf("left after Stop: %s", strings.Join(left, "; "))
	}
}
