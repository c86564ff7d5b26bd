package cli

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/hoctl/hoctl/pkg/format"
	"github.com/hoctl/hoctl/pkg/iostreams"
	"github.com/hoctl/hoctl/pkg/sshexec"
)

// RunStdinMax bounds the standard input `run` sends to its hosts. It is
// read whole before any host starts and held in memory, because hosts run
// --parallel at a time and the last one needs the same bytes as the
// first; more than this is refused (exit 2) before anything runs, never
// cut short: a script missing its end must not run.
const RunStdinMax = 16 << 20

// runStdinNoteAfter is how long reading stdin may take before hoctl says
// what it is waiting for: a pipe that never ends (a loop's stdin, an
// inherited descriptor) must not look like a hung host.
const runStdinNoteAfter = time.Second

// readRunStdin is what `run` sends to every host's command, as ssh and
// clush do: nil with -n, when stdin is a terminal (no one types to many
// hosts; ssh -n semantics, so nothing blocks), or when it is empty (the
// command reads /dev/null, exactly as with -n).
func readRunStdin(ctx context.Context, ios *iostreams.IOStreams, noStdin bool) ([]byte, error) {
	if noStdin || ios.In == nil || ios.IsStdinTTY() {
		return nil, nil
	}
	type result struct {
		b   []byte
		err error
	}
	ch := make(chan result, 1)
	// The read cannot take a context; on Ctrl-C it is abandoned, and
	// hoctl exits.
	go func() {
		b, err := io.ReadAll(io.LimitReader(ios.In, RunStdinMax+1))
		ch <- result{b, err}
	}()
	note := time.NewTimer(runStdinNoteAfter)
	defer note.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-note.C:
			fmt.Fprintln(ios.ErrOut, "hoctl: reading standard input to send to every host, until it ends (Ctrl-D on a terminal); -n sends none")
		case r := <-ch:
			switch {
			case r.err != nil:
				return nil, &InputError{Err: fmt.Errorf("reading standard input: %w", r.err)}
			case len(r.b) > RunStdinMax:
				return nil, &InputError{Err: fmt.Errorf("standard input is larger than %s, which run holds in memory to send to every host: nothing was run; copy the file to the hosts first, or use -n to send no input", format.Bytes(RunStdinMax))}
			case len(r.b) == 0:
				return nil, nil
			}
			return r.b, nil
		}
	}
}

// stageStdin copies a command's input to a private temporary file on the
// host (mode 0600) and returns its path; withStdin then runs the command
// reading it.
//
// The input does not go through the command's own session: a command
// that reads its session's input cannot be stopped on Ctrl-C when the
// host refuses signal requests (OpenSSH does, for root), because
// hoctl's watcher (sshexec's killable) needs that input to stay open
// until hoctl goes away. Staged first, the command runs as any other:
// its session's input is the watcher's, and Ctrl-C stops its whole
// process tree. The copy is checked for its length, so a copy cut short
// (Ctrl-C, a full disk) is deleted and nothing runs.
func stageStdin(ctx context.Context, run sshexec.Runner, data []byte, timeout time.Duration) (string, error) {
	script := fmt.Sprintf(`umask 077 && t=$(mktemp "${TMPDIR:-/tmp}/hoctl-stdin.XXXXXXXXXX") || exit 1
if cat >"$t" && [ $(wc -c <"$t") -eq %d ]; then printf '%%s\n' "$t"; else rm -f -- "$t"; exit 1; fi`, len(data))
	res, err := run.Run(ctx, sshexec.Cmd{Script: script, Stdin: bytes.NewReader(data), Timeout: timeout})
	if err != nil {
		return "", &stageError{host: run.Name(), err: err}
	}
	path := strings.TrimSuffix(string(res.Stdout), "\n")
	if !strings.HasPrefix(path, "/") || strings.ContainsAny(path, "\n\x00") {
		return "", &stageError{host: run.Name(), err: fmt.Errorf("mktemp printed %q, not a path", path)}
	}
	return path, nil
}

// stageError is input that could not be put on a host: its command did
// not run.
type stageError struct {
	host string
	err  error
}

func (e *stageError) Error() string {
	return e.host + ": standard input not sent, the command did not run: " + strings.TrimPrefix(e.err.Error(), e.host+": ")
}

func (e *stageError) Unwrap() error { return e.err }

// withStdin is cmd reading the staged file at path, which the shell
// opens and deletes before the command starts: nothing is left on the
// host, even if the command is killed.
func withStdin(cmd sshexec.Cmd, path string) sshexec.Cmd {
	q := sshexec.Quote(path)
	cmd.Script = "exec <" + q + " || exit 126\nrm -f -- " + q + "\n" + cmd.Line()
	cmd.Argv = nil
	return cmd
}

// unstage deletes a staged file whose command may not have started (Ctrl-C
// between the two), briefly, even after ctx was cancelled.
func unstage(ctx context.Context, run sshexec.Runner, path string) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
	defer cancel()
	_, _ = run.Run(ctx, sshexec.Cmd{Script: "rm -f -- " + sshexec.Quote(path)})
}

// runWithStdin runs cmd on run with data as its input (stageStdin).
func runWithStdin(ctx context.Context, run sshexec.Runner, cmd sshexec.Cmd, data []byte) (*sshexec.Result, error) {
	path, err := stageStdin(ctx, run, data, cmd.Timeout)
	if err != nil {
		return nil, err
	}
	res, err := run.Run(ctx, withStdin(cmd, path))
	if err != nil && !errors.As(err, new(*sshexec.ExitError)) {
		unstage(ctx, run, path)
	}
	return res, err
}
