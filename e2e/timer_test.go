package e2e

// The seed's replication timer for real (docs/replicate.md, "Unattended,
// on the source host"): the NixOS snippet's service and timer as real
// systemd units on zippy in the real cluster (lab.ReplicationTimer), the
// hoctl under test at /usr/local/bin/hoctl, an inventory on zippy whose
// zippy is "local". What the seed's operator does with it is what is
// checked: journalctl -u, hoctl history in the unit's state dir,
// systemctl --failed, an overlapping run, a Consul outage, a failover.

import (
	"context"
	"fmt"
	"io"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/hoctl/hoctl/internal/lab"
	"github.com/hoctl/hoctl/pkg/sshexec"
)

const timerUnit = "hoctl-replicate-services.service"

// startTimer installs the timer on zippy (its calendar and accuracy as
// given; the snippet's are *:0/5 and systemd's default minute) and
// removes it at the test's end. Its inventory is the snippet's, with the
// lab's port and c1's address; withConsul adds the cluster's Consul (c1's
// agent, as the workstation's inventory names it), so that an outage is
// one the timer sees.
func startTimer(t *testing.T, l *lab.Lab, onCalendar, accuracy string, withConsul bool) {
	t.Helper()
	c1 := l.Host("c1").Addr
	consul := ""
	if withConsul {
		consul = fmt.Sprintf("consul: {address: \"http://%s:%d\"}\n", c1, lab.ConsulPort)
	}
	tm := lab.ReplicationTimer{
		Replication: "services",
		Description: "hoctl replicate services (zippy -> c1)",
		OnCalendar:  onCalendar, AccuracySec: accuracy, RandomizedDelaySec: "1s",
		Inventory: fmt.Sprintf(`defaults: {identity_files: [/root/.ssh/id_ed25519], known_hosts: /root/.ssh/known_hosts, port: %d, connect_timeout: 5s}
hosts:
  zippy: {address: local}
  c1: {address: %s}
%sreplication:
  services:
    source: {host: zippy, subvolume: /persist/services, snapshot_dir: /persist/services-snapshots}
    target: {host: c1, dir: /persist/services-standby}
    keep: {source: 12, target: 48}
`, lab.Port, c1, consul),
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	remove, err := l.InstallReplicationTimer(ctx, "zippy", tm)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := remove(ctx); err != nil {
			t.Error(err)
		}
	})
}

// holdTimer stops the installed timer (the service stays): a test that
// starts the service itself must not meet a run the timer started.
func holdTimer(t *testing.T, l *lab.Lab) {
	t.Helper()
	mustInMachine(t, l, "zippy", "systemctl stop hoctl-replicate-services.timer")
}

// unitJournal is the unit's journal since the test began, messages only.
func unitJournal(l *lab.Lab, since string) string {
	out, _ := inMachine(l, "zippy", "journalctl -u "+timerUnit+" --since '"+since+"' -o cat --no-pager")
	return out
}

// runUnit starts the unit as its timer would and waits for it to end
// (a oneshot's start returns when it has run); it returns the unit's
// result and its main process's exit status.
func runUnit(t *testing.T, l *lab.Lab) (result, status string) {
	t.Helper()
	_, _ = inMachine(l, "zippy", "systemctl start "+timerUnit)
	out, err := inMachine(l, "zippy", "systemctl show -p Result -p ExecMainStatus --value "+timerUnit)
	if err != nil {
		t.Fatalf("systemctl show: %v %s", err, out)
	}
	f := strings.Fields(out)
	if len(f) != 2 {
		t.Fatalf("systemctl show: %q", out)
	}
	return f[0], f[1]
}

func journalSince(t *testing.T, l *lab.Lab) string {
	t.Helper()
	out, err := inMachine(l, "zippy", "date '+%Y-%m-%d %H:%M:%S'")
	if err != nil {
		t.Fatal(err)
	}
	return out
}

var outcomeLine = regexp.MustCompile(`(?m)^✓ zippy → c1: .*(full send|incremental from services@)`)

