package guard

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hoctl/hoctl/pkg/failover"
)

// Systemd acts on the host's own systemd through systemctl.
type Systemd struct {
	Host string
	Now  func() time.Time
	// Root prefixes every path the guard reads or writes itself (the
	// fence drop-in, the cgroup tree, /proc/fs/nfsd): tests; "" on a host.
	Root string
	// Exec runs systemctl (tests replace it).
	Exec func(ctx context.Context, args ...string) (string, error)
	// KillAfter is how long a stop waits for systemd before the guard
	// kills the unit's processes itself (DefaultKillAfter when zero).
	KillAfter time.Duration
	// Slice is the cgroup the unit runs in, below the cgroup root
	// ("/system.slice"); "" reads the guard's own from /proc/self/cgroup,
	// as both are services of the same systemd (once: see sliceDir).
	Slice string
	// Log says what the guard did past systemd (nil: nothing said).
	Log func(prio int, msg string)

	mu      sync.Mutex
	sliceAt string // the slice's directory, once found (sliceDir)
}

// DefaultKillAfter bounds a stop that systemd does not carry out:
// PID 1 runs one job at a time, and a daemon-reload someone else began
// (a deploy's, with a slow generator) holds the stop queued behind it
// (attack G2: the server served 34 s past the lease's end, 19.6 s beside
// the new primary). Within the failover's GuardMargin, less the server's
// own stop.
const DefaultKillAfter = 3 * time.Second

// systemctl runs systemctl with args, bounded: a wedged systemd must not
// hold the guard (a stop has the unit's own TimeoutStopSec, 90 s by
// default, before systemd kills it). It returns stdout alone, which
// callers parse (a warning on stderr, such as "unit file changed on
// disk", must not pass for a value); stderr goes into the error.
func systemctl(ctx context.Context, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	var out, errOut bytes.Buffer
	cmd := exec.CommandContext(ctx, "systemctl", args...)
	cmd.Stdout, cmd.Stderr = &out, &errOut
	// systemd's notify socket is the guard's alone (NotifyAccess=main
	// refuses, and logs, a child's message).
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "NOTIFY_SOCKET=") && !strings.HasPrefix(kv, "WATCHDOG_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	err := cmd.Run()
	if err != nil {
		if msg := strings.TrimSpace(errOut.String()); msg != "" {
			err = fmt.Errorf("%s: %w", msg, err)
		}
	}
	return strings.TrimSpace(out.String()), err
}

func (s *Systemd) run(ctx context.Context, args ...string) (string, error) {
	if s.Exec != nil {
		return s.Exec(ctx, args...)
	}
	return systemctl(ctx, args...)
}

// Running implements Units: systemd's ActiveState (whatever the exit
// status); only no answer at all is an error. A unit still in its start
// checks (activating, SubState start-pre) does not run yet: nothing
// serves, and its own lease check (hoctl guard --check-lease) waits for
// this guard's confirmation, which a stop would cancel. If the check
// passes and the lease then runs out, the unit is running at the next
// look.
func (s *Systemd) Running(ctx context.Context, unit string) (bool, error) {
	// Found while the host is well, for a kill when it is not.
	_, _ = s.sliceDir()
	props, out, err := s.show(ctx, unit, "ActiveState", "SubState")
	state := props["ActiveState"]
	switch state {
	case "activating":
		return props["SubState"] != "start-pre", nil
	case "active", "reloading", "refreshing", "deactivating":
		return true, nil
	case "inactive", "failed", "maintenance":
		return false, nil
	}
	if err == nil {
		err = errors.New("no state")
	}
	return false, fmt.Errorf("systemctl show %s: %q: %w", unit, strings.TrimSpace(out), err)
}

