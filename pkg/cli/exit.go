package cli

import (
	"context"
	"errors"
	"fmt"

	"github.com/hoctl/hoctl/pkg/exitcode"

	"github.com/hoctl/hoctl/pkg/tasks"
)

// The documented exit codes (docs/exit-codes.md).
const (
	ExitOK           = exitcode.OK
	ExitFailed       = exitcode.Failed
	ExitUsage        = exitcode.Usage
	ExitRefused      = exitcode.Refused
	ExitUnreachable  = exitcode.Unreachable
	ExitUnverified   = exitcode.Unverified
	ExitNotConfirmed = exitcode.NotConfirmed
	ExitInterrupted  = exitcode.Interrupted
)

// UsageError is a bad command line; cobra's usage hint follows it.
type UsageError = exitcode.UsageError

func usagef(format string, args ...any) error { return exitcode.Usagef(format, args...) }

// InputError is an input file hoctl cannot use (a job file that does not
// parse): exit 2 like a bad command line, without the usage hint.
type InputError struct{ Err error }

func (e *InputError) Error() string { return e.Err.Error() }
func (e *InputError) Unwrap() error { return e.Err }

// ExitCode is ExitUsage.
func (e *InputError) ExitCode() int { return ExitUsage }

// HostsError summarises a command that ran on many hosts and did not
// succeed everywhere. Per-host detail has already been printed.
type HostsError struct {
	Total, Failed, Unreachable, NotRun int
}

// ExitCode is ExitUnreachable when a host was, else ExitFailed.
func (e *HostsError) ExitCode() int {
	if e.Unreachable > 0 {
		return ExitUnreachable
	}
	return ExitFailed
}

func (e *HostsError) Error() string {
	return fmt.Sprintf("%d of %d hosts failed (%d unreachable, %d not run)", e.Failed+e.Unreachable+e.NotRun, e.Total, e.Unreachable, e.NotRun)
}

// SilentError carries an exit code for a failure already explained on
// stderr.
type SilentError struct{ Code int }

func (e *SilentError) Error() string { return fmt.Sprintf("exit %d", e.Code) }

// ExitCode is the code it carries.
func (e *SilentError) ExitCode() int { return e.Code }

// ExitCode maps an error to the documented exit code: exitcode.Of, which
// asks the error.
func ExitCode(err error) int { return exitcode.Of(err) }

// errorText is err's message, or for an error whose detail was already
// reported (as events), what its exit code means.
func errorText(err error, code int) string {
	var se *SilentError
	var re *tasks.ReportedError
	if errors.Is(err, context.Canceled) {
		return "interrupted" // as the human line says, not Go's "context canceled"
	}
	if !errors.As(err, &se) && !errors.As(err, &re) {
		return err.Error()
	}
	if re != nil {
		return re.Error()
	}
	switch code {
	case ExitFailed:
		return "failed (see the events before)"
	case ExitRefused:
		return "refused: a before check fails"
	case ExitUnreachable:
		return "a host was unreachable"
	case ExitUnverified:
		return "changed but not verified: an after check failed"
	}
	return fmt.Sprintf("exit %d", code)
}