// The timer runs the replication by itself every 15 s (accuracy 1 s),
// each run's outcome a line in the unit's journal, every run journaled
// where hoctl history finds it; a run that fails fails the unit
// (systemctl --failed lists it) and says why in its journal; the next
// good run clears it.
func TestReplicationTimerRunsUnattended(t *testing.T) {
	l, env := nfsStart(t)
	since := journalSince(t, l)
	startTimer(t, l, "*:*:0/15", "1s", false)

	waitFor(t, 2*time.Minute, "two runs of the timer in its journal", func() error {
		if n := len(outcomeLine.FindAllString(unitJournal(l, since), -1)); n < 2 {
			return fmt.Errorf("%d run(s)", n)
		}
		return nil
	})
	if t.Failed() {
		t.Fatalf("journal:\n%s", unitJournal(l, since))
	}
	mustInMachine(t, l, "zippy", "systemctl stop hoctl-replicate-services.timer")
	hist := mustInMachine(t, l, "zippy", "XDG_STATE_HOME="+lab.ReplicationTimerStateDir+" hoctl history")
	t.Logf("the unit's journal:\n%s\nhoctl history:\n%s", unitJournal(l, since), hist)
	if n := len(regexp.MustCompile(`(?m)hoctl -i /etc/hoctl/inventory.yaml --yes replicate --name services .* ok `).FindAllString(hist, -1)); n < 2 {
		t.Fatalf("hoctl history in the unit's state dir lists %d runs:\n%s", n, hist)
	}
	if got, want := fp(t, machineRunner(t, l, "c1"), newestOn(t, l, "c1", "/persist/services-standby")), fp(t, machineRunner(t, l, "zippy"), "/persist/services"); got != want {
		t.Fatal("c1's newest copy differs from zippy's data")
	}

	// A failing run fails the unit, and its journal says why.
	mustInMachine(t, l, "c1", "mv /persist/services-standby /persist/services-standby.away")
	since = journalSince(t, l)
	res, status := runUnit(t, l)
	mustInMachine(t, l, "c1", "mv /persist/services-standby.away /persist/services-standby")
	failed := mustInMachine(t, l, "zippy", "systemctl --failed --no-legend --plain")
	j := unitJournal(l, since)
	if res != "exit-code" || status != "3" || !strings.Contains(failed, timerUnit) || !strings.Contains(j, "/persist/services-standby does not exist") {
		t.Fatalf("a failing run: result %s, status %s; systemctl --failed:\n%s\njournal:\n%s", res, status, failed, j)
	}
	if res, status := runUnit(t, l); res != "success" || status != "0" {
		t.Fatalf("the next run: %s %s\n%s", res, status, unitJournal(l, since))
	}
	mustInMachine(t, l, "zippy", "systemctl reset-failed")
	_ = env
}

// holdLock takes replication services' host lock on c1 with hoctl's own
// lock op (what another run of it holds), until the returned release.
func holdLock(t *testing.T, l *lab.Lab, holder string) (release func()) {
	t.Helper()
	cmd, err := l.Command("c1", "sh", "-c", `SSH_ORIGINAL_COMMAND="hoctl-dir lock services '`+holder+`'" exec hoctl target-filter /persist/services-standby`)
	if err != nil {
		t.Fatal(err)
	}
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	line := make([]byte, 64)
	n, _ := io.ReadAtLeast(out, line, len("locked"))
	if !strings.HasPrefix(string(line[:n]), "locked") {
		_ = in.Close()
		_ = cmd.Wait()
		t.Fatalf("taking the lock on c1: %q", line[:n])
	}
	done := false
	release = func() {
		if !done {
			done = true
			_ = in.Close()
			_ = cmd.Wait()
		}
	}
	t.Cleanup(release)
	return release
}

// Two runs of the replication at once exclude each other: with another
// run holding the lock on c1, the timer's run refuses (exit 3) saying
// who holds it, and changes nothing; the next run goes on from where the
// last good one ended.
func TestReplicationTimerOverlapRefused(t *testing.T) {
	l, _ := nfsStart(t)
	startTimer(t, l, "*:0/5", "", false)
	holdTimer(t, l)
	before := mustInMachine(t, l, "c1", "ls /persist/services-standby /persist/services-snapshots 2>/dev/null || true")

	release := holdLock(t, l, "operator@workstation pid 4242")
	since := journalSince(t, l)
	res, status := runUnit(t, l)
	j := unitJournal(l, since)
	if res != "exit-code" || status != "3" || !strings.Contains(j, "is held by operator@workstation pid 4242") {
		t.Fatalf("overlapping run: result %s, status %s\n%s", res, status, j)
	}
	t.Logf("overlapping run, the unit's journal:\n%s", grepLines(j, "✗", "held by", "status="))
	if after := mustInMachine(t, l, "c1", "ls /persist/services-standby /persist/services-snapshots 2>/dev/null || true"); after != before {
		t.Fatalf("the refused run changed c1:\nbefore %s\nafter %s", before, after)
	}
	release()
	mustInMachine(t, l, "zippy", "echo later > /persist/services/later")
	if res, status := runUnit(t, l); res != "success" || status != "0" {
		t.Fatalf("the run after: %s %s\n%s", res, status, unitJournal(l, since))
	}
	if j := unitJournal(l, since); !strings.Contains(j, "incremental from services@") {
		t.Fatalf("the run after the overlap is not incremental:\n%s", j)
	}
	if got, want := fp(t, machineRunner(t, l, "c1"), newestOn(t, l, "c1", "/persist/services-standby")), fp(t, machineRunner(t, l, "zippy"), "/persist/services"); got != want {
		t.Fatal("c1's newest copy differs from zippy's data")
	}
	mustInMachine(t, l, "zippy", "systemctl reset-failed")
}

