package e2e

import (
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/hoctl/hoctl/internal/lab"
)

// isActive is systemctl is-active of unit on host, read through the
// machine itself (the operator's SSH may be cut).
func isActive(l *lab.Lab, host, unit string) string {
	out, _ := inMachine(l, host, "systemctl is-active "+unit+" || true")
	return strings.TrimSpace(out)
}

// waitInactive polls until host's unit is no longer active, up to
// ceiling, and says after how long (0: it stayed active).
func waitInactive(l *lab.Lab, host, unit string, from time.Time, ceiling time.Duration) time.Duration {
	if poll(100*time.Millisecond, ceiling-time.Since(from), func() error {
		if s := isActive(l, host, unit); s == "active" || s == "activating" || s == "deactivating" || s == "" {
			return errNotYet
		}
		return nil
	}) != nil {
		return 0
	}
	return time.Since(from)
}

// Attack F1 on the real cluster: zippy's guard cannot reach Consul (zippy
// cut off from c1–c3) and has stopped nfs-server for its lease. Then
// someone starts nfs-server again: the unit's own start check (hoctl
// guard --check-lease) refuses it; and a unit without that check (an
// old unit file, a hand-made one) is stopped by the guard, which asks
// systemd every second while its lease has run out, though every read
// of Consul fails.
func TestRealGuardStopsAUnitStartedAfterALeaseStop(t *testing.T) {
	l, _ := nfsStart(t)
	t.Cleanup(func() { restoreGuards(t, l) })

	since := guardSince()
	_, parted := cutZippy(t, l)
	if d := waitInactive(l, "zippy", "nfs-server", parted, 3*guardBound); d == 0 {
		t.Fatalf("zippy's guard did not stop nfs-server within %s of the partition", 3*guardBound)
	} else {
		t.Logf("measured: the lease stop %s into the partition", d.Round(10*time.Millisecond))
	}

	// The operator starts it, and its owner check passes (as when only
	// the guard's own traffic to Consul is cut, which the owner check
	// here stands in for: a drop-in leaves it out): the lease check
	// refuses (after waiting --check-wait, 10 s, for the guard).
	const dropIn = "/run/systemd/system/nfs-server.service.d/zz-start-checks.conf"
	t.Cleanup(func() {
		if out, err := inMachine(l, "zippy", "rm -f "+dropIn+" && systemctl daemon-reload"); err != nil {
			t.Errorf("removing %s: %v\n%s", dropIn, err, out)
		}
	})
	bind := fmt.Sprintf(`ExecStartPre=/bin/sh -c "mountpoint -q %s || mount --bind %s %s"`, lab.NFSSubvol, lab.NFSSubvol, lab.NFSSubvol)
	checks := func(lines ...string) {
		mustInMachine(t, l, "zippy", fmt.Sprintf("mkdir -p /run/systemd/system/nfs-server.service.d && printf '%%s\\n' '[Service]' 'ExecStartPre=' %s > %s && systemctl daemon-reload",
			"'"+strings.Join(lines, "' '")+"'", dropIn))
	}
	checks("ExecStartPre=/usr/local/bin/hoctl guard --key "+lab.NFSOwnerKey+" --unit nfs-server.service --check-lease", bind)
	out, _ := inMachine(l, "zippy", "systemctl start nfs-server 2>&1")
	journal := func() string {
		j, _ := guardJournal(l, since)
		return j
	}
	if s := isActive(l, "zippy", "nfs-server"); s == "active" {
		t.Fatalf("nfs-server started while its guard's lease has run out:\n%s\n%s", out, journal())
	}
	if !strings.Contains(journal(), "does not hold") {
		t.Errorf("the start check does not say why it refuses:\n%s\n%s", out, journal())
	}
	// Settled (the failed start's ExecStopPost takes its 5 s): no job.
	waitFor(t, time.Minute, "nfs-server to settle", func() error {
		out, _ := inMachine(l, "zippy", "systemctl list-jobs --no-legend nfs-server.service; systemctl is-active nfs-server || true")
		if s := strings.TrimSpace(out); s != "inactive" && s != "failed" {
			return fmt.Errorf("%q", s)
		}
		return nil
	})

	// A unit without the lease check (and without the owner check, as
	// when only the guard's own traffic to Consul is cut): it starts, and
	// the guard stops it.
	checks(bind)
	// Not waited for (the guard may stop it while its ExecStartPost
	// runs, which fails the start job); watched from the machine itself
	// every 50 ms until it runs.
	started := time.Now()
	out = mustInMachine(t, l, "zippy", "systemctl start --no-block nfs-server; for i in $(seq 600); do s=$(systemctl is-active nfs-server); case $s in active|activating) echo seen $s; exit 0;; esac; sleep 0.05; done; echo never started")
	if !strings.HasPrefix(out, "seen") {
		t.Fatalf("nfs-server without its start checks did not start: %s\n%s", out, journal())
	}
	d := waitInactive(l, "zippy", "nfs-server", started, 3*guardBound)
	j := journal()
	if d == 0 {
		t.Fatalf("nfs-server, started while the lease has run out, still active %s later:\n%s", 3*guardBound, j)
	}
	t.Logf("measured: nfs-server started by someone else after the lease stop was inactive %s after the start was asked (bound: the guard's 1 s check plus systemctl)", d.Round(10*time.Millisecond))
	if strings.Count(j, "done: Consul has not confirmed") < 2 {
		t.Errorf("the guard's journal does not show two lease stops:\n%s", j)
	}
	// The guard's decision: the last lease stop line in the journal.
	var decided string
	for _, line := range strings.Split(j, "\n") {
		if strings.Contains(line, "Consul has not confirmed") && !strings.Contains(line, "done: ") && !strings.Contains(line, "FAILED: ") {
			decided = line
		}
	}
	if at, ok := journalTime(decided); ok {
		t.Logf("measured: the guard decided to stop the hand-started nfs-server %s after the start was asked", at.Sub(started).Round(10*time.Millisecond))
	}
	t.Logf("zippy's journal (guard, nfs-server):\n%s", j)
}

