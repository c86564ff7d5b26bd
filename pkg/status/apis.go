package status

import (
	"context"
	"fmt"
	"sort"
	"strings"

	consulapi "github.com/hashicorp/consul/api"
	nomadapi "github.com/hashicorp/nomad/api"
	"github.com/hoctl/hoctl/pkg/consul"
	"github.com/hoctl/hoctl/pkg/httpapi"
	"github.com/hoctl/hoctl/pkg/inventory"
	"github.com/hoctl/hoctl/pkg/nomad"
)

func (p *Probes) consul(ctx context.Context) []Check {
	c := Check{Area: "consul", Name: "consul", Level: OK, Hint: "consul operator autopilot state"}
	client, err := p.Consul(ctx)
	if err != nil {
		c.Level, c.Detail, c.Hint = Fail, p.short(ctx, err), apiDownHint(p.Inv.Consul, "consul")
		return []Check{c}
	}
	ctx, answered := httpapi.RecordAnswer(ctx)
	cl := &consul.Cluster{Client: client}
	leader, err := cl.Leader(ctx)
	if err != nil {
		c.Level, c.Detail, c.Hint = Fail, p.short(ctx, err), apiDownHint(p.Inv.Consul, "consul")
		return []Check{c}
	}
	var parts []string
	parts = append(parts, "leader "+leader+answeredBy(p.Inv.Consul, answered()))
	// Agent().Members takes no context; the raw call to its endpoint does.
	var members []*consulapi.AgentMember
	_, err = client.Raw().Query("/v1/agent/members", &members, (&consulapi.QueryOptions{}).WithContext(ctx))
	if err != nil {
		c.Level = Warn
		parts = append(parts, "members: "+p.short(ctx, httpapi.Clean(err, "")))
	} else {
		var failed []string
		for _, m := range members {
			if m.Status != 1 {
				failed = append(failed, m.Name)
			}
		}
		parts = append(parts, fmt.Sprintf("%d members, %d alive", len(members), len(members)-len(failed)))
		if len(failed) > 0 {
			c.Level = Warn
			parts = append(parts, "not alive: "+strings.Join(failed, ", "))
		}
	}
	health, err := client.Operator().AutopilotServerHealth((&consulapi.QueryOptions{}).WithContext(ctx))
	switch {
	case err != nil && health == nil:
		c.Level = Fail
		parts = append(parts, "autopilot: "+p.short(ctx, httpapi.Clean(err, "")))
	default:
		parts = append(parts, fmt.Sprintf("failure tolerance %d", health.FailureTolerance))
		if !health.Healthy || health.FailureTolerance < 1 {
			c.Level = Fail
			parts = append(parts, "CANNOT LOSE A SERVER")
		}
	}
	c.Detail = strings.Join(parts, ", ")
	return []Check{c}
}

func (p *Probes) nomad(ctx context.Context) []Check {
	c := Check{Area: "nomad", Name: "nomad", Level: OK, Hint: "nomad node status; nomad job status"}
	client, err := p.Nomad(ctx)
	if err != nil {
		c.Level, c.Detail, c.Hint = Fail, p.short(ctx, err), apiDownHint(p.Inv.Nomad, "nomad")
		return []Check{c}
	}
	ctx, answered := httpapi.RecordAnswer(ctx)
	q := (&nomadapi.QueryOptions{}).WithContext(ctx)
	// Status().Leader takes no context; the raw call to its endpoint does.
	var leader string
	_, err = client.Raw().Query("/v1/status/leader", &leader, q)
	if err != nil || leader == "" {
		c.Level, c.Detail = Fail, "no leader"
		if err != nil {
			c.Detail = p.short(ctx, httpapi.Clean(err, ""))
			c.Hint = apiDownHint(p.Inv.Nomad, "nomad")
		}
		return []Check{c}
	}
	parts := []string{"leader " + leader + answeredBy(p.Inv.Nomad, answered())}
	parts = append(parts, p.nomadNodes(ctx, client, q, &c))
	if part := nomadFailedAllocs(client, q, &c); part != "" {
		parts = append(parts, part)
	}
	if failed, err := failedDeployments(client, q); err == nil && len(failed) > 0 {
		c.Level = Warn
		parts = append(parts, "failed deployments: "+strings.Join(failed, ", "))
		c.Hint = "nomad job status " + strings.SplitN(failed[0], " ", 2)[0]
	}
	health, err := nomad.AutopilotHealth(ctx, client)
	switch {
	case err != nil:
		c.Level = Fail
		parts = append(parts, "autopilot: unknown ("+p.short(ctx, httpapi.Clean(err, ""))+")")
	case health.FailureTolerance < 1 || !health.Healthy:
		c.Level = Fail
		parts = append(parts, fmt.Sprintf("failure tolerance %d: CANNOT LOSE A SERVER", health.FailureTolerance))
		if bad := nomad.UnhealthyServers(health); len(bad) > 0 {
			parts = append(parts, "unhealthy: "+strings.Join(bad, ", "))
		}
		c.Hint = "nomad operator autopilot health"
	default:
		parts = append(parts, fmt.Sprintf("failure tolerance %d", health.FailureTolerance))
	}
	c.Detail = strings.Join(parts, ", ")
	return []Check{c}
}