// A Consul outage does not stop the timer: with Consul stopped on c1 (the
// agent its inventory names) and then with c1 cut off from the other
// servers (no leader), the timer's runs succeed and say Consul was not
// consulted, and so does the workstation's dry run.
func TestReplicationTimerThroughConsulOutage(t *testing.T) {
	l, env := nfsStart(t)
	startTimer(t, l, "*:0/5", "", true)
	holdTimer(t, l)

	mustInMachine(t, l, "c1", "systemctl stop consul")
	t.Cleanup(func() { _, _ = inMachine(l, "c1", "systemctl start consul") })
	since := journalSince(t, l)
	if res, status := runUnit(t, l); res != "success" || status != "0" {
		t.Fatalf("Consul stopped: %s %s\n%s", res, status, unitJournal(l, since))
	}
	if j := unitJournal(l, since); !strings.Contains(j, "Consul was not consulted (unreachable: ") || !outcomeLine.MatchString(j) {
		t.Fatalf("Consul stopped: the journal does not say so, or no outcome:\n%s", j)
	} else {
		t.Logf("Consul stopped, the unit's journal:\n%s", grepLines(j, "Consul was not consulted", "✓ zippy → c1"))
	}
	// The run's journal records it too (the run_start record's params).
	if out := mustInMachine(t, l, "zippy", "grep -l '\"consul\":\"not consulted: ' "+lab.ReplicationTimerStateDir+"/hoctl/runs/* | wc -l"); strings.TrimSpace(out) != "1" {
		t.Errorf("%s journals of the unit's runs say Consul was not consulted, want 1", strings.TrimSpace(out))
	}
	r := hoctlEnv(t, l.Inventory, env, "--dry-run", "replicate", "zippy", "c1")
	if r.code != 0 || !strings.Contains(r.stdout, "Consul was not consulted (unreachable: ") {
		t.Fatalf("workstation dry run, Consul stopped: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	mustInMachine(t, l, "c1", "systemctl start consul")
	waitFor(t, 90*time.Second, "c1's Consul back, with a leader", func() error {
		leader, err := consulAt(l, "c1").Status().Leader()
		if err == nil && leader == "" {
			err = fmt.Errorf("no leader")
		}
		return err
	})

	// Partitioned: c1's Consul server cut off from c2 and c3 has no
	// leader; SSH to c1 still works, and c1's agent still answers.
	heal, err := l.Partition("c1", "c2", "c3")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = heal() })
	waitFor(t, 60*time.Second, "c1's Consul to lose its leader", func() error {
		if leader, err := consulAt(l, "c1").Status().Leader(); err == nil && leader != "" {
			return fmt.Errorf("c1 still follows %s", leader)
		}
		return nil
	})
	since = journalSince(t, l)
	if res, status := runUnit(t, l); res != "success" || status != "0" {
		t.Fatalf("c1 partitioned: %s %s\n%s", res, status, unitJournal(l, since))
	}
	if j := unitJournal(l, since); !strings.Contains(j, "Consul was not consulted (unreachable: ") || strings.Contains(j, "refused the connection") || !outcomeLine.MatchString(j) {
		t.Fatalf("c1 partitioned: the journal does not say so, or no outcome:\n%s", j)
	} else {
		t.Logf("c1 partitioned, the unit's journal:\n%s", grepLines(j, "Consul was not consulted", "✓ zippy → c1"))
	}
	if err := heal(); err != nil {
		t.Fatal(err)
	}
	// Just healed: until c1's serfHealth passes again, Consul refuses
	// sessions on c1's agent, so the workstation's run reads the
	// direction but cannot take the cluster lock; it goes on under the
	// host locks and says so.
	serf := func() string {
		checks, _, err := consulAt(l, "c2").Health().Node("c1", nil)
		if err != nil {
			return err.Error()
		}
		for _, c := range checks {
			if c.CheckID == "serfHealth" {
				return c.Status
			}
		}
		return "no serfHealth"
	}
	before := serf()
	r = hoctlEnv(t, l.Inventory, env, "--yes", "replicate", "zippy", "c1")
	after := serf()
	t.Logf("c1's serfHealth before and after the run: %s, %s", before, after)
	if r.code != 0 {
		t.Fatalf("workstation run just after the heal: exit %d\n%s", r.code, r.stderr)
	}
	if before == "critical" && after == "critical" && !strings.Contains(r.stderr, "Consul's cluster lock was not taken") {
		t.Fatalf("the run took no cluster lock but does not say so:\n%s", r.stderr)
	}
	// Back in the cluster before the next test.
	waitFor(t, 90*time.Second, "c1's serfHealth passing again", func() error {
		if s := serf(); s != "passing" {
			return fmt.Errorf("c1's serfHealth %s", s)
		}
		return nil
	})
	if got, want := fp(t, machineRunner(t, l, "c1"), newestOn(t, l, "c1", "/persist/services-standby")), fp(t, machineRunner(t, l, "zippy"), "/persist/services"); got != want {
		t.Fatal("c1's newest copy differs from zippy's data")
	}
}

