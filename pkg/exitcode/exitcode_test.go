package exitcode_test

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"testing"

	"github.com/hoctl/hoctl/pkg/exitcode"
	"github.com/hoctl/hoctl/pkg/sshexec"
	"github.com/hoctl/hoctl/pkg/tasks"
)

// A command that failed, flattened to one line the way the domain
// packages report it (host: doing what: reason).
func failed(host string, res *sshexec.Result, err error) error {
	return fmt.Errorf("%s: stopping nfs-server.service: %w", host, sshexec.OneLine(res, err))
}

func TestOneLineKeepsTheCauseFindable(t *testing.T) {
	conn := &sshexec.ConnError{Host: "zippy", Addr: "127.0.100.11:22", Err: errors.New("connection refused")}
	res := &sshexec.Result{Stderr: []byte("Failed to stop nfs-server.service: Transaction is destructive.\nSee system logs.\n")}
	err := failed("zippy", res, conn)
	if got := err.Error(); got != "zippy: stopping nfs-server.service: Failed to stop nfs-server.service: Transaction is destructive." {
		t.Errorf("message %q: want the first stderr line only", got)
	}
	var ce *sshexec.ConnError
	if !errors.As(err, &ce) || ce != conn {
		t.Error("errors.As(*ConnError) does not see through the one-line error")
	}
	if c := exitcode.Of(err); c != exitcode.Unreachable {
		t.Errorf("exit %d, want %d (unreachable)", c, exitcode.Unreachable)
	}
	// Inside a step's refusal, as the engine reports it.
	if c := exitcode.Of(&tasks.RefusedError{Step: 3, Err: err}); c != exitcode.Unreachable {
		t.Errorf("refused by an unreachable host: exit %d, want 4", c)
	}

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err = failed("c1", nil, fmt.Errorf("c1: %w", ctx.Err()))
	if !errors.Is(err, context.Canceled) || exitcode.Of(err) != exitcode.Interrupted {
		t.Errorf("cancellation through the one-line error: Is %v, exit %d", errors.Is(err, context.Canceled), exitcode.Of(err))
	}
	if err.Error() != "c1: stopping nfs-server.service: c1: context canceled" {
		t.Errorf("no stderr: the error's own text, got %q", err.Error())
	}
	if sshexec.OneLine(res, nil) != nil {
		t.Error("OneLine of no error is an error")
	}
}

type coded int

func (c coded) Error() string { return fmt.Sprintf("code %d", int(c)) }
func (c coded) ExitCode() int { return int(c) }

func TestOfAsksTheChain(t *testing.T) {
	usage := exitcode.Usagef("bad flag")
	for _, c := range []struct {
		err  error
		want int
	}{
		{nil, exitcode.OK},
		{errors.New("x"), exitcode.Failed},
		{usage, exitcode.Usage},
		{fmt.Errorf("a: %w", fmt.Errorf("b: %w", coded(exitcode.Refused))), exitcode.Refused},
		// Several codes in one chain: precedence, as the one switch had it.
		{&tasks.UnverifiedError{Err: &sshexec.ConnError{}}, exitcode.Unverified},
		{fmt.Errorf("%w and %w", coded(exitcode.Refused), coded(exitcode.Unreachable)), exitcode.Unreachable},
		{errors.Join(coded(exitcode.NotConfirmed), coded(exitcode.Refused)), exitcode.NotConfirmed},
		{errors.Join(usage, context.Canceled), exitcode.Interrupted},
		{fmt.Errorf("x: %w", &tasks.ConfirmError{}), exitcode.NotConfirmed},
		// A local process's exit status is not an exit code of hoctl's.
		{fmt.Errorf("local: %w", &exec.ExitError{}), exitcode.Failed},
		// A code outside the documented ones, passed through on purpose
		// (target-filter's lock held, 75, and refusal, 126, which the
		// workstation reads): kept, unless a documented one is there too.
		{coded(75), 75},
		{fmt.Errorf("filter: %w", coded(126)), 126},
		{errors.Join(coded(75), coded(exitcode.Refused)), exitcode.Refused},
	} {
		if got := exitcode.Of(c.err); got != c.want {
			t.Errorf("Of(%v) = %d, want %d", c.err, got, c.want)
		}
	}
}