// Fence implements Units with the failover's own fence: the same drop-in
// (so that `hoctl failover` back to this host lifts it). The stop comes
// first: the drop-in takes effect only with a daemon-reload, which runs
// the host's generators and can take as long as they do (attack F1: a
// 35 s generator kept the server up 36 s after the key moved). Between
// the stop and the reload, a start is refused by the unit's own checks
// (the owner key names another host; the guard ended its lease).
func (s *Systemd) Fence(ctx context.Context, unit, reason string) error {
	if err := s.Stop(ctx, unit); err != nil {
		return err
	}
	path := filepath.Join(s.Root, failover.FenceDropIn(unit))
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	now := time.Now
	if s.Now != nil {
		now = s.Now
	}
	conf := fmt.Sprintf("# hoctl guard on %s fenced %s here at %s: %s.\n"+
		"# Until reboot; hoctl failover back to this host removes it.\n"+
		"[Unit]\nAssertPathExists=!%s\n", s.Host, unit, now().UTC().Format(time.RFC3339), oneLine(reason), failover.FenceDropIn(unit))
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(conf), 0o644); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	if out, err := s.run(ctx, "daemon-reload"); err != nil {
		return fmt.Errorf("systemctl daemon-reload: %s: %w", out, err)
	}
	return nil
}

// Stop implements Units: systemctl stop, and if systemd has not stopped
// the unit within KillAfter, or the stop failed before, the unit's
// server killed by the guard itself (kill: no fork, no PID 1), so
// nothing serves past the bound whatever systemd is busy with or the
// host lacks; systemd runs the unit's stop commands when it gets to
// them. A host out of PIDs or memory (the sick primary
// `failover --primary-down` is for) fails every fork at once: the
// systemctl stop fails before KillAfter, and the kill is the guard's
// only way to stop the server (attack H1). A stop that
// failed is still said to have failed: the guard retries it, and kills
// again each time.
func (s *Systemd) Stop(ctx context.Context, unit string) error {
	type result struct {
		out string
		err error
	}
	done := make(chan result, 1)
	go func() {
		out, err := s.run(ctx, "stop", unit)
		done <- result{out, err}
	}()
	after := s.KillAfter
	if after <= 0 {
		after = DefaultKillAfter
	}
	t := time.NewTimer(after)
	defer t.Stop()
	var r result
	select {
	case r = <-done:
		if r.err == nil {
			break
		}
		did, killErr := s.kill(unit)
		s.logKill(fmt.Sprintf("systemctl stop %s failed (%v)", unit, r.err), did, killErr)
		if killErr != nil {
			r.err = fmt.Errorf("%w; and the guard's kill: %w", r.err, killErr)
		}
	case <-t.C:
		did, killErr := s.kill(unit)
		s.logKill(fmt.Sprintf("systemd has not stopped %s after %s", unit, after), did, killErr)
		r = <-done
		// What counts is that the unit stopped: a kill that could not
		// be done is said only beside a stop that failed too.
		if r.err != nil && killErr != nil {
			r.err = fmt.Errorf("%w; killing it after %s: %w", r.err, after, killErr)
		}
		if r.err == nil && killErr == nil {
			s.resetKilled(ctx, unit)
		}
	}
	if r.err != nil {
		return fmt.Errorf("systemctl stop %s: %s: %w", unit, r.out, r.err)
	}
	return nil
}

// logKill says why the guard killed and what the kill did.
func (s *Systemd) logKill(why string, did []string, err error) {
	if s.Log == nil {
		return
	}
	msg := why + ": " + strings.Join(did, "; ")
	if err != nil {
		if len(did) == 0 {
			msg = why
		}
		s.Log(Err, fmt.Sprintf("%s; and the guard's kill failed: %v", msg, err))
		return
	}
	s.Log(Warning, msg)
}

// resetKilled clears the failed state the guard's own kill leaves: a
// server killed by SIGKILL while systemd had not begun its stop ends
// "failed" (Result=signal), which says nothing about the server, puts
// it in systemctl --failed and the host in "degraded" (a deploy's health
// check refuses such a host) until someone runs reset-failed. Only that
// state is cleared: a unit that failed otherwise, or stopped cleanly, is
// left as systemd has it. The guard's journal keeps the kill.
func (s *Systemd) resetKilled(ctx context.Context, unit string) {
	if !s.killedFailed(ctx, unit) {
		return
	}
	if out, err := s.run(ctx, "reset-failed", unit); err != nil {
		// Two stops of the guard's (its fuse's and its loop's) may both
		// have killed; the other one's reset came first.
		if s.Log != nil && s.killedFailed(ctx, unit) {
			s.Log(Warning, fmt.Sprintf("%s failed (Result=signal) from the guard's kill, and systemctl reset-failed %s did not clear it: %s: %v", unit, unit, out, err))
		}
		return
	}
	if s.Log != nil {
		s.Log(Notice, fmt.Sprintf("%s failed (Result=signal) from the guard's kill: reset-failed, so that a stop the guard made does not leave the host degraded", unit))
	}
}

