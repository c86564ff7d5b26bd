package replicate

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync"

	"github.com/hoctl/hoctl/pkg/btrfs"
	"github.com/hoctl/hoctl/pkg/sshexec"
)

// One inspection, one round trip per host: the dir primitive's inspect op
// gathers on the host what the sequential inspection asked in about eight
// commands, and answers in one JSON document. Names stay data: every
// section is a JSON value of its own (a name with newlines or a forged
// "Key: value" line in one is a string there, never a line of another),
// and the document is decoded strictly (no unknown field, nothing after
// it), so that a host whose answer is not exactly one inspection is an
// error, never a guess.

// opInspect is the inspect op: `inspect BASE` on a target (through the
// target filter too: it only reads the dir), `inspect BASE SUBVOLUME` on
// a source (a host op: it runs btrfs on the subvolume).
const opInspect = "inspect"

// TargetInspection is a target dir as its inspect op saw it.
type TargetInspection struct {
	// Avail is the bytes free to an unprivileged writer, as df shows.
	Avail int64 `json:"avail"`
	// MissingMount is which of nosuid and nodev the dir's mount lacks.
	MissingMount []string `json:"missing_mount"`
	Entries      []Entry  `json:"entries"`
}

// SourceInspection is a source subvolume and its snapshot dir as the
// source's inspect op saw them.
type SourceInspection struct {
	// Show is the first line of `btrfs subvolume show SUBVOLUME`, or
	// ShowError why it failed (not a subvolume).
	Show      string `json:"show"`
	ShowError string `json:"show_error"`
	// Nested is `btrfs subvolume list -o SUBVOLUME`, or NestedError.
	Nested      string  `json:"nested"`
	NestedError string  `json:"nested_error"`
	Entries     []Entry `json:"entries"`
	// Estimate is the send's size from the newest complete snapshot,
	// the parent a steady replication uses (or of the whole subvolume
	// when there is none); the workstation asks again when it chooses
	// otherwise.
	Estimate Estimate `json:"estimate"`
}

// Estimate is a send's estimated size: from Parent (by generation Gen),
// or of the whole subvolume when Parent is "".
type Estimate struct {
	Parent string `json:"parent"`
	Gen    uint64 `json:"gen"`
	Bytes  int64  `json:"bytes"`
	Error  string `json:"error"`
}

// maxInspection bounds an inspect op's answer: beyond the largest
// listing ParseEntries takes, it is refused.
const maxInspection = 64 << 20

// maxNestedText bounds the nested-subvolume listing a source sends.
const maxNestedText = 1 << 20

// decodeStrict reads exactly one JSON document of v's type from out.
func decodeStrict(out []byte, v any) error {
	if len(out) > maxInspection {
		return fmt.Errorf("an answer of %d bytes, more than %d", len(out), maxInspection)
	}
	dec := json.NewDecoder(bytes.NewReader(out))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("not an inspection: %q", truncate(string(out), 80))
	}
	if _, err := dec.Token(); err != io.EOF {
		return fmt.Errorf("more than one inspection: %q", truncate(string(out), 80))
	}
	return nil
}

func checkEntries(entries []Entry) error {
	if len(entries) > maxEntries {
		return fmt.Errorf("more than %d entries", maxEntries)
	}
	for i, e := range entries {
		if e.Name == "" || !knownKinds[e.Kind] {
			return fmt.Errorf("entry %d: without a name or of an unknown kind %q", i+1, truncate(e.Kind, 40))
		}
	}
	return nil
}

// ParseTargetInspection reads a target's inspect op answer.
func ParseTargetInspection(out []byte) (*TargetInspection, error) {
	var in TargetInspection
	if err := decodeStrict(out, &in); err != nil {
		return nil, err
	}
	if in.Avail < 0 {
		return nil, fmt.Errorf("not a free space: %d", in.Avail)
	}
	for _, o := range in.MissingMount {
		if o != "nosuid" && o != "nodev" {
			return nil, fmt.Errorf("not a mount option: %q", truncate(o, 40))
		}
	}
	if err := checkEntries(in.Entries); err != nil {
		return nil, err
	}
	return &in, nil
}

// ParseSourceInspection reads a source's inspect op answer.
func ParseSourceInspection(out []byte) (*SourceInspection, error) {
	var in SourceInspection
	if err := decodeStrict(out, &in); err != nil {
		return nil, err
	}
	if len(in.Nested) > maxNestedText {
		return nil, fmt.Errorf("a nested-subvolume listing of %d bytes", len(in.Nested))
	}
	if strings.Contains(in.Show, "\n") {
		return nil, fmt.Errorf("the subvolume's show line holds a newline: %q", truncate(in.Show, 80))
	}
	if in.Estimate.Bytes < 0 {
		return nil, fmt.Errorf("not a size: %d", in.Estimate.Bytes)
	}
	if p := in.Estimate.Parent; p != "" {
		if _, _, ok := btrfs.ParseSnapshotName(p); !ok {
			return nil, fmt.Errorf("the estimate's parent is not a snapshot name: %q", truncate(p, 80))
		}
	}
	if err := checkEntries(in.Entries); err != nil {
		return nil, err
	}
	return &in, nil
}

