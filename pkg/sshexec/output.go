package sshexec

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync/atomic"
	"time"
)

// CaptureHead and CaptureTail bound what a Result keeps of a stream the
// caller gave no writer for: the first and last bytes, with a marker
// saying how many were dropped between them. hoctl's own commands print
// far less; a host printing without end costs at most this much.
const (
	CaptureHead = 4 << 20
	CaptureTail = 1 << 20
)

// capture keeps a command's output where the caller gave no writer, for
// both kinds of Runner.
type capture struct{ out, err *HeadTail }

func newCapture() *capture {
	return &capture{out: NewHeadTail(CaptureHead, CaptureTail), err: NewHeadTail(CaptureHead, CaptureTail)}
}

func (c *capture) stdout(cmd Cmd) io.Writer {
	if cmd.Stdout != nil {
		return cmd.Stdout
	}
	return c.out
}

func (c *capture) stderr(cmd Cmd) io.Writer {
	if cmd.Stderr != nil {
		return cmd.Stderr
	}
	return c.err
}

// fill puts captured output into res.
func (c *capture) fill(res *Result, cmd Cmd) {
	if cmd.Stdout == nil {
		res.Stdout = c.out.Bytes()
	}
	if cmd.Stderr == nil {
		res.Stderr = c.err.Bytes()
	}
}

// stderrTail is the end of captured stderr, for an ExitError.
func (c *capture) stderrTail() []byte { return c.err.Tail() }

// withCommandTimeout bounds one command: its own Timeout, else the host's
// command_timeout, else DefaultCommandTimeout. Expiry is reported as
// ErrTimeout (see ctxError).
func withCommandTimeout(ctx context.Context, cmd Cmd, hostDefault time.Duration) (context.Context, context.CancelFunc) {
	timeout := cmd.Timeout
	if timeout == 0 {
		timeout = hostDefault
	}
	if timeout == 0 {
		timeout = DefaultCommandTimeout
	}
	return context.WithTimeoutCause(ctx, timeout, fmt.Errorf("%w after %s", ErrTimeout, timeout))
}

// ctxError says why a command was stopped: its timeout, or the caller's
// cancellation.
func ctxError(host string, ctx context.Context) error {
	if cause := context.Cause(ctx); errors.Is(cause, ErrTimeout) {
		return fmt.Errorf("%s: %w", host, cause)
	}
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		// The caller's own deadline (a status probe's bound), not the
		// command's timeout: say so in words, not Go's.
		return &deadlineError{host: host}
	}
	return fmt.Errorf("%s: %w", host, ctx.Err())
}

// deadlineError is a command stopped by its caller's deadline.
type deadlineError struct{ host string }

func (e *deadlineError) Error() string {
	return e.host + ": timed out (the caller's time limit passed)"
}
func (e *deadlineError) Unwrap() error { return context.DeadlineExceeded }

// cutWriter forwards writes until cut, then discards them: once a command
// is cancelled, the output still in flight is drained without the cost
// of its writer, so that hoctl stops within the grace period even when
// the writer is slow (a terminal, many short lines).
type cutWriter struct {
	w   io.Writer
	cut atomic.Bool
}

func (c *cutWriter) Write(p []byte) (int, error) {
	if c.cut.Load() {
		return len(p), nil
	}
	return c.w.Write(p)
}
