package lab

import (
	"context"
	"fmt"
	"strings"
	"testing"
)

// connects reports whether from's machine opens a TCP connection to
// to's sshd within two seconds. The probe runs as a unit of from's own
// systemd, so in from's cgroup (RunOn's nsenter keeps the caller's).
func connects(t *testing.T, l *Lab, from, to string) bool {
	t.Helper()
	out, err := l.RunOn(context.Background(), from, fmt.Sprintf("systemd-run --quiet --wait --pipe --collect timeout 2 bash -c 'echo > /dev/tcp/%s/%d' && echo open || echo closed", l.Host(to).Addr, Port))
	if err != nil {
		t.Fatalf("%s: %v\n%s", from, err, out)
	}
	return strings.TrimSpace(out) == "open"
}

// A partition drops what m01 and m02 send each other, both ways, and
// the operator's connections to m01's sshd, while both machines run and
// this machine still reaches m02; heal restores all of it; a partition
// left standing goes with the lab (Teardown, which a new Start runs on
// a stale lab), and Leftovers reports it until then.
func TestPartition(t *testing.T) {
	parts := cachedParts(t)
	n := testNet(t)
	dir := fmt.Sprintf("/tmp/hoctl-labtest%d-partition", n)
	hosts, groups := NumberedHosts("m", 2)
	l, err := Start(context.Background(), Config{Dir: dir, Net: n, Hosts: hosts, Groups: groups, DiskSize: 128 << 20, Parts: parts})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := l.Stop(); err != nil {
			t.Error(err)
		}
		if left := Leftovers(dir); len(left) > 0 {
			t.Errorf("left after Stop: %q", left)
		}
	}()
	if !connects(t, l, "m01", "m02") || !connects(t, l, "m02", "m01") || !accepts(l.Host("m01")) {
		t.Fatal("m01 and m02 do not reach each other before the partition")
	}

	heal, err := l.Partition("m01", "m02")
	if err != nil {
		t.Fatal(err)
	}
	if connects(t, l, "m01", "m02") {
		t.Error("partitioned: m01 still reaches m02")
	}
	if connects(t, l, "m02", "m01") {
		t.Error("partitioned: m02 still reaches m01")
	}
	if !accepts(l.Host("m01")) || !accepts(l.Host("m02")) {
		t.Error("partitioned from m02 only: this machine no longer reaches m01 or m02")
	}
	healSSH, err := l.Partition("m01", OperatorSSH)
	if err != nil {
		t.Fatal(err)
	}
	if accepts(l.Host("m01")) {
		t.Error("partitioned from the operator: this machine still reaches m01's sshd")
	}
	if !accepts(l.Host("m02")) {
		t.Error("this machine no longer reaches m02, which is not partitioned from it")
	}
	if err := healSSH(); err != nil {
		t.Fatal(err)
	}
	if got := onHost(t, l, "m01", "systemctl is-system-running --wait || true"); strings.TrimSpace(got) != "running" {
		t.Errorf("m01 does not run on behind the partition: %q", got)
	}
	if left := strings.Join(Leftovers(dir), "\n"); !strings.Contains(left, "nftables table inet "+partitionTable(dir)) {
		t.Errorf("Leftovers does not report the partition: %q", left)
	}

	if err := heal(); err != nil {
		t.Fatal(err)
	}
	if !connects(t, l, "m01", "m02") || !connects(t, l, "m02", "m01") || !accepts(l.Host("m01")) {
		t.Error("healed: m01 and m02 do not reach each other again")
	}
	if err := heal(); err != nil {
		t.Errorf("a second heal: %v", err)
	}

	// Left standing, as by a test killed before its heal: the teardown
	// that Start runs on a stale lab removes it.
	if _, err := l.Partition("m02", "m01"); err != nil {
		t.Fatal(err)
	}
	if err := Teardown(dir); err != nil {
		t.Fatal(err)
	}
	if tableExists(partitionTable(dir)) {
		t.Error("the partition's table survived the lab's teardown")
	}
}
