package sshexec

import "github.com/hoctl/hoctl/pkg/exitcode"

// ExitCode is exitcode.Unreachable.
func (e *ConnError) ExitCode() int { return exitcode.Unreachable }

// LineError is a failed command's reason in one line, for an error
// message that goes on (host: doing what: reason): the first line of the
// command's stderr, else the error's own text. It unwraps to the error,
// so an unreachable host (*ConnError) or a cancellation is still found
// through it.
type LineError struct {
	Line string
	Err  error
}

func (e *LineError) Error() string { return e.Line }
func (e *LineError) Unwrap() error { return e.Err }

// OneLine is err, from the command that gave res, as a *LineError; nil
// when err is nil.
func OneLine(res *Result, err error) error {
	if err == nil {
		return nil
	}
	return &LineError{Line: FirstLine(res, err), Err: err}
}
