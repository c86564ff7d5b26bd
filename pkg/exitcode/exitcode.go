// Package exitcode holds hoctl's documented exit codes (docs/exit-codes.md)
// and the errors that mean a bad command line, so that the packages that
// find such a mistake can say so without knowing the command tree.
package exitcode

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"slices"
)

// The documented exit codes.
const (
	OK          = 0
	Failed      = 1
	Usage       = 2
	Refused     = 3
	Unreachable = 4
	Unverified  = 5
	// NotConfirmed: the operator answered no (or there was no terminal
	// to ask on and no --yes): nothing was changed.
	NotConfirmed = 6
	Interrupted  = 130
)

// UsageError is a command line hoctl cannot act on (a flag, a target the
// inventory does not have): exit 2, and the usage hint follows it.
type UsageError struct{ Err error }

func (e *UsageError) Error() string { return e.Err.Error() }
func (e *UsageError) Unwrap() error { return e.Err }

// ExitCode is Usage.
func (e *UsageError) ExitCode() int { return Usage }

// Usagef is a UsageError with a formatted message.
func Usagef(format string, args ...any) error {
	return &UsageError{Err: fmt.Errorf(format, args...)}
}

// precedence is which code wins when an error chain holds several: an
// interruption over everything, then a bad command line, a change that
// is not verified (something did change), an unreachable host (also
// when it made a before check fail), no confirmation, a refusal.
var precedence = []int{Interrupted, Usage, Unverified, Unreachable, NotConfirmed, Refused, Failed}

// Of is the exit code err means. Every error that means a code says so
// with an ExitCode() int method, however deep it is wrapped (%w, several
// %w, Unwrap() []error); a cancellation is an interruption; an error that
// says nothing is Failed. When the chain holds several codes, precedence
// decides. This is the one place errors become exit codes.
func Of(err error) int {
	if err == nil {
		return OK
	}
	best := len(precedence)
	// other is a code outside the documented ones that an error passes
	// through on purpose: target-filter's own statuses (75, another run
	// holds the lock; 126, refused), which the hoctl on the other end of
	// the SSH connection reads. It counts only when no documented code
	// is in the chain.
	other := 0
	consider := func(code int) {
		if i := slices.Index(precedence, code); i >= 0 && i < best {
			best = i
		} else if i < 0 && other == 0 && code > 0 && code < 256 {
			other = code
		}
	}
	if errors.Is(err, context.Canceled) {
		consider(Interrupted)
	}
	var walk func(error)
	walk = func(e error) {
		if e == nil {
			return
		}
		// A process's own exit status (os/exec) is not one of ours.
		if c, ok := e.(interface{ ExitCode() int }); ok && !isProcessExit(e) {
			consider(c.ExitCode())
		}
		switch u := e.(type) { //nolint:errorlint // this walks the chain itself, one node at a time
		case interface{ Unwrap() error }:
			walk(u.Unwrap())
		case interface{ Unwrap() []error }:
			for _, e := range u.Unwrap() {
				walk(e)
			}
		}
	}
	walk(err)
	if best == len(precedence) {
		if other != 0 {
			return other
		}
		return Failed
	}
	return precedence[best]
}

func isProcessExit(err error) bool {
	_, ok := err.(*exec.ExitError) //nolint:errorlint // one node of the chain Of walks, not the chain
	return ok
}