// After a failover to c1 (from the workstation), the timer on the old
// source stops sending: its run refuses (exit 3) and its journal says
// why; the reversed direction is what runs, from the workstation.
func TestReplicationTimerAfterFailover(t *testing.T) {
	l, env := nfsStart(t)
	startTimer(t, l, "*:0/5", "", false)
	holdTimer(t, l)
	if res, status := runUnit(t, l); res != "success" || status != "0" {
		t.Fatalf("before the failover: %s %s", res, status)
	}
	if r := hoctlEnv(t, l.Inventory, env, "--yes", "failover", "--to", "c1"); r.code != 0 {
		t.Fatalf("failover --to c1: exit %d\n%s", r.code, r.stderr)
	}
	before := mustInMachine(t, l, "c1", "ls /persist/services-standby")
	since := journalSince(t, l)
	res, status := runUnit(t, l)
	j := unitJournal(l, since)
	if res != "exit-code" || status != "3" || !strings.Contains(j, "runs c1 → zippy since a failover") {
		t.Fatalf("the old source's timer after the failover: %s %s\n%s", res, status, j)
	}
	t.Logf("after the failover, the unit's journal:\n%s", grepLines(j, "✗", "since a failover", "status="))
	if after := mustInMachine(t, l, "c1", "ls /persist/services-standby"); after != before {
		t.Fatalf("the refused run changed c1's standby dir:\n%s\n%s", before, after)
	}
	mustInMachine(t, l, "c1", "echo 'written on c1' > /persist/services/on-c1")
	r := hoctlEnv(t, l.Inventory, env, "--yes", "replicate", "--name", "services")
	if r.code != 0 || !strings.Contains(r.stderr, "c1 → zippy") {
		t.Fatalf("the reversed direction from the workstation: exit %d\n%s", r.code, r.stderr)
	}
	if got := mustInMachine(t, l, "zippy", "cat "+newestOn(t, l, "zippy", "/persist/services-snapshots")+"/on-c1"); got != "written on c1" {
		t.Fatalf("zippy's newest copy: %q", got)
	}
	mustInMachine(t, l, "zippy", "systemctl reset-failed")
}

// newestOn is the newest services@ snapshot in dir on a machine.
func newestOn(t *testing.T, l *lab.Lab, host, dir string) string {
	t.Helper()
	out := strings.TrimSpace(mustInMachine(t, l, host, "ls -d "+dir+"/services@* | sort | tail -n 1"))
	if out == "" {
		t.Fatalf("%s: no snapshot in %s", host, dir)
	}
	return out
}

func machineRunner(t *testing.T, l *lab.Lab, host string) sshexec.Runner {
	t.Helper()
	return labRunners(t, l, host)[0]
}

// grepLines is the lines of s holding any of subs.
func grepLines(s string, subs ...string) string {
	var out []string
	for _, line := range strings.Split(s, "\n") {
		for _, sub := range subs {
			if strings.Contains(line, sub) {
				out = append(out, line)
				break
			}
		}
	}
	return strings.Join(out, "\n")
}