// sumFindNew adds the extent lengths `btrfs subvolume find-new` prints,
// as `awk '/^inode/ {for (i=1;i<NF;i++) if ($i=="len") s+=$(i+1)}'` did:
// an estimate only (the names it prints are data, and a forged line can
// at most change the estimate).
func sumFindNew(r io.Reader) (int64, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	var sum int64
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, "inode") {
			continue
		}
		f := strings.Fields(line)
		for i := 0; i+1 < len(f); i++ {
			if f[i] == "len" {
				if n, err := strconv.ParseInt(f[i+1], 10, 64); err == nil && n > 0 && sum+n > sum {
					sum += n
				}
			}
		}
	}
	return sum, sc.Err()
}

// errOldHoctl is a host whose hoctl predates the inspect op.
var errOldHoctl = errors.New("the host's hoctl has no inspect op")

// refusedOp recognises an op the host's hoctl does not know: its target
// filter or its dir-op refused it.
func refusedOp(res *sshexec.Result, err error) bool {
	var ee *sshexec.ExitError
	if !errors.As(err, &ee) || res == nil {
		return false
	}
	s := string(res.Stderr)
	return strings.Contains(s, "target-filter: refused") || strings.Contains(s, "not an op of the dir primitive")
}

// targetInspectCmd is the target's inspect op on r (nil: as a plan shows
// it). Empty input, as List's first command: see there.
func targetInspectCmd(r sshexec.Runner, dir, base string) sshexec.Cmd {
	c := dirCmd(r, dir, opInspect, base)
	c.Stdin = strings.NewReader("")
	return c
}

// sourceInspectCmd is the source's inspect host op on r.
func sourceInspectCmd(r sshexec.Runner, e Ends) sshexec.Cmd {
	return sshexec.Cmd{Argv: hostOpArgv(hoctlOn(r), e.SourceDir, opInspect, e.Base, e.Subvolume), Stdin: strings.NewReader("")}
}

// sides is what one inspection of both hosts found.
type sides struct {
	src, dst *Side
	warning  string
	avail    int64
	// est is the source's estimate, nil when it was not made with the
	// listing (an older hoctl there).
	est *Estimate
}

// inspectBatched inspects both hosts at once, each in one round trip.
// errOldHoctl: one of them has a hoctl without the op.
func (r *Run) inspectBatched(ctx context.Context, srcR, dstR sshexec.Runner) (*sides, error) {
	e := r.Ends
	var (
		wg             sync.WaitGroup
		srcRes, dstRes *sshexec.Result
		srcErr, dstErr error
	)
	wg.Add(1)
	go func() {
		defer wg.Done()
		srcRes, srcErr = srcR.Run(ctx, sourceInspectCmd(srcR, e))
	}()
	dstRes, dstErr = dstR.Run(ctx, targetInspectCmd(dstR, e.TargetDir, e.Base))
	wg.Wait()
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	if dstErr != nil {
		switch {
		case isEmptyStream(dstRes):
			return nil, restrictedKeyError(e.TargetHost)
		case refusedOp(dstRes, dstErr):
			return nil, errOldHoctl
		case dstRes != nil && strings.Contains(string(dstRes.Stderr), "No such file or directory"):
			return nil, missingTargetDir(e)
		case dstRes != nil && strings.Contains(string(dstRes.Stderr), "not on btrfs"):
			return nil, fmt.Errorf("%s: %s is not on btrfs: btrfs receive needs a btrfs filesystem", e.TargetHost, e.TargetDir)
		}
		return nil, dirOpError(e.TargetHost, dstRes, dstErr)
	}
	if srcErr != nil {
		if refusedOp(srcRes, srcErr) {
			return nil, errOldHoctl
		}
		if srcRes != nil && strings.Contains(string(srcRes.Stderr), "No such file or directory") {
			return nil, fmt.Errorf("%s: %s does not exist", e.SourceHost, e.SourceDir)
		}
		return nil, dirOpError(e.SourceHost, srcRes, srcErr)
	}
	ti, err := ParseTargetInspection(dstRes.Stdout)
	if err != nil {
		return nil, fmt.Errorf("%s: inspecting %s: %w", e.TargetHost, e.TargetDir, err)
	}
	si, err := ParseSourceInspection(srcRes.Stdout)
	if err != nil {
		return nil, fmt.Errorf("%s: inspecting %s: %w", e.SourceHost, e.Subvolume, err)
	}
	if si.ShowError != "" {
		return nil, fmt.Errorf("%s: %s is not a btrfs subvolume: %s", e.SourceHost, e.Subvolume, si.ShowError)
	}
	if si.NestedError != "" {
		return nil, fmt.Errorf("%s: listing subvolumes nested in %s: %s", e.SourceHost, e.Subvolume, si.NestedError)
	}
	if nested := nestedOf(e, si.Show, si.Nested); len(nested) > 0 {
		return nil, NestedError(e.SourceHost, e, nested)
	}
	s := &sides{avail: ti.Avail, est: &si.Estimate,
		src: sideOf(e.SourceHost, e.SourceDir, e.Base, si.Entries), dst: sideOf(e.TargetHost, e.TargetDir, e.Base, ti.Entries)}
	if len(ti.MissingMount) > 0 {
		s.warning = mountWarningText(e.TargetHost, e.TargetDir, ti.MissingMount)
	}
	return s, nil
}

