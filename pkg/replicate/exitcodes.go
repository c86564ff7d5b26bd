package replicate

import "github.com/hoctl/hoctl/pkg/exitcode"

// ExitCode is exitcode.Refused: another run holds the host's lock.
func (e *HostLockedError) ExitCode() int { return exitcode.Refused }

// ExitCode is exitcode.Refused: the replication runs the other way now.
func (e *DirectionError) ExitCode() int { return exitcode.Refused }
