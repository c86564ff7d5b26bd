package deploy

import (
	"context"
	"fmt"
	"io"
	"strings"
	"text/template"

	"github.com/hoctl/hoctl/pkg/exitcode"
	"github.com/hoctl/hoctl/pkg/inventory"
	"github.com/hoctl/hoctl/pkg/tasks"
	"github.com/hoctl/hoctl/pkg/yamlerr"
)

// Targets are the hosts a deploy of exprs acts on, in the order named:
// every managed host when exprs is empty (a host named explicitly is
// kept, so that Runbook can say why an unmanaged one is refused), then
// narrowed to those limit (--limit) also selects. A limit that leaves
// nothing is a usage error.
func Targets(inv *inventory.Inventory, exprs []string, limit string) ([]*inventory.Host, error) {
	named := len(exprs) > 0
	if !named {
		exprs = []string{"all"}
	}
	var targets []*inventory.Host
	seen := map[string]bool{}
	for _, e := range exprs {
		hosts, err := inv.Select(e)
		if err != nil {
			return nil, err
		}
		for _, h := range hosts {
			if !seen[h.Name] && (h.IsManaged() || named) {
				seen[h.Name] = true
				targets = append(targets, h)
			}
		}
	}
	if limit == "" {
		return targets, nil
	}
	return limitHosts(inv, targets, limit)
}

// limitHosts keeps the hosts that the --limit expression also selects. A
// limit naming an unknown host is an error, and so is one that leaves
// nothing to do.
func limitHosts(inv *inventory.Inventory, hosts []*inventory.Host, limit string) ([]*inventory.Host, error) {
	in, err := inv.Select(limit)
	if err != nil {
		return nil, fmt.Errorf("--limit: %w", err)
	}
	keep := map[string]bool{}
	for _, h := range in {
		keep[h.Name] = true
	}
	var out []*inventory.Host
	for _, h := range hosts {
		if keep[h.Name] {
			out = append(out, h)
		}
	}
	if len(out) == 0 {
		return nil, exitcode.Usagef("--limit %q leaves no target: it selects none of %s", limit, strings.Join(nameList(hosts), ", "))
	}
	return out, nil
}

// CheckCommand renders deploy.command for every managed host, as a
// deploy will: a field that exists for no host fails here, not
// mid-rollout. The error names the inventory's line when the file can
// be read again.
func CheckCommand(ctx context.Context, inv *inventory.Inventory) error {
	t, err := template.New("deploy").Option("missingkey=error").Parse(inv.Deploy.Command)
	if err != nil {
		return nil // the inventory's own validation reported it
	}
	for _, n := range inv.HostNames() {
		h := inv.Host(n)
		if !h.IsManaged() {
			continue
		}
		data := tasks.TemplateData{Host: h.Name, HostInfo: h, Vars: tasks.InventoryVars(inv, h), Inventory: inv}
		if err := t.Execute(io.Discard, data); err != nil {
			e := &yamlerr.Error{File: inv.Path, Field: "deploy.command", Msg: fmt.Sprintf("%v (for host %s)", tasks.TemplateError(err, data), h.Name)}
			// The loaded inventory keeps no syntax tree; read the file
			// again for the position (it parsed a moment ago).
			if data, err := yamlerr.ReadFile(ctx, inv.Path, "inventory"); err == nil {
				if f, err := yamlerr.Parse(inv.Path, "inventory", data); err == nil {
					e.Line, e.Column = yamlerr.Position(f, "deploy.command")
				}
			}
			return e
		}
	}
	return nil
}
