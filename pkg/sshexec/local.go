package sshexec

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"syscall"
	"time"

	"github.com/hoctl/hoctl/pkg/trace"
)

// Local runs commands on this machine for hosts whose address is "local",
// with the same semantics as an SSH host: sh -c, sudo wrapping, the whole
// process group stopped on cancellation.
type Local struct {
	target *Target
	trace  *trace.Log
}

// NewLocal returns a Runner for t on this machine.
func NewLocal(t *Target) *Local { return &Local{target: t} }

// Name implements Runner.
func (l *Local) Name() string { return l.target.Name }

// Run implements Runner.
func (l *Local) Run(ctx context.Context, cmd Cmd) (*Result, error) {
	done := traceRun(l.trace, l.target, cmd)
	res, err := l.run(ctx, cmd)
	done(res, err)
	return res, err
}

func (l *Local) run(ctx context.Context, cmd Cmd) (*Result, error) {
	ctx, cancel := withCommandTimeout(ctx, cmd, l.target.CommandTimeout)
	defer cancel()

	secrets, err := secretNames(cmd)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", l.target.Name, err)
	}
	c := exec.Command("sh", "-c", withBecome(cmd.Line(), l.target.Become, secrets))
	if len(secrets) > 0 {
		// The environment is readable by the same user only, unlike argv.
		c.Env = os.Environ()
		for _, n := range secrets {
			c.Env = append(c.Env, n+"="+cmd.Secrets[n])
		}
	}
	// A session of its own, as sshd gives a command: no controlling
	// terminal, so a command that would ask on /dev/tty (a hoctl without
	// --yes in a runbook step, sudo, git) fails at once instead of being
	// stopped by the kernel for reading the operator's terminal from the
	// background while hoctl waits for it. Also its own process group,
	// which cancellation kills.
	c.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	capt := newCapture()
	outW, errW := &cutWriter{w: capt.stdout(cmd)}, &cutWriter{w: capt.stderr(cmd)}
	c.Stdout, c.Stderr = outW, errW
	var stdin io.WriteCloser
	if cmd.Stdin != nil {
		var err error
		if stdin, err = c.StdinPipe(); err != nil {
			return nil, err
		}
	}
	start := time.Now()
	if err := c.Start(); err != nil {
		return nil, fmt.Errorf("%s: %w", l.target.Name, err)
	}
	if stdin != nil {
		go func() {
			_, _ = io.Copy(stdin, cmd.Stdin)
			_ = stdin.Close()
		}()
	}
	done := make(chan error, 1)
	go func() { done <- c.Wait() }()
	var ctxErr error
	select {
	case err = <-done:
	case <-ctx.Done():
		ctxErr = ctxError(l.target.Name, ctx)
		outW.cut.Store(true)
		errW.cut.Store(true)
		_ = syscall.Kill(-c.Process.Pid, syscall.SIGTERM)
		select {
		case err = <-done:
		case <-time.After(cancelGrace):
			_ = syscall.Kill(-c.Process.Pid, syscall.SIGKILL)
			err = <-done
		}
	}
	res := &Result{Host: l.target.Name, Duration: time.Since(start)}
	capt.fill(res, cmd)
	if ctxErr != nil {
		res.ExitCode = -1
		return res, ctxErr
	}
	if err == nil {
		return res, nil
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			res.ExitCode = -1
			res.Signal = ws.Signal().String()
		} else {
			res.ExitCode = ee.ExitCode()
		}
		return res, &ExitError{Host: l.target.Name, Code: res.ExitCode, Signal: res.Signal, Stderr: tail(capt.stderrTail(), 3)}
	}
	return res, fmt.Errorf("%s: %w", l.target.Name, err)
}

// Ping implements the same probe as Conn.Ping; there is no wire to cross.
func (l *Local) Ping(context.Context) (time.Duration, error) { return 0, nil }
