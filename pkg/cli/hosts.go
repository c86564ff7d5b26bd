package cli

import (
	"context"

	"github.com/spf13/cobra"
)

// HostsOptions are the inputs of `hoctl hosts`.
type HostsOptions struct {
	F       *Factory
	Targets []string // their union; none: all
	SSH     bool     // the effective connection of each host (hosts_ssh.go)
}

// NewCmdHosts lists inventory hosts.
func NewCmdHosts(f *Factory, runF func(*HostsOptions) error) *cobra.Command {
	opts := &HostsOptions{F: f}
	cmd := &cobra.Command{
		Use:   "hosts [TARGET...] [--ssh]",
		Short: "List inventory hosts with address, roles and groups",
		Long: `List the inventory's hosts, or those TARGET selects: a host, a group, a
role, all, a comma list of those, or a glob such as 'c*'. Several TARGETs
select their union.

With --ssh, show how hoctl would connect to each instead: address, port,
user, identity files, known_hosts, host key policy, timeouts, become and
the jump chain, each with where it came from (the inventory's host entry,
its defaults, ~/.ssh/config or the built-in default), like ssh -G.
Nothing connects.`,
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Targets = args
			if runF != nil {
				return runF(opts)
			}
			return hostsRun(cmd.Context(), opts)
		},
	}
	cmd.Flags().BoolVar(&opts.SSH, "ssh", false, "show each host's effective SSH connection and where each value comes from")
	return cmd
}

func hostsRun(ctx context.Context, opts *HostsOptions) error {
	inv, err := opts.F.Inventory(ctx)
	if err != nil {
		return err
	}
	hosts, err := selectUnion(inv, targetsOrAll(opts.Targets))
	if err != nil {
		return err
	}
	if opts.SSH {
		return hostsSSHRun(opts, inv, hosts)
	}
	rows := make([]hostRow, 0, len(hosts))
	for _, h := range hosts {
		addr := h.Address
		if addr == "" {
			addr = h.Name
		}
		rows = append(rows, hostRow{Name: h.Name, Address: addr, Roles: nonNil(h.Roles), Groups: nonNil(inv.GroupsOf(h.Name)), Managed: h.IsManaged()})
	}
	return newHostsPrinter(opts.F.IO).hosts(rows)
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
