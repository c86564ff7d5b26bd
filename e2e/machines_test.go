package e2e

// The real cluster (internal/lab machines.go): the seed's zippy and c1-c3
// as systemd-nspawn machines with real systemd, Consul, Nomad and
// nfs-ganesha. It boots on first use, so a run of other tests alone does
// not pay for it, and TestMain tears it down (labs). Each group of tests
// (groups_test.go) has its own.

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hoctl/hoctl/internal/lab"
	"github.com/hoctl/hoctl/pkg/failover"
	"github.com/hoctl/hoctl/pkg/sshexec"
)

var (
	machinesOnce sync.Once
	machines     *lab.Lab
	machinesErr  error
)

// realCluster returns the running real cluster, booting it on first use.
// Outside CI a machine without the cached parts or nspawn skips these
// tests (saying how to get them); in CI they must run.
func realCluster(t *testing.T) *lab.Lab {
	t.Helper()
	machinesOnce.Do(func() {
		if err := lab.CheckMachines(); err != nil {
			machinesErr = err
			return
		}
		cache, err := lab.CacheDir()
		if err != nil {
			machinesErr = err
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 40*time.Minute)
		defer cancel()
		parts, err := lab.EnsureCache(ctx, cache, os.Stderr)
		if err != nil {
			machinesErr = fmt.Errorf("the lab's cached parts (hoctl-lab cache): %w", err)
			return
		}
		base, _ := e2eNetBase()
		seed, groups := lab.SeedHosts()
		start := time.Now()
		machines, machinesErr = labs.start(ctx, lab.Config{Dir: labDir(base, "machines"), Net: base + 6,
			Hosts: seed[:4], Groups: groups, DiskSize: 512 << 20, ConnectTimeout: 5 * time.Second, Parts: parts, Hoctl: hoctlBin})
		if machinesErr == nil {
			fmt.Fprintf(os.Stderr, "real cluster: %d machines up, Consul and Nomad led, NFS served, in %s; %d MiB PSS\n",
				len(machines.Hosts), time.Since(start).Round(100*time.Millisecond), machines.MemoryPSS()>>20)
		}
	})
	if machinesErr != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("the real cluster must run in CI: %v", machinesErr)
		}
		t.Skipf("no real cluster on this machine: %v", machinesErr)
	}
	return machines
}

// inMachine runs a shell script on a real machine as its root, through
// nsenter (lab.RunOn, no SSH: it works while a test has cut the
// machine's network), bounded to a minute; its output is trimmed. The
// one way a test sets a machine up or looks at it; hoctl itself is what
// reaches the machines over SSH.
func inMachine(l *lab.Lab, host, script string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	return l.RunOn(ctx, host, script)
}

// overSSH runs a script on a machine over SSH as hoctl does (stdout,
// then stderr, untrimmed): only where the SSH session itself is what a
// test looks at (sshd after a deploy, what pam_env gives a session).
func overSSH(t *testing.T, l *lab.Lab, host, script string) (string, error) {
	t.Helper()
	res, err := labRunners(t, l, host)[0].Run(context.Background(), sshexec.Cmd{Script: script})
	if res == nil {
		return "", err
	}
	return string(res.Stdout) + string(res.Stderr), err
}

// mustInMachine is inMachine failing the test on an error.
func mustInMachine(t *testing.T, l *lab.Lab, host, script string) string {
	t.Helper()
	out, err := inMachine(l, host, script)
	if err != nil {
		t.Fatalf("%s: %s: %v\n%s", host, script, err, out)
	}
	return out
}

// nfsCat reads a file of host's export over real NFSv4 (libnfs; this
// kernel has no NFS client). A fresh call each time: libnfs does not
// reconnect after a server restart.
func nfsCat(l *lab.Lab, host, file string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	out, err := lab.ToolCmd(ctx, "nfs-cat", fmt.Sprintf("nfs://%s%s/%s?version=4", l.Host(host).Addr, lab.NFSExport, file)).CombinedOutput()
	return string(out), err
}

