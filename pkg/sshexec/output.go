package sshexec

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
)

// capture keeps a command's output where the caller gave no writer, for
// both kinds of Runner.
type capture struct{ out, err bytes.Buffer }

func (c *capture) stdout(cmd Cmd) io.Writer {
	if cmd.Stdout != nil {
		return cmd.Stdout
	}
	return &c.out
}

func (c *capture) stderr(cmd Cmd) io.Writer {
	if cmd.Stderr != nil {
		return cmd.Stderr
	}
	return &c.err
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

// ctxError says why a command was stopped: its timeout, or the caller's
// cancellation.
func ctxError(host string, ctx context.Context) error {
	if cause := context.Cause(ctx); errors.Is(cause, ErrTimeout) {
		return fmt.Errorf("%s: %w", host, cause)
	}
	return fmt.Errorf("%s: %w", host, ctx.Err())
}
