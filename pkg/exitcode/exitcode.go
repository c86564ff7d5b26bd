// Package exitcode holds hoctl's documented exit codes (docs/exit-codes.md)
// and the errors that mean a bad command line, so that the packages that
// find such a mistake can say so without knowing the command tree.
package exitcode

import "fmt"

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
