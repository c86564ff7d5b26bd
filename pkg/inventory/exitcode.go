package inventory

import "github.com/hoctl/hoctl/pkg/exitcode"

// ExitCode is exitcode.Usage: a target the inventory does not have.
func (e *TargetError) ExitCode() int { return exitcode.Usage }
