package yamlerr

import "github.com/hoctl/hoctl/pkg/exitcode"

// ExitCode is exitcode.Usage: an input file hoctl cannot use.
func (e *Error) ExitCode() int { return exitcode.Usage }

// ExitCode is exitcode.Usage.
func (es Errors) ExitCode() int { return exitcode.Usage }
