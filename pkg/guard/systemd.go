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
	"time"

	"github.com/hoctl/hoctl/pkg/failover"
)

// Systemd acts on the host's own systemd through systemctl.
type Systemd struct {
	Host string
	Now  func() time.Time
	// Root prefixes the fence drop-in's path (tests); "" on a host.
	Root string
	// Exec runs systemctl (tests replace it).
	Exec func(ctx context.Context, args ...string) (string, error)
	// KillAfter is how long a stop waits for systemd before the guard
	// kills the unit's processes itself (DefaultKillAfter when zero).
	KillAfter time.Duration
	// Slice is the cgroup the unit runs in, below the cgroup root
	// ("/system.slice"); "" reads the guard's own from /proc/self/cgroup,
	// as both are services of the same systemd.
	Slice string
	// Log says what the guard did past systemd (nil: nothing said).
	Log func(prio int, msg string)
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
	out, err := s.run(ctx, "show", "-p", "ActiveState", "-p", "SubState", unit)
	props := map[string]string{}
	for _, line := range strings.Split(out, "\n") {
		if k, v, ok := strings.Cut(strings.TrimSpace(line), "="); ok {
			props[k] = v
		}
	}
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
// the unit within KillAfter, the unit's processes killed through its
// cgroup (cgroup.kill, which needs no PID 1), so nothing serves past
// the bound whatever systemd is busy with; systemd runs the unit's stop
// commands when it gets to them.
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
	case <-t.C:
		killErr := s.kill(unit)
		if s.Log != nil {
			if killErr != nil {
				s.Log(Err, fmt.Sprintf("systemd has not stopped %s after %s, and killing its cgroup failed: %v", unit, after, killErr))
			} else {
				s.Log(Warning, fmt.Sprintf("systemd has not stopped %s after %s: killed its cgroup (cgroup.kill)", unit, after))
			}
		}
		r = <-done
		// What counts is that the unit stopped: a kill that could not
		// be done is said only beside a stop that failed too.
		if r.err != nil && killErr != nil {
			r.err = fmt.Errorf("%w; killing its cgroup after %s: %w", r.err, after, killErr)
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
	out, err := s.run(ctx, "show", "-p", "ActiveState", "-p", "Result", unit)
	props := map[string]string{}
	for _, line := range strings.Split(out, "\n") {
		if k, v, ok := strings.Cut(strings.TrimSpace(line), "="); ok {
			props[k] = v
		}
	}
	return err == nil && props["ActiveState"] == "failed" && props["Result"] == "signal"
}

// kill writes cgroup.kill of unit's cgroup: SIGKILL to every process in
// it, at once, by the kernel. The cgroup v2 tree is /sys/fs/cgroup, or
// /sys/fs/cgroup/unified where systemd runs the hybrid layout (the lab's
// machines: systemd 252 on a host whose /sys/fs/cgroup is a tmpfs). A
// slice that holds no cgroup of the unit means the unit has stopped
// meanwhile: nothing to kill. No slice found at all is an error, said,
// not taken for a stopped unit (a second review found the kill silently
// aimed at the wrong tree).
func (s *Systemd) kill(unit string) error {
	if strings.ContainsAny(unit, "/") || unit == "" || unit == "." || unit == ".." {
		return fmt.Errorf("unit name %q", unit)
	}
	slice := s.Slice
	if slice == "" {
		own, err := os.ReadFile("/proc/self/cgroup")
		if err != nil {
			return err
		}
		// The cgroup v2 line: "0::/system.slice/hoctl-guard-….service".
		var p string
		for _, line := range strings.Split(strings.TrimSpace(string(own)), "\n") {
			if rest, ok := strings.CutPrefix(line, "0::"); ok {
				p = rest
			}
		}
		if !strings.HasPrefix(p, "/") {
			return fmt.Errorf("no cgroup v2 path in /proc/self/cgroup: %q", own)
		}
		slice = filepath.Dir(p)
	}
	for _, tree := range []string{"/sys/fs/cgroup", "/sys/fs/cgroup/unified"} {
		dir := filepath.Join(s.Root, tree, slice)
		if _, err := os.Stat(filepath.Join(dir, "cgroup.procs")); err != nil {
			continue
		}
		f, err := os.OpenFile(filepath.Join(dir, unit, "cgroup.kill"), os.O_WRONLY, 0)
		if errors.Is(err, os.ErrNotExist) {
			return nil
		}
		if err != nil {
			return err
		}
		_, err = f.WriteString("1")
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		return err
	}
	return fmt.Errorf("no cgroup v2 tree holds %s (looked in /sys/fs/cgroup and /sys/fs/cgroup/unified)", slice)
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
