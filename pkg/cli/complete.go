package cli

import (
	"context"
	"sort"
	"strings"

	"github.com/hoctl/hoctl/pkg/inventory"
	"github.com/spf13/cobra"
)

// completer holds the completion functions: each reads the inventory or
// the journal, and a failure completes nothing rather than an error.
type completer struct{ f *Factory }

func (c *completer) inventory(ctx context.Context) *inventory.Inventory {
	inv, err := c.f.Inventory(ctx)
	if err != nil {
		return nil
	}
	return inv
}

// targets completes a TARGET expression: after a comma, `!` or `&` it
// completes the next name and keeps what was typed before it.
func (c *completer) targets(cmd *cobra.Command, _ []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
	inv := c.inventory(cmd.Context())
	if inv == nil {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	cut := strings.LastIndexAny(toComplete, ",!&") + 1
	prefix, partial := toComplete[:cut], toComplete[cut:]
	var out []cobra.Completion
	seen := map[string]bool{}
	add := func(name, desc string) {
		if seen[name] || !strings.HasPrefix(name, partial) {
			return
		}
		seen[name] = true
		out = append(out, cobra.CompletionWithDesc(prefix+name, desc))
	}
	for _, h := range inv.HostNames() {
		add(h, "host")
	}
	groups := make([]string, 0, len(inv.Groups))
	for g := range inv.Groups {
		groups = append(groups, g)
	}
	sort.Strings(groups)
	for _, g := range groups {
		add(g, "group: "+strings.Join(inv.Groups[g], ","))
	}
	var roles []string
	for _, h := range inv.HostNames() {
		roles = append(roles, inv.Host(h).Roles...)
	}
	sort.Strings(roles)
	for _, r := range roles {
		add(r, "role")
	}
	add("all", "every host")
	return out, cobra.ShellCompDirectiveNoFileComp
}

func (c *completer) hosts(cmd *cobra.Command, _ []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
	inv := c.inventory(cmd.Context())
	if inv == nil {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	var out []cobra.Completion
	for _, h := range inv.HostNames() {
		if strings.HasPrefix(h, toComplete) {
			out = append(out, cobra.CompletionWithDesc(h, strings.Join(inv.Host(h).Roles, ",")))
		}
	}
	return out, cobra.ShellCompDirectiveNoFileComp
}

func (c *completer) replications(cmd *cobra.Command, _ []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
	inv := c.inventory(cmd.Context())
	if inv == nil {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	var out []cobra.Completion
	for name, r := range inv.Replication {
		if strings.HasPrefix(name, toComplete) {
			out = append(out, cobra.CompletionWithDesc(name, r.Source.Host+" → "+r.Target.Host))
		}
	}
	sort.Strings(out)
	return out, cobra.ShellCompDirectiveNoFileComp
}

func (c *completer) nfsServices(cmd *cobra.Command, _ []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
	inv := c.inventory(cmd.Context())
	if inv == nil {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	var out []cobra.Completion
	for name, s := range inv.NFS {
		if strings.HasPrefix(name, toComplete) {
			out = append(out, cobra.CompletionWithDesc(name, s.Export))
		}
	}
	sort.Strings(out)
	return out, cobra.ShellCompDirectiveNoFileComp
}

// nfsMembers completes failover --to: the primary and standbys of the
// NFS service --service names (of every service when it names none),
// the only hosts failover can move a service to.
func (c *completer) nfsMembers(cmd *cobra.Command, _ []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
	inv := c.inventory(cmd.Context())
	if inv == nil {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	service, _ := cmd.Flags().GetString("service")
	var names []string
	for name := range inv.NFS {
		if service == "" || name == service {
			names = append(names, name)
		}
	}
	sort.Strings(names)
	var out []cobra.Completion
	seen := map[string]bool{}
	for _, name := range names {
		svc := inv.NFS[name]
		add := func(h, role string) {
			if !seen[h] && strings.HasPrefix(h, toComplete) {
				seen[h] = true
				out = append(out, cobra.CompletionWithDesc(h, name+" "+role))
			}
		}
		add(svc.Primary, "primary")
		for _, h := range svc.Standbys {
			add(h, "standby")
		}
	}
	return out, cobra.ShellCompDirectiveNoFileComp
}

// runArgs completes `run TARGET... -- CMD`: the first target only (a comma
// list completes throughout). Cobra does not tell a completion function
// whether -- came before the word, and a remote command must not be
// offered host names; the shell's own completion is no help for it either.
func (c *completer) runArgs(cmd *cobra.Command, args []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
	if len(args) == 0 {
		return c.targets(cmd, args, toComplete)
	}
	return nil, cobra.ShellCompDirectiveNoFileComp
}

func (c *completer) firstArg(fn completeFunc) completeFunc {
	return c.upTo(1, fn)
}

func (c *completer) upTo(n int, fn completeFunc) completeFunc {
	return func(cmd *cobra.Command, args []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
		if len(args) >= n {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		return fn(cmd, args, toComplete)
	}
}

func fixed(choices ...string) completeFunc {
	return func(_ *cobra.Command, _ []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
		var out []cobra.Completion
		for _, c := range choices {
			if strings.HasPrefix(c, toComplete) {
				out = append(out, c)
			}
		}
		return out, cobra.ShellCompDirectiveNoFileComp
	}
}

func dirs(*cobra.Command, []string, string) ([]cobra.Completion, cobra.ShellCompDirective) {
	return nil, cobra.ShellCompDirectiveFilterDirs
}