// killedFailed says whether unit is failed by a signal, as the kill
// leaves it.
func (s *Systemd) killedFailed(ctx context.Context, unit string) bool {
	props, _, err := s.show(ctx, unit, "ActiveState", "Result")
	return err == nil && props["ActiveState"] == "failed" && props["Result"] == "signal"
}

// show reads the properties names of unit (systemctl show -p NAME ...);
// out is what systemctl printed, for an error to quote.
func (s *Systemd) show(ctx context.Context, unit string, names ...string) (props map[string]string, out string, err error) {
	args := []string{"show"}
	for _, n := range names {
		args = append(args, "-p", n)
	}
	out, err = s.run(ctx, append(args, unit)...)
	props = map[string]string{}
	for _, line := range strings.Split(out, "\n") {
		if k, v, ok := strings.Cut(strings.TrimSpace(line), "="); ok {
			props[k] = v
		}
	}
	return props, out, err
}

// kill stops unit's server without systemd and without a fork (each a
// read, stat, open or write), and says what it did: the unit's
// processes through its cgroup, and a kernel NFS server through
// /proc/fs/nfsd. Both are tried; what neither could do is the error.
func (s *Systemd) kill(unit string) (did []string, err error) {
	if strings.ContainsAny(unit, "/") || unit == "" || unit == "." || unit == ".." {
		return nil, fmt.Errorf("unit name %q", unit)
	}
	said, cgErr := s.killCgroup(unit)
	if said != "" {
		did = append(did, said)
	}
	said, nfsdErr := s.stopKernelNFSD()
	if said != "" {
		did = append(did, said)
	}
	return did, errors.Join(cgErr, nfsdErr)
}

// killCgroup writes cgroup.kill of unit's cgroup: SIGKILL to every
// process in it, at once, by the kernel. A unit with no cgroup (systemd
// removes an empty one) or none of its processes in it is said as
// such, not as a kill: the server may be elsewhere (the kernel's, as
// attack H2 found, or a daemon that left its unit), or the unit has
// stopped meanwhile.
func (s *Systemd) killCgroup(unit string) (string, error) {
	dir, err := s.sliceDir()
	if err != nil {
		return "", err
	}
	cg := filepath.Join(dir, unit)
	f, err := os.OpenFile(filepath.Join(cg, "cgroup.kill"), os.O_WRONLY, 0)
	if errors.Is(err, os.ErrNotExist) {
		return fmt.Sprintf("no process of %s in its cgroup to kill (no cgroup %s)", unit, cg), nil
	}
	if err != nil {
		return "", err
	}
	// Read before the kill, which empties it; written whatever it
	// says, as a process forked since is killed too.
	procs, procsErr := os.ReadFile(filepath.Join(cg, "cgroup.procs"))
	_, err = f.WriteString("1")
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	n := len(strings.Fields(string(procs)))
	switch {
	case err != nil:
		return "", err
	case procsErr != nil:
		return fmt.Sprintf("killed its cgroup (cgroup.kill): its processes not read: %v", procsErr), nil
	case n == 0:
		return fmt.Sprintf("no process of %s in its cgroup to kill (%s is empty)", unit, cg), nil
	}
	if n == 1 {
		return "killed its cgroup (cgroup.kill): 1 process", nil
	}
	return fmt.Sprintf("killed its cgroup (cgroup.kill): %d processes", n), nil
}

