package lab

import (
	"context"
	"fmt"
	"path/filepath"
	"syscall"
	"time"
)

// sshdPid is the host's sshd (init of its PID namespace), as seen from here.
func (h *Host) sshdPid() (int, error) {
	c := children(h.Pid)
	if len(c) == 0 {
		return 0, fmt.Errorf("%s: no sshd under unshare pid %d", h.Name, h.Pid)
	}
	return c[0], nil
}

// Kill takes the host down: sshd and every session die, connections are
// refused. Its disk image survives for Restart.
func (l *Lab) Kill(name string) error {
	h := l.Host(name)
	if h == nil {
		return fmt.Errorf("no lab host %q", name)
	}
	killLabPid(h.Pid, l.Dir)
	if l.Parts != nil {
		if err := killCgroup(l.hostCgroup(h)); err != nil {
			return err
		}
	}
	if l.DiskSize > 0 {
		waitLoopGone(filepath.Join(h.Dir, "disk.img"), 5*time.Second)
	}
	h.Pid = 0
	return l.saveState()
}

// Hang freezes the host's sshd (SIGSTOP): TCP still connects, SSH never
// answers.
func (l *Lab) Hang(name string) error { return l.signal(name, syscall.SIGSTOP) }

// Resume undoes Hang.
func (l *Lab) Resume(name string) error { return l.signal(name, syscall.SIGCONT) }

func (l *Lab) signal(name string, sig syscall.Signal) error {
	h := l.Host(name)
	if h == nil {
		return fmt.Errorf("no lab host %q", name)
	}
	if l.Parts != nil {
		// A machine hangs whole: every process frozen.
		return l.freezeMachine(h, sig == syscall.SIGSTOP)
	}
	pid, err := h.sshdPid()
	if err != nil {
		return err
	}
	return syscall.Kill(pid, sig)
}

// Restart boots a host that was killed (or kills and boots it).
func (l *Lab) Restart(ctx context.Context, name string) error {
	h := l.Host(name)
	if h == nil {
		return fmt.Errorf("no lab host %q", name)
	}
	if h.Pid != 0 {
		if err := l.Kill(name); err != nil {
			return err
		}
	}
	return l.boot(ctx, h)
}

// RotateHostKey gives the host a new host key (known_hosts keeps the old
// one) and restarts it, as a reinstall or an attacker would.
func (l *Lab) RotateHostKey(ctx context.Context, name string) error {
	h := l.Host(name)
	if h == nil {
		return fmt.Errorf("no lab host %q", name)
	}
	if err := l.writeHostKey(h); err != nil {
		return err
	}
	return l.Restart(ctx, name)
}
