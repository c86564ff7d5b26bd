package cli

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"

	"github.com/hoctl/hoctl/pkg/hostout"
	"github.com/hoctl/hoctl/pkg/sshexec"
)

// Where run's output waits for --group, and the plan of --dry-run
// (shown by run_print.go).

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

// runDryRun prints where the command would run, and what, without
// connecting to any host: an ad-hoc command has no before check to run.
func runDryRun(ctx context.Context, opts *RunOptions) error {
	inv, err := opts.F.Inventory(ctx)
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
	return opts.printer.plan(runPlanEvent{Hosts: names, Cmd: opts.Command.Line(), Parallel: opts.Parallel, StdinBytes: len(opts.stdin)})
}
