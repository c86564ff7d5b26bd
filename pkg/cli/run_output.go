package cli

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/hoctl/hoctl/pkg/format"
	"github.com/hoctl/hoctl/pkg/hostout"
	"github.com/hoctl/hoctl/pkg/iostreams"
	"github.com/hoctl/hoctl/pkg/sshexec"
)

// What run shows: a host's output grouped (--group), the summary of
// every host, and the plan of --dry-run.

func printGroup(ios *iostreams.IOStreams, r RunResult, stdout, stderr *spool) {
	cs := ios.OutColorScheme()
	ios.Lock()
	defer ios.Unlock()
	status := cs.Green("exit 0")
	switch {
	case r.Reason != "":
		status = cs.Red(r.Reason)
	case errors.Is(r.err, context.Canceled):
		status = cs.Yellow("interrupted")
	case errors.Is(r.err, sshexec.ErrTimeout):
		status = cs.Red(strings.TrimPrefix(r.Error, r.Host+": command "))
	case r.Signal != "":
		status = cs.Red("signal " + r.Signal)
	case r.ExitCode != 0:
		status = cs.Red(fmt.Sprintf("exit %d", r.ExitCode))
	}
	fmt.Fprintf(ios.Out, "── %s (%s, %s)\n", cs.Bold(cs.Host(r.Host)), status, ms(r.DurationMS))
	stdout.copyTo(ios.Out)
	stderr.copyTo(ios.ErrOut)
	if r.Reason != "" {
		fmt.Fprintln(ios.ErrOut, hostout.Sanitize(r.Error))
	}
}

// spool holds a host's output for --group in an unlinked temporary file,
// or, when none can be made, its head and tail in memory.
type spool struct {
	f    *os.File
	keep *sshexec.HeadTail
	err  error
}

func newSpool() *spool {
	f, err := os.CreateTemp("", "hoctl-run-*")
	if err != nil {
		return &spool{keep: sshexec.NewHeadTail(RunKeepHead, RunKeepTail)}
	}
	_ = os.Remove(f.Name())
	return &spool{f: f}
}

func (s *spool) Write(p []byte) (int, error) {
	if s.keep != nil {
		return s.keep.Write(p)
	}
	if s.err == nil {
		_, s.err = s.f.Write(p)
	}
	return len(p), nil // a full disk must not stop the remote command
}

// copyTo shows the output through hostout, ending in a newline.
func (s *spool) copyTo(w io.Writer) {
	var r io.Reader
	if s.keep != nil {
		r = bytes.NewReader(s.keep.Bytes())
	} else {
		if _, err := s.f.Seek(0, io.SeekStart); err != nil {
			return
		}
		r = s.f
	}
	bw := bufio.NewWriterSize(w, 64<<10)
	defer func() { _ = bw.Flush() }()
	_ = hostout.Copy(bw, "", r)
	if s.err != nil {
		fmt.Fprintf(bw, "[hoctl: output not fully kept: %v]\n", s.err)
	}
}

func (s *spool) Close() {
	if s.f != nil {
		_ = s.f.Close()
	}
}

func printRunSummary(ios *iostreams.IOStreams, results []RunResult, he *HostsError, stdinBytes int) {
	cs := ios.ColorScheme()
	var bad []string
	for _, r := range results {
		switch {
		case r.Reason != "", errors.Is(r.err, sshexec.ErrTimeout):
			bad = append(bad, sshexec.HostError(r.Host, r.err))
		case r.err != nil && r.Signal != "":
			bad = append(bad, fmt.Sprintf("%s: killed by %s", r.Host, r.Signal))
		case r.err != nil && r.ExitCode != 0:
			bad = append(bad, fmt.Sprintf("%s: exit %d", r.Host, r.ExitCode))
		case r.err != nil:
			bad = append(bad, sshexec.HostError(r.Host, r.err))
		}
	}
	ok := he.Total - len(bad)
	// Whether the hosts were given input is part of what happened.
	input := ""
	if stdinBytes > 0 {
		input = fmt.Sprintf(" (given %s of stdin)", format.Bytes(int64(stdinBytes)))
	}
	if len(bad) == 0 {
		fmt.Fprintf(ios.ErrOut, "%s %d/%d hosts exited 0%s\n", cs.SuccessIcon(), ok, he.Total, input)
		return
	}
	fmt.Fprintf(ios.ErrOut, "%s %d/%d hosts exited 0%s; %d failed, %d unreachable\n", cs.FailureIcon(), ok, he.Total, input, he.Failed, he.Unreachable)
	for _, b := range bad {
		fmt.Fprintf(ios.ErrOut, "  %s\n", hostout.Sanitize(b))
	}
}

// runDryRun prints where the command would run, and what, without
// connecting to any host: an ad-hoc command has no before check to run.
func runDryRun(ctx context.Context, opts *RunOptions) error {
	f := opts.F
	inv, err := f.Inventory(ctx)
	if err != nil {
		return err
	}
	hosts, err := selectUnion(inv, opts.Targets)
	if err != nil {
		return err
	}
	names := make([]string, len(hosts))
	for i, h := range hosts {
		names[i] = h.Name
	}
	if f.IO.JSON {
		return f.IO.Emit(runPlanEvent{Hosts: names, Cmd: opts.Command.Line(), Parallel: opts.Parallel, StdinBytes: len(opts.stdin)})
	}
	cs := f.IO.OutColorScheme()
	fmt.Fprintf(f.IO.Out, "%s would run on %d host(s), %d at a time: %s\n", cs.Bold("Plan:"), len(names), min(opts.Parallel, len(names)), strings.Join(names, ", "))
	fmt.Fprintf(f.IO.Out, "     run     %s\n", opts.Command.Line())
	if len(opts.stdin) > 0 {
		fmt.Fprintf(f.IO.Out, "     stdin   %s, the same to every host\n", format.Bytes(int64(len(opts.stdin))))
	}
	fmt.Fprintln(f.IO.ErrOut, "dry run: nothing was run")
	return nil
}