// inspectSequential is the inspection of a host whose hoctl has no
// inspect op: one command after the other, as before it.
func (r *Run) inspectSequential(ctx context.Context, srcR, dstR sshexec.Runner) (*sides, error) {
	e := r.Ends
	if res, err := srcR.Run(ctx, sshexec.Cmd{Argv: []string{"btrfs", "subvolume", "show", e.Subvolume}}); err != nil {
		return nil, fmt.Errorf("%s: %s is not a btrfs subvolume: %w", e.SourceHost, e.Subvolume, sshexec.OneLine(res, err))
	}
	nested, err := Nested(ctx, srcR, e)
	if err != nil {
		return nil, err
	}
	if len(nested) > 0 {
		return nil, NestedError(e.SourceHost, e, nested)
	}
	// The first command on the target has empty input, as List's: see there.
	res, err := dstR.Run(ctx, sshexec.Cmd{Argv: []string{"stat", "-f", "-c", "%T", e.TargetDir}, Stdin: strings.NewReader("")})
	if err != nil {
		if isEmptyStream(res) {
			return nil, restrictedKeyError(e.TargetHost)
		}
		reason := sshexec.FirstLine(res, err)
		if strings.Contains(reason, "No such file") {
			return nil, missingTargetDir(e)
		}
		return nil, fmt.Errorf("%s: target dir %s: %w", e.TargetHost, e.TargetDir, sshexec.OneLine(res, err))
	}
	if fs := strings.TrimSpace(string(res.Stdout)); fs != "btrfs" {
		return nil, fmt.Errorf("%s: %s is on %s, not btrfs: btrfs receive needs a btrfs filesystem", e.TargetHost, e.TargetDir, fs)
	}
	s := &sides{warning: MountWarning(ctx, dstR, e.TargetDir)}
	if s.src, err = List(ctx, srcR, e.SourceDir, e.Base); err != nil {
		return nil, err
	}
	if s.dst, err = List(ctx, dstR, e.TargetDir, e.Base); err != nil {
		return nil, err
	}
	res, err = dstR.Run(ctx, sshexec.Cmd{Argv: []string{"df", "-B1", "--output=avail", e.TargetDir}})
	if err != nil {
		return nil, fmt.Errorf("%s: df %s: %w", e.TargetHost, e.TargetDir, sshexec.OneLine(res, err))
	}
	if s.avail, err = dfAvail(res.Stdout); err != nil {
		return nil, fmt.Errorf("%s: df %s: %w", e.TargetHost, e.TargetDir, err)
	}
	return s, nil
}

// missingTargetDir: hoctl does not create it, so that a typo in dir:
// never fills the wrong disk.
func missingTargetDir(e Ends) error {
	return fmt.Errorf("%s: target dir %s does not exist: create it (hoctl run %s -- mkdir -p %s), a directory on btrfs with room for the copies, outside the replicated subvolume",
		e.TargetHost, e.TargetDir, e.TargetHost, sshexec.Quote(e.TargetDir))
}

// sideOf is a listing's snapshots of base in dir on host, and its
// problems.
func sideOf(host, dir, base string, entries []Entry) *Side {
	side := &Side{Host: host, Dir: dir}
	var subs []btrfs.Subvolume
	subs, side.Problems = Classify(entries, dir, base)
	side.Snapshots = btrfs.Snapshots(subs, base)
	return side
}

// estimateCmd estimates the send: about the subvolume's data for a full
// send, the bytes changed since the parent for an incremental, as
// `btrfs subvolume find-new` reports them.
func estimateCmd(sub string, parent *btrfs.Common) sshexec.Cmd {
	if parent == nil {
		return sshexec.Cmd{Script: "du -sxb " + sshexec.Quote(sub) + " | cut -f1"}
	}
	return sshexec.Cmd{Script: fmt.Sprintf("btrfs subvolume find-new %s %d | awk '/^inode/ {for (i=1;i<NF;i++) if ($i==\"len\") s+=$(i+1)} END {print s+0}'", sshexec.Quote(sub), parent.Source.Gen)}
}

// estimateFits reports whether the source's own estimate is for the
// parent chosen (nil: a full send).
func estimateFits(est *Estimate, parent *btrfs.Common) bool {
	if est == nil || est.Error != "" {
		return false
	}
	if parent == nil {
		return est.Parent == ""
	}
	return est.Parent == parent.Source.Name() && est.Gen == parent.Source.Gen
}
