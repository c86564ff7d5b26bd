package replicate

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os/exec"
	"strconv"
	"strings"

	"github.com/hoctl/hoctl/pkg/btrfs"
	"golang.org/x/sys/unix"
)

// inspectTarget answers the target's inspect op: the dir's free space and
// mount options, read from its descriptor, and its entries named base@*.
// The dir opened at all is on btrfs (openTargetDir).
func (d *targetDir) inspectTarget(base string, stdout io.Writer) error {
	var sfs unix.Statfs_t
	if err := unix.Fstatfs(d.fd, &sfs); err != nil {
		return fmt.Errorf("%s: statfs: %w", d.path, err)
	}
	bsize := sfs.Frsize
	if bsize <= 0 {
		bsize = sfs.Bsize
	}
	in := TargetInspection{Avail: int64(sfs.Bavail) * bsize, MissingMount: d.missingMountOptions()}
	var err error
	if in.Entries, err = d.entries(base); err != nil {
		return err
	}
	return json.NewEncoder(stdout).Encode(in)
}

// inspectSource answers the source's inspect op: the subvolume's show
// line and its nested subvolumes (btrfs's own commands, as the sequential
// inspection ran them), the dir's entries named base@*, and the send's
// estimate from the newest complete snapshot (or of the whole subvolume
// when there is none).
func (d *targetDir) inspectSource(ctx context.Context, base, sub string, stdout io.Writer) error {
	in := SourceInspection{}
	out, err := runTool(ctx, "btrfs", "subvolume", "show", sub)
	if err != nil {
		in.ShowError = err.Error()
	} else {
		in.Show, _, _ = strings.Cut(string(out), "\n")
	}
	if out, err = runTool(ctx, "btrfs", "subvolume", "list", "-o", sub); err != nil {
		in.NestedError = err.Error()
	} else if len(out) > maxNestedText {
		in.NestedError = fmt.Sprintf("a listing of more than %d bytes", maxNestedText)
	} else {
		in.Nested = string(out)
	}
	if in.Entries, err = d.entries(base); err != nil {
		return err
	}
	if in.ShowError == "" {
		in.Estimate = estimateFrom(ctx, sub, base, in.Entries)
	}
	return json.NewEncoder(stdout).Encode(in)
}

// estimateFrom estimates the send from the newest complete snapshot of
// base among entries, or of the whole subvolume when there is none.
func estimateFrom(ctx context.Context, sub, base string, entries []Entry) Estimate {
	subs, _ := Classify(entries, "", base)
	var newest *btrfs.Snapshot
	snaps := btrfs.Snapshots(subs, base)
	for i := len(snaps) - 1; i >= 0; i-- {
		if snaps[i].ReadOnly {
			newest = &snaps[i]
			break
		}
	}
	if newest == nil {
		out, err := runTool(ctx, "du", "-sxb", sub)
		if err != nil {
			return Estimate{Error: err.Error()}
		}
		f := strings.Fields(string(out))
		n, err := strconv.ParseInt(firstOr(f, ""), 10, 64)
		if err != nil || n < 0 {
			return Estimate{Error: fmt.Sprintf("du said %q", truncate(string(out), 80))}
		}
		return Estimate{Bytes: n}
	}
	cmd := exec.CommandContext(ctx, "btrfs", "subvolume", "find-new", sub, strconv.FormatUint(newest.Gen, 10))
	var stderr bytes.Buffer
	cmd.Stderr = &limitedBuffer{buf: &stderr, max: 4096}
	pipe, err := cmd.StdoutPipe()
	if err == nil {
		err = cmd.Start()
	}
	if err != nil {
		return Estimate{Error: err.Error()}
	}
	sum, scanErr := sumFindNew(pipe)
	_, _ = io.Copy(io.Discard, pipe)
	if err := cmd.Wait(); err != nil || scanErr != nil {
		return Estimate{Error: fmt.Sprintf("find-new: %v %v %s", err, scanErr, strings.TrimSpace(stderr.String()))}
	}
	return Estimate{Parent: newest.Name(), Gen: newest.Gen, Bytes: sum}
}

func firstOr(f []string, def string) string {
	if len(f) == 0 {
		return def
	}
	return f[0]
}

// runTool runs one of the host's tools and returns its output, bounded;
// its error carries the first line of what it said on stderr.
func runTool(ctx context.Context, name string, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout = &limitedBuffer{buf: &stdout, max: maxNestedText + 1}
	cmd.Stderr = &limitedBuffer{buf: &stderr, max: 4096}
	if err := cmd.Run(); err != nil {
		msg, _, _ := strings.Cut(strings.TrimSpace(stderr.String()), "\n")
		if msg == "" {
			msg = err.Error()
		}
		return nil, fmt.Errorf("%s", msg)
	}
	return stdout.Bytes(), nil
}

// limitedBuffer keeps the first max bytes written to it and drops the
// rest, so a tool's output never grows memory without bound.
type limitedBuffer struct {
	buf *bytes.Buffer
	max int
}

func (l *limitedBuffer) Write(p []byte) (int, error) {
	if room := l.max - l.buf.Len(); room > 0 {
		l.buf.Write(p[:min(len(p), room)])
	}
	return len(p), nil
}
