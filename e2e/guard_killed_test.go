package e2e

import (
	"bufio"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/hoctl/hoctl/internal/lab"
)

// What follows the guard's cgroup kill, on the real cluster. zippy's
// PID 1 is busy with a daemon-reload (a 35 s generator, the reload begun
// by a timer 2 s before its lease can end, as a deploy's would) when
// zippy is cut off from the Consul servers and the operator: the guard's
// stop queues behind the reload, and after DefaultKillAfter (3 s) the
// guard kills the unit's cgroup. ganesha dies by SIGKILL before systemd
// began any stop, so systemd, once back, marks nfs-server.service failed
// (Result=signal). Before the guard cleared that state of its own
// making, zippy stayed "degraded" with nfs-server.service in systemctl
// --failed (a deploy's health check refuses such a host) and hoctl
// status showed only a failed unit on zippy's line.
//
// Checked: failover --primary-down --to c1 during the cut ends with c1
// alone serving (an NFSv4 reader of both every 20 ms); the kill, the
// failed state and the guard's reset-failed in zippy's journal; zippy
// running, not degraded; after the heal, status (text and JSON) saying
// that nfs-server.service is inactive and fenced on zippy; then the
// failover back, zippy serving and its guard keeping it up.
func TestRealGuardKillThenFailoverAndBack(t *testing.T) {
	l, env := nfsStart(t)
	t.Cleanup(func() { restoreGuards(t, l) })

	const gen = "/etc/systemd/system-generators/hoctl-e2e-killed"
	const reloadUnit = "hoctl-e2e-killed-reload"
	// Registered after restoreGuards, so run before it: its reloads must
	// not meet the generator.
	t.Cleanup(func() {
		if out, err := inMachine(l, "zippy", "rm -f "+gen+"; systemctl stop "+reloadUnit+".timer 2>/dev/null; true"); err != nil {
			t.Errorf("zippy: removing %s: %v\n%s", gen, err, out)
		}
	})
	const probe = "killed-probe"
	probeServed(t, l, env, probe)

	since := guardSince()
	mustInMachine(t, l, "zippy", fmt.Sprintf("mkdir -p %s && printf '#!/bin/sh\\nsleep 35\\n' > %s && chmod +x %s && systemd-run --quiet --unit %s --on-active=2 systemctl daemon-reload",
		gen[:strings.LastIndex(gen, "/")], gen, gen, reloadUnit))
	watch := watchNFS(l, probe)
	t.Cleanup(watch.stop)
	heal, parted := cutZippy(t, l, lab.OperatorSSH)

	r := hoctlEnv(t, l.Inventory, env, "--yes", "failover", "--to", "c1", "--primary-down")
	if r.code != 0 {
		t.Fatalf("failover --primary-down during the cut: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	t.Logf("the failover to c1 ended %s into the cut", time.Since(parted).Round(100*time.Millisecond))

	// The reload ends some 37 s into the cut; then systemd reaps the
	// killed server and the guard's stop returns.
	var journal string
	waitFor(t, 2*time.Minute, "systemd on zippy to reap the server its guard killed", func() error {
		var err error
		if journal, err = guardJournal(l, since); err != nil {
			return err
		}
		if !strings.Contains(journal, "Stopped nfs-server.service") {
			return fmt.Errorf("not yet")
		}
		return nil
	})
	if t.Failed() {
		t.FailNow()
	}
	// The reloads from here on (the guard's fence, the failover's start)
	// are a host's usual ones: a reload as slow as the one above, while
	// the guard renews its lease, holds the guard's loop in systemctl
	// past its lease, and its fuse stops the server.
	mustInMachine(t, l, "zippy", "rm -f "+gen)
	// The unit stopped, not failed, and zippy not degraded; asked through
	// the machine itself (the operator's SSH is still cut), for a while:
	// the guard's reset follows the stop.
	var state string
	if err := poll(200*time.Millisecond, 15*time.Second, func() error {
		var err error
		state, err = inMachine(l, "zippy", "systemctl show -p ActiveState -p Result nfs-server | sort | tr '\\n' ' '; systemctl is-system-running; systemctl --failed --plain --no-legend")
		if f := strings.Fields(state); len(f) != 3 || f[0] != "ActiveState=inactive" || f[1] != "Result=success" || f[2] != "running" {
			return fmt.Errorf("%q %v", state, err)
		}
		return nil
	}); err != nil {
		t.Errorf("zippy after the kill: nfs-server.service, systemd and its failed units %q; want inactive, success, running and none", state)
	}
	journal, _ = guardJournal(l, since)
	t.Logf("zippy's journal (guard, nfs-server):\n%s", journal)
	for _, want := range []string{"killed its cgroup (cgroup.kill)", "nfs-server.service: Failed with result 'signal'"} {
		if !strings.Contains(journal, want) {
			t.Errorf("zippy's journal lacks %q: the test did not drive the kill it is about", want)
		}
	}
	if t.Failed() {
		t.FailNow()
	}
	if s := watch.last(); s.zippy || !s.c1ok {
		t.Errorf("after the failover: zippy serves %v, c1 serves %v; want c1 alone", s.zippy, s.c1ok)
	}

	// Heal: zippy's guard reads that the key names c1 and fences.
	if err := heal(); err != nil {
		t.Fatal(err)
	}
	const fenced = `done: owner key ` + lab.NFSOwnerKey + ` names "c1": fencing and stopping nfs-server.service`
	waitFor(t, 2*time.Minute, "zippy's guard to fence nfs-server after the heal", func() error {
		var err error
		if journal, err = guardJournal(l, since); err != nil {
			return err
		}
		if !strings.Contains(journal, fenced) {
			return fmt.Errorf("no fence yet")
		}
		return nil
	})
	zippyReadsOwner(t, l, "c1")
	// zippy's agent deregistered its instance during the cut; the
	// servers learn it at its first anti-entropy sync after the heal,
	// and until then status rightly says Consul passes two.
	waitFor(t, time.Minute, "Consul's passing instances after the heal: c1 alone", func() error {
		if p := consulPassing(t, l); p != `"Node":"c1"` {
			return fmt.Errorf("passing: %q", p)
		}
		return nil
	})
	watch.stop()
	if n, total, first := watch.both(); n > 0 {
		t.Errorf("zippy and c1 both served in %d of %d NFSv4 samples, first %s into the cut", n, total, first.Sub(parted).Round(10*time.Millisecond))
	} else {
		t.Logf("measured: %d NFSv4 samples of both hosts, none with two servers; zippy's export stopped answering %s into the cut",
			total, watch.zippyGone().Sub(parted).Round(10*time.Millisecond))
	}

	// What status says of it, as text and as JSON.
	const says = "nfs-server.service inactive and fenced on zippy"
	st := hoctlEnv(t, l.Inventory, env, "status")
	t.Logf("hoctl status (exit %d):\n%s%s", st.code, st.stdout, st.stderr)
	if st.code > 1 {
		t.Errorf("status exit %d", st.code)
	}
	line := ""
	for _, ln := range strings.Split(st.stdout, "\n") {
		if strings.Contains(ln, "nfs data-services ") && strings.Contains(ln, "primary ") {
			line = ln
		}
		if strings.Contains(ln, "failed units:") {
			t.Errorf("status lists a failed unit: %s", ln)
		}
	}
	if !strings.Contains(line, "primary c1 (owner key), serving on c1") || !strings.Contains(line, says) || !strings.HasPrefix(line, "✓") {
		t.Errorf("status's NFS line %q, want c1 serving and %q", line, says)
	}
	js := hoctlEnv(t, l.Inventory, env, "status", "--json")
	var detail string
	sc := bufio.NewScanner(strings.NewReader(js.stdout))
	for sc.Scan() {
		var c struct{ Area, Name, Level, Detail string }
		if err := json.Unmarshal(sc.Bytes(), &c); err != nil {
			t.Fatalf("status --json: %v: %q", err, sc.Text())
		}
		if c.Area == "nfs" && c.Name == "data-services" {
			detail = c.Level + ": " + c.Detail
		}
	}
	if !strings.HasPrefix(detail, "ok: ") || !strings.Contains(detail, says) {
		t.Errorf("status --json's NFS service: %q, want ok and %q", detail, says)
	}

	// Back to zippy: its start lifts the fence of the guard's making.
	if r := hoctlEnv(t, l.Inventory, env, "--yes", "replicate", "c1", "zippy"); r.code != 0 {
		t.Fatalf("replicate c1 zippy: exit %d\n%s", r.code, r.stderr)
	}
	if r := hoctlEnv(t, l.Inventory, env, "--yes", "failover", "--to", "zippy"); r.code != 0 {
		t.Fatalf("failover back to zippy: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	back := guardSince()
	waitFor(t, 2*time.Minute, "zippy serving reads after the failover back", func() error {
		got, err := nfsCat(l, "zippy", probe)
		if err == nil && got != "before the partition\n" {
			return fmt.Errorf("read %q", got)
		}
		return err
	})
	// The guard keeps it up past a whole lease and its margin.
	time.Sleep(guardBound)
	out := mustInMachine(t, l, "zippy", "systemctl is-active nfs-server || true")
	j, _ := inMachine(l, "zippy", "journalctl -u "+lab.NFSGuardUnit+" --no-pager -o short-iso-precise --since "+back)
	if strings.TrimSpace(out) != "active" || strings.Contains(j, "stopping nfs-server") {
		t.Errorf("zippy's nfs-server %q a lease after the failover back; its guard's journal:\n%s", out, j)
	}
	st = hoctlEnv(t, l.Inventory, env, "status")
	if !strings.Contains(st.stdout, "primary zippy (owner key), serving on zippy") {
		t.Errorf("status after the failover back (exit %d):\n%s%s", st.code, st.stdout, st.stderr)
	}
}
