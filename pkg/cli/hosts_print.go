package cli

import (
	"fmt"
	"strings"
	"text/tabwriter"

	"github.com/hoctl/hoctl/pkg/hostout"
	"github.com/hoctl/hoctl/pkg/iostreams"
)

// hostsPrinter shows hosts: the inventory's view (host events, or a
// table) and, with --ssh, each host's effective connection (host_ssh
// events, or a block per host of name, value and origin).
type hostsPrinter interface {
	hosts(rows []hostRow) error
	ssh(out []hostSSH) error
}

func newHostsPrinter(ios *iostreams.IOStreams) hostsPrinter {
	if ios.JSON {
		return jsonHostsPrinter{ios}
	}
	return textHostsPrinter{ios}
}

type jsonHostsPrinter struct{ io *iostreams.IOStreams }

func (p jsonHostsPrinter) hosts(rows []hostRow) error { return emitAll(p.io, rows) }

func (p jsonHostsPrinter) ssh(out []hostSSH) error { return emitAll(p.io, out) }

// emitAll emits each event in turn, stopping at the first that fails.
func emitAll[E iostreams.Event](io *iostreams.IOStreams, evs []E) error {
	for _, ev := range evs {
		if err := io.Emit(ev); err != nil {
			return err
		}
	}
	return nil
}

type textHostsPrinter struct{ io *iostreams.IOStreams }

func (p textHostsPrinter) hosts(rows []hostRow) error {
	io := p.io
	managed := func(r hostRow) string {
		if r.Managed {
			return "yes"
		}
		return "no (not deployed)"
	}
	cs := io.OutColorScheme()
	table := make([][]string, 0, len(rows))
	// On a terminal, a boxed table with ", " lists; piped, plain columns
	// with "," lists, one host per line, for grep, cut and awk.
	sep := ","
	if io.IsStdoutTTY() {
		sep = ", "
	}
	for _, r := range rows {
		table = append(table, []string{cs.Bold(r.Name), hostout.Sanitize(r.Address), dash(strings.Join(r.Roles, sep)), dash(strings.Join(r.Groups, sep)), managed(r)})
	}
	_, err := fmt.Fprint(io.Out, cs.Table("", true, []string{"HOST", "ADDRESS", "ROLES", "GROUPS", "MANAGED"}, table))
	return err
}

func (p textHostsPrinter) ssh(out []hostSSH) error {
	io := p.io
	cs := io.OutColorScheme()
	for i, hs := range out {
		if i > 0 {
			fmt.Fprintln(io.Out)
		}
		title := hs.Host
		if hs.Local {
			title += " (local: runs on this machine, without SSH)"
		}
		fmt.Fprintln(io.Out, cs.Bold(title))
		tw := tabwriter.NewWriter(io.Out, 0, 4, 2, ' ', 0)
		for _, name := range hs.Order {
			v := hs.Settings[name]
			// Values come from the inventory and ssh_config, files someone
			// else may have written: shown, not acted on.
			fmt.Fprintf(tw, "  %s\t%s\t%s\n", name, hostout.Sanitize(v.Value), cs.Dim(hostout.Sanitize(v.Origin)))
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	return nil
}
