package cli

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/hoctl/hoctl/pkg/hostout"
	"github.com/hoctl/hoctl/pkg/inventory"
	"github.com/hoctl/hoctl/pkg/iostreams"

	"github.com/hoctl/hoctl/pkg/replicate"
	"github.com/hoctl/hoctl/pkg/sshexec"
	"github.com/spf13/cobra"
)

// SnapshotsOptions are the inputs of `hoctl snapshots`.
type SnapshotsOptions struct {
	Invocation
	Host string
	Name string
}

// NewCmdSnapshots lists a host's replication snapshots.
func NewCmdSnapshots(f *Factory, runF func(*SnapshotsOptions) error) *cobra.Command {
	opts := &SnapshotsOptions{}
	cmd := &cobra.Command{
		Use:   "snapshots HOST [--name N]",
		Short: "List a host's replication snapshots with UUIDs, and which ones the other side shares",
		Long: `List the replication snapshots HOST holds, for every replication of the
inventory it takes part in (or --name N): UUID, received UUID, creation
time, read-only flag, and which snapshots the other side holds a copy of,
matched by UUID. The newest shared one is the parent of the next
incremental send. Read-only: nothing changes.`,
		Args: rangeArgs(1, 1),
		RunE: func(c *cobra.Command, args []string) error {
			opts.Host = args[0]
			opts.Invocation = f.Invocation()
			if runF != nil {
				return runF(opts)
			}
			return snapshotsRun(c.Context(), opts)
		},
	}
	cmd.Flags().StringVar(&opts.Name, "name", "", "only this replication")
	return cmd
}

func snapshotsRun(ctx context.Context, opts *SnapshotsOptions) error {
	inv, h, reps, err := snapshotsScope(ctx, opts)
	if err != nil {
		return err
	}
	conn, err := opts.Connector(inv)
	if err != nil {
		return err
	}
	defer func() { _ = conn.Close() }()

	side := func(host, dir, base string) (*replicate.Side, error) {
		return listSide(ctx, conn, inv.Host(host), dir, base)
	}
	p := newSnapshotsPrinter(opts.IO)
	var firstErr error
	for _, e := range reps {
		v, err := snapshotsOf(opts.IO, side, h.Name, e)
		if err != nil {
			return err
		}
		if firstErr == nil {
			firstErr = v.peerErr
		}
		p.replication(e, v)
	}
	if err := p.end(); err != nil {
		return err
	}
	return snapshotsOutcome(firstErr)
}

// snapshotsOutcome is the exit of snapshots whose peer side could not be
// read (the first such error): 4 when unreachable, else 1.
func snapshotsOutcome(firstErr error) error {
	switch {
	case errors.As(firstErr, new(*sshexec.ConnError)):
		return &SilentError{Code: ExitUnreachable}
	case firstErr != nil:
		return &SilentError{Code: ExitFailed}
	}
	return nil
}

// listSide reads the snapshots of base in dir on host.
func listSide(ctx context.Context, conn Connector, host *inventory.Host, dir, base string) (*replicate.Side, error) {
	r, err := conn.Runner(ctx, host)
	if err != nil {
		return nil, err
	}
	return replicate.List(ctx, r, dir, base)
}

// snapshotsView is one replication as a host sees it: its snapshots, its
// role and peer, and why the peer's side could not be read.
type snapshotsView struct {
	rows       []SnapshotRow
	role, peer string
	peerRead   bool // the peer's side was read
	peerErr    error
}

// snapshotsOf reads both sides of replication e for host, warning on
// stderr of what one side reports and of a peer that cannot be read.
func snapshotsOf(ios *iostreams.IOStreams, side func(host, dir, base string) (*replicate.Side, error), host string, e replicate.Ends) (snapshotsView, error) {
	warn := ios.ColorScheme().WarningIcon()
	v := snapshotsView{role: "source", peer: e.TargetHost}
	dir, peerDir := e.SourceDir, e.TargetDir
	if host == e.TargetHost {
		v.role, v.peer, dir, peerDir = "target", e.SourceHost, e.TargetDir, e.SourceDir
	}
	mine, err := side(host, dir, e.Base)
	if err != nil {
		return v, err
	}
	theirs, perr := side(v.peer, peerDir, e.Base)
	if perr != nil {
		fmt.Fprintf(ios.ErrOut, "%s %s: cannot read the other side (%s:%s): %s\n", warn, e.Name, v.peer, peerDir, hostout.Sanitize(perr.Error()))
		v.peerErr = perr
	}
	for _, p := range mine.Problems {
		fmt.Fprintf(ios.ErrOut, "%s %s:%s: %s\n", warn, host, dir, hostout.Sanitize(p))
	}
	v.rows, v.peerRead = snapshotRows(e, host, v.role, dir, mine, theirs), theirs != nil
	return v, nil
}

// snapshotsScope is the host the command names and the replications it
// takes part in (--name: only that one).
func snapshotsScope(ctx context.Context, opts *SnapshotsOptions) (*inventory.Inventory, *inventory.Host, []replicate.Ends, error) {
	inv, err := opts.Inventory(ctx)
	if err != nil {
		return nil, nil, nil, err
	}
	h := inv.Host(opts.Host)
	if h == nil {
		_, err := inv.Select(opts.Host) // for its "did you mean"
		if err == nil {
			err = usagef("snapshots takes one host, not %q", opts.Host)
		}
		return nil, nil, nil, err
	}
	reps, err := replicate.Involving(inv, h.Name, opts.Name)
	if err != nil {
		return nil, nil, nil, usagef("%v", err)
	}
	return inv, h, reps, nil
}

// snapshotRows are the rows of one side (host, in dir, the replication's
// role) of replication e: which snapshots the other side shares (theirs
// nil: unknown) and what retention does with each now.
func snapshotRows(e replicate.Ends, host, role, dir string, mine, theirs *replicate.Side) []SnapshotRow {
	common, next := replicate.Shared(mine, theirs, role == "source")
	verdicts := replicate.Verdicts(e, role == "source", mine, next, time.Now())
	var rows []SnapshotRow
	for _, s := range mine.Snapshots {
		v := verdicts[s.Name()]
		rows = append(rows, SnapshotRow{Kept: v.Keep, Why: v.Reason(), Replication: e.Name, Host: host, Role: role, Dir: dir, Name: s.Name(), UUID: s.UUID,
			ReceivedUUID: s.ReceivedUUID, ParentUUID: s.ParentUUID, Created: s.Created, ReadOnly: s.ReadOnly,
			Common: common[s.UUID], NextParent: s.UUID == next, PeerKnown: theirs != nil})
	}
	return rows
}
