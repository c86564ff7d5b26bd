package tasks

import "github.com/hoctl/hoctl/pkg/exitcode"

// ExitCode is exitcode.Refused: the lock's holder runs; nothing started.
func (e *LockedError) ExitCode() int { return exitcode.Refused }

// ExitCode is exitcode.Usage: the command line names no such run.
func (e *NoRunError) ExitCode() int { return exitcode.Usage }

// ExitCode is exitcode.Usage: the command line's prefix names several runs.
func (e *AmbiguousRunError) ExitCode() int { return exitcode.Usage }
