package guard

import (
	"context"
	"net/url"
	"strings"
	"time"

	"github.com/hashicorp/consul/api"
	"github.com/hoctl/hoctl/pkg/consul"
	"github.com/hoctl/hoctl/pkg/httpapi"
	"github.com/hoctl/hoctl/pkg/inventory"
)

// ConsulKV reads the owner key through the host's Consul agent.
type ConsulKV struct{ kv *api.KV }

// NewConsulKV is a client of the agent at address. The token, if any, is
// Consul's own CONSUL_HTTP_TOKEN or CONSUL_HTTP_TOKEN_FILE (a systemd
// credential, say): never a flag, which any user of the host could read
// in the process list. Every request is bounded by timeout, plus its
// wait for a blocking query.
func NewConsulKV(address string, timeout time.Duration) (*ConsulKV, error) {
	if _, err := url.Parse(address); err != nil {
		return nil, err
	}
	c, err := consul.NewClient(&inventory.API{Address: address}, nil, nil, httpapi.Options{Timeout: timeout})
	if err != nil {
		return nil, err
	}
	return &ConsulKV{kv: c.KV()}, nil
}

// Owner implements Consul. Reads are consistent: a stale answer from a
// server cut off from the leader must not renew the lease.
func (c *ConsulKV) Owner(ctx context.Context, key string, index uint64, wait time.Duration) (Reading, error) {
	q := &api.QueryOptions{RequireConsistent: true}
	if index > 0 {
		q.WaitIndex, q.WaitTime = index, wait
	}
	p, meta, err := c.kv.Get(key, q.WithContext(ctx))
	if err != nil {
		return Reading{}, httpapi.Clean(err, "consul")
	}
	r := Reading{Index: meta.LastIndex}
	if p != nil {
		// As the unit's start check reads it ($(curl ...?raw)): trailing
		// newlines do not count.
		r.Found, r.Owner, r.ModifyIndex = true, strings.TrimRight(string(p.Value), "\n"), p.ModifyIndex
	}
	return r, nil
}