// guardPID is the main PID of zippy's guard (0: none).
func guardPID(l *lab.Lab) string {
	out, _ := inMachine(l, "zippy", "systemctl show -p MainPID --value "+lab.NFSGuardUnit)
	return strings.TrimSpace(out)
}

// Attack F4 on the real cluster: a guard killed again and again keeps
// being restarted (no start limit); a guard stopped by SIGSTOP while
// zippy is cut off from Consul is killed by systemd's watchdog and
// restarted, and the new guard, unable to confirm, stops nfs-server.
// With HOCTL_E2E_GUARD_NO_WATCHDOG=1 the test first turns the watchdog
// off on zippy (a drop-in), to be seen failing.
func TestRealGuardWatchdog(t *testing.T) {
	l, _ := nfsStart(t)
	t.Cleanup(func() { restoreGuards(t, l) })

	if os.Getenv("HOCTL_E2E_GUARD_NO_WATCHDOG") == "1" {
		const dropIn = "/run/systemd/system/" + lab.NFSGuardUnit + ".d/zz-no-watchdog.conf"
		t.Cleanup(func() {
			_, _ = inMachine(l, "zippy", "rm -f "+dropIn+" && systemctl daemon-reload && systemctl restart "+lab.NFSGuardUnit)
		})
		mustInMachine(t, l, "zippy", "mkdir -p /run/systemd/system/"+lab.NFSGuardUnit+".d && printf '[Service]\\nWatchdogSec=0\\n' > "+dropIn+" && systemctl daemon-reload && systemctl restart "+lab.NFSGuardUnit)
		waitFor(t, time.Minute, "nfs-server to run again", func() error {
			if s := isActive(l, "zippy", "nfs-server"); s != "active" {
				_, _ = inMachine(l, "zippy", "systemctl start nfs-server")
				return fmt.Errorf("nfs-server %s", s)
			}
			return nil
		})
	}

	// Killed eight times (systemd's default limit is five starts in
	// ten seconds): restarted every time.
	for i := 1; i <= 8; i++ {
		pid := guardPID(l)
		if pid == "" || pid == "0" {
			t.Fatalf("kill %d: zippy's guard has no main PID (%s)", i, isActive(l, "zippy", lab.NFSGuardUnit))
		}
		mustInMachine(t, l, "zippy", "kill -KILL "+pid)
		waitFor(t, 30*time.Second, fmt.Sprintf("zippy's guard to be restarted after kill %d", i), func() error {
			if p := guardPID(l); p == pid || p == "0" || p == "" || isActive(l, "zippy", lab.NFSGuardUnit) != "active" {
				return fmt.Errorf("guard %s, pid %s", isActive(l, "zippy", lab.NFSGuardUnit), p)
			}
			return nil
		})
	}
	// Each new guard took the stored lease and confirmed: nfs-server ran on.
	if s := isActive(l, "zippy", "nfs-server"); s != "active" {
		t.Fatalf("after 8 kills of its guard, zippy's nfs-server is %s", s)
	}

	// SIGSTOP, and zippy cut off from Consul's servers.
	since := guardSince()
	pid := guardPID(l)
	t.Cleanup(func() { _, _ = inMachine(l, "zippy", "kill -CONT "+pid+" 2>/dev/null || true") })
	cutZippy(t, l)
	mustInMachine(t, l, "zippy", "kill -STOP "+pid)
	stopped := time.Now()
	d := waitInactive(l, "zippy", "nfs-server", stopped, 3*guardBound)
	journal, _ := guardJournal(l, since)
	if d == 0 {
		t.Fatalf("zippy's guard SIGSTOPped and cut off from Consul: nfs-server still active %s later:\n%s", 3*guardBound, journal)
	}
	t.Logf("measured: nfs-server stopped %s after the guard's SIGSTOP (bound: WatchdogSec %s + RestartSec 1 s + the new guard's 1 s start grace + the stop)", d.Round(10*time.Millisecond), lab.GuardWatchdog)
	for _, ev := range []struct{ what, line string }{
		{"the watchdog fires", "Watchdog timeout"},
		{"the new guard decides to stop nfs-server", "this guard started"},
		{"nfs-server is stopped (its ExecStopPost waits out a Consul agent cut off)", "Stopped nfs-server.service"},
	} {
		if at, ok := journalTime(journalLine(journal, ev.line)); ok {
			t.Logf("measured: %s %s after the SIGSTOP", ev.what, at.Sub(stopped).Round(10*time.Millisecond))
		} else {
			t.Errorf("zippy's journal lacks %q:\n%s", ev.line, journal)
		}
	}
}