// The machines are real: systemd is PID 1 and running, each host has its
// own hostname, Consul has elected a leader among c1-c3 and every agent
// is a member, Nomad has its clients, zippy's ganesha serves the export
// over NFSv4 and hoctl status sees all of it.
func TestRealClusterUp(t *testing.T) {
	l := realCluster(t)
	for _, h := range []string{"zippy", "c1", "c2", "c3"} {
		out := mustInMachine(t, l, h, "hostname; cat /proc/1/comm; systemctl is-system-running --wait; systemctl is-active consul nomad")
		if want := h + "\nsystemd\nrunning\nactive\nactive"; out != want {
			t.Errorf("%s: got\n%s\nwant\n%s", h, out, want)
		}
	}
	members := mustInMachine(t, l, "c1", ". /etc/profile.d/hoctl-lab-agents.sh; consul members")
	for _, h := range []string{"zippy", "c1", "c2", "c3"} {
		if !strings.Contains(members, h) {
			t.Errorf("consul members lacks %s:\n%s", h, members)
		}
	}
	if got, err := nfsCat(l, "zippy", "hello"); err != nil || got != "hello from zippy\n" {
		t.Fatalf("nfs-cat from zippy's export: %v %q", err, got)
	}
	// Nothing of c1's listens on a wildcard address. (The network is this
	// machine's: ss lists every socket on it, but names the processes
	// only of those in c1's own PID namespace.)
	out := mustInMachine(t, l, "c1", "ss -Hltnup")
	ours := 0
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		f := strings.Fields(line)
		if len(f) < 5 || !strings.Contains(line, "users:") {
			continue
		}
		ours++
		local := f[4]
		if strings.HasPrefix(local, "0.0.0.0:") || strings.HasPrefix(local, "*:") || strings.HasPrefix(local, "[::]:") {
			t.Errorf("c1 listens on a wildcard address: %s", line)
		}
	}
	if ours < 5 { // sshd, consul (3), nomad (3)
		t.Errorf("c1's own listening sockets not found in:\n%s", out)
	}
	// Real Nix, offline, each host its own /nix: a trivial closure built
	// on c2 becomes a profile generation there, and not on c3. (A probe
	// profile: the system profile is the hosts' own, internal/lab nix.go.)
	const probe = "/nix/var/nix/profiles/lab-probe"
	t.Cleanup(func() {
		_, _ = inMachine(l, "c2", "p=$(readlink -f "+probe+"); rm -f "+probe+" "+probe+"-*-link; nix-store --delete $p >/dev/null 2>&1; true")
	})
	drv := `derivation { name = "lab-probe"; system = builtins.currentSystem; builder = "/bin/sh"; args = ["-c" "echo c2 > $out"]; }`
	out = mustInMachine(t, l, "c2", "p=$(nix-build --no-out-link -E '"+drv+"' 2>/dev/null) && nix-env -p "+probe+" --set $p && cat "+probe+" && nix-env -p "+probe+" --list-generations | wc -l")
	if out != "c2\n1" {
		t.Errorf("nix on c2: %q", out)
	}
	if out, err := inMachine(l, "c3", "ls "+probe); err == nil {
		t.Errorf("c3 shares c2's /nix: %s", out)
	}
	// Every host runs its system profile's generation, as NixOS does.
	for _, h := range []string{"zippy", "c1", "c2", "c3"} {
		out := mustInMachine(t, l, h, "readlink -f /run/current-system "+lab.NixProfile)
		if f := strings.Fields(out); len(f) != 2 || f[0] != f[1] || !strings.HasSuffix(f[0], "-nixos-system-"+h) {
			t.Errorf("%s: /run/current-system and the system profile: %q", h, out)
		}
	}

	r := hoctl(t, l.Inventory, "status")
	t.Logf("status:\n%s", r.stdout)
	for _, want := range []string{"✓ consul", "✓ nomad", "primary zippy (owner key), serving on zippy"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("status lacks %q (exit %d):\n%s%s", want, r.code, r.stdout, r.stderr)
		}
	}
}

// On real systemd, `systemctl mask --runtime` does nothing for a unit
// whose file is in /etc/systemd/system (where NixOS keeps every unit):
// the runtime link is shadowed, and the unit starts. hoctl's fence (a
// runtime drop-in) does refuse the start, until it is removed.
func TestRealSystemdMaskRuntimeDoesNotFence(t *testing.T) {
	l := realCluster(t)
	const unit = "hoctl-fence-probe.service"
	mustInMachine(t, l, "c2", "printf '[Service]\\nType=oneshot\\nRemainAfterExit=yes\\nExecStart=/bin/true\\n' > /etc/systemd/system/"+unit+" && systemctl daemon-reload")
	t.Cleanup(func() {
		_, _ = inMachine(l, "c2", "systemctl stop "+unit+"; systemctl unmask --runtime "+unit+"; rm -rf /etc/systemd/system/"+unit+" "+failover.FenceDropIn(unit)+"; systemctl daemon-reload")
	})
	out := mustInMachine(t, l, "c2", "systemctl mask --runtime "+unit+" 2>&1; systemctl start "+unit+" && systemctl is-active "+unit)
	if lines := strings.Split(out, "\n"); lines[len(lines)-1] != "active" {
		t.Fatalf("expected the runtime mask to be ignored (systemd#10583) and the unit to start: %s", out)
	}
	t.Logf("mask --runtime, then start: %s", out)
	mustInMachine(t, l, "c2", "systemctl stop "+unit+"; systemctl unmask --runtime "+unit)

	fence := failover.FenceDropIn(unit)
	mustInMachine(t, l, "c2", "mkdir -p "+strings.TrimSuffix(fence, "/50-hoctl-fence.conf")+" && printf '[Unit]\\nAssertPathExists=!"+fence+"\\n' > "+fence+" && systemctl daemon-reload")
	out, err := inMachine(l, "c2", "systemctl start "+unit)
	if err == nil || !strings.Contains(out, "Assertion failed") {
		t.Fatalf("the fence drop-in must refuse the start: %v %s", err, out)
	}
	if out, _ := inMachine(l, "c2", "systemctl is-active "+unit); strings.TrimSpace(out) != "inactive" {
		t.Fatalf("fenced unit is %s", out)
	}
	// Removed (without even a daemon-reload: the assertion is on the
	// file), the unit starts again.
	if out, err := inMachine(l, "c2", "rm "+fence+" && systemctl start "+unit+" && systemctl is-active "+unit); err != nil {
		t.Fatalf("unfenced, the unit must start: %v %s", err, out)
	}
}