// sliceDir is the directory of the cgroup v2 tree that holds the units'
// cgroups: /sys/fs/cgroup, or /sys/fs/cgroup/unified where systemd runs
// the hybrid layout (the lab's machines: systemd 252 on a host whose
// /sys/fs/cgroup is a tmpfs), then the slice. No tree holding the slice
// is an error, said, not taken for a stopped unit (a second review
// found the kill silently aimed at the wrong tree). The first one found
// is kept: a host out of memory may fail the reads (Running finds it
// while the host is well).
func (s *Systemd) sliceDir() (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.sliceAt != "" {
		return s.sliceAt, nil
	}
	slice := s.Slice
	if slice == "" {
		own, err := os.ReadFile(filepath.Join(s.Root, "/proc/self/cgroup"))
		if err != nil {
			return "", err
		}
		// The cgroup v2 line: "0::/system.slice/hoctl-guard-….service".
		var p string
		for _, line := range strings.Split(strings.TrimSpace(string(own)), "\n") {
			if rest, ok := strings.CutPrefix(line, "0::"); ok {
				p = rest
			}
		}
		if !strings.HasPrefix(p, "/") {
			return "", fmt.Errorf("no cgroup v2 path in /proc/self/cgroup: %q", own)
		}
		slice = filepath.Dir(p)
	}
	for _, tree := range []string{"/sys/fs/cgroup", "/sys/fs/cgroup/unified"} {
		dir := filepath.Join(s.Root, tree, slice)
		if _, err := os.Stat(filepath.Join(dir, "cgroup.procs")); err == nil {
			s.sliceAt = dir
			return dir, nil
		}
	}
	return "", fmt.Errorf("no cgroup v2 tree holds %s (looked in /sys/fs/cgroup and /sys/fs/cgroup/unified)", slice)
}

// stopKernelNFSD stops the Linux kernel NFS server, when the host runs
// one, as `rpc.nfsd 0` (nfs-utils' ExecStop) does: 0 written to
// /proc/fs/nfsd/threads. Its server is kernel threads, in no unit's
// cgroup, so the cgroup kill leaves it serving until PID 1 gets to the
// unit's ExecStop (attack H2).
// The unexport (ExecStopPost's exportfs -au) is left to systemd: with
// no thread, nothing serves.
func (s *Systemd) stopKernelNFSD() (string, error) {
	path := filepath.Join(s.Root, "/proc/fs/nfsd/threads")
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("kernel NFS server: %w", err)
	}
	n, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		return "", fmt.Errorf("kernel NFS server: %s holds %q", path, b)
	}
	if n <= 0 {
		return "", nil
	}
	// No O_TRUNC or O_CREATE: a transaction file of nfsd's, written as
	// rpc.nfsd writes it.
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		return "", fmt.Errorf("kernel NFS server (%d threads): %w", n, err)
	}
	_, err = f.WriteString("0")
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return "", fmt.Errorf("kernel NFS server (%d threads): writing 0 to %s: %w", n, path, err)
	}
	return fmt.Sprintf("stopped the kernel NFS server (%d threads: 0 written to %s, as rpc.nfsd 0)", n, path), nil
}

// Start implements Units: --no-block queues the start job and returns;
// the guard's later looks see it run, or fail its start checks.
func (s *Systemd) Start(ctx context.Context, unit string) error {
	if out, err := s.run(ctx, "start", "--no-block", unit); err != nil {
		return fmt.Errorf("systemctl start --no-block %s: %s: %w", unit, out, err)
	}
	return nil
}

// Activated implements Units: ActiveEnterTimestampMonotonic, which
// systemd keeps after the unit stops.
func (s *Systemd) Activated(ctx context.Context, unit string) (string, error) {
	out, err := s.run(ctx, "show", "-p", "ActiveEnterTimestampMonotonic", "--value", unit)
	if err != nil {
		return "", fmt.Errorf("systemctl show %s: %s: %w", unit, out, err)
	}
	mark := strings.TrimSpace(out)
	if _, err := strconv.ParseUint(mark, 10, 64); err != nil {
		return "", fmt.Errorf("systemctl show -p ActiveEnterTimestampMonotonic %s: %q is not a time", unit, mark)
	}
	return mark, nil
}

// oneLine keeps a reason (which quotes Consul's answers) on the drop-in's
// comment line.
func oneLine(s string) string {
	return strings.Map(func(r rune) rune {
		if r < ' ' || r == 0x7f {
			return ' '
		}
		return r
	}, s)
}
