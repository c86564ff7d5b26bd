package consul

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/hashicorp/consul/api"
	"github.com/hoctl/hoctl/pkg/httpapi"
)

// Cluster is what hoctl's runbooks ask Consul: the leader, who passes a
// service's health checks, and single KV keys written with check-and-set.
// Each call waits out a leader election (ElectionWait).
type Cluster struct {
	Client *api.Client
}

// Leader is the Raft leader's address; no leader is an error.
func (c *Cluster) Leader(ctx context.Context) (string, error) {
	var l string
	err := throughElection(ctx, func() (err error) {
		l, err = c.Client.Status().LeaderWithQueryOptions((&api.QueryOptions{}).WithContext(ctx))
		return err
	})
	if err != nil {
		return "", httpapi.Clean(err, "consul")
	}
	if l == "" {
		return "", errors.New("consul has no leader")
	}
	return l, nil
}

// Instance is one registered instance of a service and whether all its
// checks (the node's serfHealth included) pass.
type Instance struct {
	Node    string
	Passing bool
}

// Instances lists the service's instances, sorted by node.
func (c *Cluster) Instances(ctx context.Context, service string) ([]Instance, error) {
	var entries []*api.ServiceEntry
	err := throughElection(ctx, func() (err error) {
		entries, _, err = c.Client.Health().Service(service, "", false, (&api.QueryOptions{}).WithContext(ctx))
		return err
	})
	if err != nil {
		return nil, httpapi.Clean(err, "consul: health of "+service)
	}
	var out []Instance
	for _, e := range entries {
		out = append(out, Instance{Node: e.Node.Node, Passing: e.Checks.AggregatedStatus() == api.HealthPassing})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Node < out[j].Node })
	return out, nil
}

// Passing lists the nodes whose instance of service passes.
func (c *Cluster) Passing(ctx context.Context, service string) ([]string, error) {
	all, err := c.Instances(ctx, service)
	if err != nil {
		return nil, err
	}
	return PassingNodes(all), nil
}

// PassingNodes are the nodes of the instances that pass, in order.
func PassingNodes(all []Instance) []string {
	var out []string
	for _, in := range all {
		if in.Passing {
			out = append(out, in.Node)
		}
	}
	return out
}

// Get reads a key: its value, its ModifyIndex for a later CAS, and
// whether it exists.
func (c *Cluster) Get(ctx context.Context, key string) (string, uint64, bool, error) {
	var p *api.KVPair
	err := throughElection(ctx, func() (err error) {
		p, _, err = c.Client.KV().Get(key, (&api.QueryOptions{RequireConsistent: true}).WithContext(ctx))
		return err
	})
	if err != nil {
		return "", 0, false, httpapi.Clean(err, "consul: get "+key)
	}
	if p == nil {
		return "", 0, false, nil
	}
	return string(p.Value), p.ModifyIndex, true, nil
}

// CAS writes key only if its ModifyIndex is still index (0: only if the
// key does not exist). false means someone else changed it first.
func (c *Cluster) CAS(ctx context.Context, key, value string, index uint64) (bool, error) {
	var ok bool
	err := throughElection(ctx, func() (err error) {
		ok, _, err = c.Client.KV().CAS(&api.KVPair{Key: key, Value: []byte(value), ModifyIndex: index}, (&api.WriteOptions{}).WithContext(ctx))
		return err
	})
	if err != nil {
		return false, httpapi.Clean(err, "consul: cas "+key)
	}
	return ok, nil
}

// FailingChecks names the checks of node's services whose ID contains
// owner (a Nomad allocation's ID: Nomad registers its services as
// _nomad-task-<alloc>-...) that do not pass, with their output. The
// catalog keeps an output only when the status changes, so it may be
// empty; the status and the check's name are always there.
func (c *Cluster) FailingChecks(ctx context.Context, node, owner string) ([]string, error) {
	checks, _, err := c.Client.Health().Node(node, (&api.QueryOptions{}).WithContext(ctx))
	if err != nil {
		return nil, httpapi.Clean(err, "consul: checks of "+node)
	}
	var out []string
	for _, ch := range checks {
		if ch.ServiceID == "" || !strings.Contains(ch.ServiceID, owner) || ch.Status == api.HealthPassing {
			continue
		}
		s := fmt.Sprintf("Consul check %q %s", ch.Name, ch.Status)
		if o := strings.TrimSpace(ch.Output); o != "" {
			s += ": " + o
		}
		out = append(out, s)
	}
	sort.Strings(out)
	return out, nil
}
