package consul

import "github.com/hoctl/hoctl/pkg/exitcode"

// ExitCode is exitcode.Refused: another run holds the cluster lock.
func (e *HeldError) ExitCode() int { return exitcode.Refused }