// nomadNodes counts the clients ready, draining and ineligible, and
// names the ones down (a fail) on the nomad check c.
func (p *Probes) nomadNodes(ctx context.Context, client *nomadapi.Client, q *nomadapi.QueryOptions, c *Check) string {
	nodes, _, err := client.Nodes().List(q)
	if err != nil {
		c.Level = Warn
		return "nodes: " + p.short(ctx, httpapi.Clean(err, ""))
	}
	var ready, draining, inelig int
	var down []string
	for _, n := range nodes {
		switch {
		case n.Status != "ready":
			down = append(down, n.Name)
		case n.Drain:
			draining++
		case n.SchedulingEligibility != "eligible":
			inelig++
		default:
			ready++
		}
	}
	part := fmt.Sprintf("nodes %d ready, %d draining, %d ineligible", ready, draining, inelig)
	if len(down) > 0 {
		c.Level = Fail
		return part + ", down: " + strings.Join(down, ", ")
	}
	if draining+inelig > 0 {
		c.Level = Warn
	}
	return part
}

// nomadFailedAllocs counts the failed allocations and names them (a
// warning) on the nomad check c; nothing when the list is not read.
func nomadFailedAllocs(client *nomadapi.Client, q *nomadapi.QueryOptions, c *Check) string {
	allocs, _, err := client.Allocations().List(q)
	if err != nil {
		return ""
	}
	var failed []string
	for _, a := range allocs {
		if a.ClientStatus == "failed" {
			failed = append(failed, a.JobID+"/"+a.TaskGroup)
		}
	}
	part := fmt.Sprintf("%d failed allocations", len(failed))
	if len(failed) > 0 {
		c.Level = Warn
		part += " (" + strings.Join(failed, ", ") + ")"
	}
	return part
}

// failedDeployments lists the running jobs whose latest deployment
// failed: they run, but Nomad found them unhealthy (a check that never
// passed, tasks that did not stay up), which failed allocations alone do
// not show. A later deployment (the fix) supersedes a failed one.
func failedDeployments(client *nomadapi.Client, q *nomadapi.QueryOptions) ([]string, error) {
	jobs, _, err := client.Jobs().List(q)
	if err != nil {
		return nil, err
	}
	live := map[string]uint64{} // job ID -> create index, of jobs not stopped
	for _, j := range jobs {
		if !j.Stop {
			live[j.ID] = j.CreateIndex
		}
	}
	ds, _, err := client.Deployments().List(q)
	if err != nil {
		return nil, err
	}
	latest := map[string]*nomadapi.Deployment{}
	for _, d := range ds {
		if cur := latest[d.JobID]; cur == nil || d.CreateIndex > cur.CreateIndex {
			latest[d.JobID] = d
		}
	}
	var out []string
	for id, d := range latest {
		if created, ok := live[id]; ok && d.JobCreateIndex == created && d.Status == nomadapi.DeploymentStatusFailed {
			out = append(out, fmt.Sprintf("%s (version %d: %s)", id, d.JobVersion, d.StatusDescription))
		}
	}
	sort.Strings(out)
	return out, nil
}

// answeredBy names the address that answered when the section lists
// several: which server hoctl heard the cluster from.
func answeredBy(api *inventory.API, addr string) string {
	if api == nil || len(api.URLs()) < 2 || addr == "" {
		return ""
	}
	return " (asked at " + addr + ")"
}

// apiDownHint is what to try when an API does not answer: its leader
// endpoint, from the via host when it is reached through one.
func apiDownHint(api *inventory.API, unit string) string {
	if api == nil {
		return ""
	}
	probe := "curl -sS " + strings.TrimRight(api.URLs()[0], "/") + "/v1/status/leader"
	if api.Via != "" {
		return fmt.Sprintf("hoctl run %s -- 'systemctl is-active %s; %s'", api.Via, unit, probe)
	}
	return probe + "; systemctl status " + unit + " (on the server)"
}
