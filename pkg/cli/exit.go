package cli

import (
	"context"
	"errors"
	"fmt"
	"github.com/hoctl/hoctl/pkg/exitcode"

	"github.com/hoctl/hoctl/pkg/consul"
	"github.com/hoctl/hoctl/pkg/inventory"
	"github.com/hoctl/hoctl/pkg/replicate"
	"github.com/hoctl/hoctl/pkg/sshexec"
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

// HostsError summarises a command that ran on many hosts and did not
// succeed everywhere. Per-host detail has already been printed.
type HostsError struct {
	Total, Failed, Unreachable, NotRun int
}

func (e *HostsError) Error() string {
	return fmt.Sprintf("%d of %d hosts failed (%d unreachable, %d not run)", e.Failed+e.Unreachable+e.NotRun, e.Total, e.Unreachable, e.NotRun)
}

// SilentError carries an exit code for a failure already explained on
// stderr.
type SilentError struct{ Code int }

func (e *SilentError) Error() string { return fmt.Sprintf("exit %d", e.Code) }

// ExitCode maps an error to the documented exit code. It is the one place
// that does so.
func ExitCode(err error) int {
	if err == nil {
		return ExitOK
	}
	var (
		se  *SilentError
		ue  *UsageError
		ie  *inventory.Error
		ies inventory.Errors
		te  *inventory.TargetError
		he  *HostsError
		ce  *sshexec.ConnError
	)
	switch {
	case errors.As(err, &se):
		return se.Code
	case errors.Is(err, context.Canceled):
		return ExitInterrupted
	case errors.As(err, &ue), errors.As(err, new(*InputError)), errors.As(err, &ie), errors.As(err, &ies), errors.As(err, &te):
		return ExitUsage
	case errors.As(err, new(*tasks.UnverifiedError)):
		return ExitUnverified
	case errors.As(err, &ce):
		return ExitUnreachable
	case errors.As(err, new(*tasks.ConfirmError)):
		return ExitNotConfirmed
	case errors.As(err, new(*tasks.RefusedError)), errors.As(err, new(*tasks.LockedError)),
		errors.As(err, new(*consul.HeldError)),
		errors.As(err, new(*replicate.HostLockedError)), errors.As(err, new(*replicate.DirectionError)):
		return ExitRefused
	case errors.As(err, new(*tasks.NoRunError)), errors.As(err, new(*tasks.AmbiguousRunError)):
		return ExitUsage
	case errors.As(err, &he):
		if he.Unreachable > 0 {
			return ExitUnreachable
		}
		return ExitFailed
	}
	return ExitFailed
}

// ErrorEvent is the last event of a --json invocation that failed: the
// same exit code, and the error (docs/json.md).
type ErrorEvent struct {
	Event    string `json:"event"`
	ExitCode int    `json:"exit_code"`
	Error    string `json:"error"`
}

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
