package cli

import (
	"fmt"

	"github.com/hoctl/hoctl/pkg/iostreams"
	"github.com/hoctl/hoctl/pkg/replicate"
)

// snapshotsPrinter shows each replication's snapshots as a host holds
// them: snapshot events, all at the end (none when a side fails to list),
// or a heading and a table per replication as each is read.
type snapshotsPrinter interface {
	replication(e replicate.Ends, v snapshotsView)
	end() error
}

func newSnapshotsPrinter(ios *iostreams.IOStreams) snapshotsPrinter {
	if ios.JSON {
		return &jsonSnapshotsPrinter{io: ios}
	}
	return &textSnapshotsPrinter{io: ios}
}

type jsonSnapshotsPrinter struct {
	io   *iostreams.IOStreams
	rows []SnapshotRow
}

func (p *jsonSnapshotsPrinter) replication(_ replicate.Ends, v snapshotsView) {
	p.rows = append(p.rows, v.rows...)
}

func (p *jsonSnapshotsPrinter) end() error { return emitAll(p.io, p.rows) }

type textSnapshotsPrinter struct{ io *iostreams.IOStreams }

func (p *textSnapshotsPrinter) end() error { return nil }

func (p *textSnapshotsPrinter) replication(e replicate.Ends, v snapshotsView) {
	io, role, peer, rows, peerKnown := p.io, v.role, v.peer, v.rows, v.peerRead
	cs := io.OutColorScheme()
	fmt.Fprintf(io.Out, "%s %s: %s:%s → %s:%s (this host is the %s; keep %s)\n", cs.Bold("replication"), e.Name, e.SourceHost, e.SourceDir, e.TargetHost, e.TargetDir, role, e.Keep(role == "source"))
	if len(rows) == 0 {
		fmt.Fprintln(io.Out, "  no snapshots")
		return
	}
	var table [][]string
	for _, r := range rows {
		flags := "ro"
		if !r.ReadOnly {
			flags = cs.Yellow("writable")
		}
		shared := "-"
		switch {
		case !peerKnown:
			shared = "?"
		case r.NextParent:
			shared = cs.Green("yes (next parent)")
		case r.Common:
			shared = "yes"
		}
		created := "-"
		if !r.Created.IsZero() {
			created = r.Created.UTC().Format("2006-01-02 15:04:05Z")
		}
		why := r.Why
		if !r.Kept {
			why = cs.Yellow("goes at the next prune: no rule keeps it")
		}
		table = append(table, []string{r.Name, r.UUID, dash(r.ReceivedUUID), created, flags, shared, why})
	}
	fmt.Fprint(io.Out, cs.Table("  ", false, []string{"SNAPSHOT", "UUID", "RECEIVED UUID", "CREATED", "FLAGS", "ON " + peer, "KEPT BECAUSE"}, table))
}
