package cli

// The Factory's engine and API clients: what every runbook command runs
// on, built once per invocation.

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/consul/api"
	nomadapi "github.com/hashicorp/nomad/api"
	"github.com/hoctl/hoctl/pkg/consul"
	"github.com/hoctl/hoctl/pkg/httpapi"
	"github.com/hoctl/hoctl/pkg/inventory"
	"github.com/hoctl/hoctl/pkg/nomad"
	"github.com/hoctl/hoctl/pkg/sshexec"
	"github.com/hoctl/hoctl/pkg/tasks"
)

// Engine builds the runbook engine for this invocation; the returned func
// closes its connections.
func (f *Factory) Engine(inv *inventory.Inventory, secrets []string) (*tasks.Engine, func(), error) {
	f.Trace().Secret(secrets...)
	conn, err := f.connector(inv, true)
	if err != nil {
		return nil, nil, err
	}
	eng := &tasks.Engine{
		Env: &tasks.Env{Inventory: inv, Connect: func(ctx context.Context, h *inventory.Host) (sshexec.Runner, error) {
			return conn.Runner(ctx, h)
		}, Secrets: secrets},
		Reporter: tasks.NewReporter(f.IO, secrets),
		StateDir: tasks.StateDir(f.Getenv),
		Version:  f.Version,
		Command:  strings.Join(append([]string{"hoctl"}, f.Args...), " "),
		Yes:      f.Yes,
	}
	closeTTY := func() {}
	if f.OpenTTY != nil && !f.IO.JSON {
		if tty, err := f.OpenTTY(); err == nil {
			eng.Confirm = newTTYPrompter(tty, f.IO.ColorScheme().Bold).Confirm
			closeTTY = func() { _ = tty.Close() }
		}
	}
	switch {
	case f.ClusterLock != nil:
		eng.ClusterLock = func(ctx context.Context, scope, holder string) (tasks.ClusterLock, error) {
			return f.ClusterLock(ctx, inv, scope, holder)
		}
	case inv.Consul != nil:
		eng.ClusterLock = func(ctx context.Context, scope, holder string) (tasks.ClusterLock, error) {
			client, err := f.consulClient(ctx, inv, conn.Runner)
			if err != nil {
				return nil, err
			}
			return consul.Acquire(ctx, client, scope, holder, consul.LockOptions{})
		}
	}
	return eng, func() { _ = conn.Close(); closeTTY() }, nil
}

// consulClient reaches the inventory's Consul, through the consul.via
// host's SSH connection when one is named.
func (f *Factory) consulClient(ctx context.Context, inv *inventory.Inventory, connect func(context.Context, *inventory.Host) (sshexec.Runner, error)) (*api.Client, error) {
	via, err := viaDialer(ctx, inv, "consul", inv.Consul, connect)
	if err != nil {
		return nil, err
	}
	if inv.Consul.TokenEnv != "" {
		f.Trace().Secret(f.Getenv(inv.Consul.TokenEnv))
	}
	return consul.NewClient(inv.Consul, via, f.Getenv, httpapi.Options{Timeout: apiTimeout(inv, inv.Consul), DialTimeout: apiDialTimeout(inv, inv.Consul), Trace: f.Trace()})
}

// apiTimeout bounds each request to an API as a host that stops
// answering is bounded (docs/security.md): connect_timeout plus
// keepalive, of the via host when there is one, else of the inventory's
// defaults.
func apiTimeout(inv *inventory.Inventory, cfg *inventory.API) time.Duration {
	s := inv.Defaults
	if h := inv.Host(cfg.Via); h != nil {
		s = inv.Settings(h)
	}
	ct, ka := s.ConnectTimeout, s.Keepalive
	if ct <= 0 {
		ct = sshexec.DefaultConnectTimeout
	}
	if ka <= 0 {
		ka = sshexec.DefaultKeepalive
	}
	return ct + ka
}

// apiDialTimeout bounds each connection attempt to one of an API's
// several addresses as an SSH connection is bounded: connect_timeout.
func apiDialTimeout(inv *inventory.Inventory, cfg *inventory.API) time.Duration {
	s := inv.Defaults
	if h := inv.Host(cfg.Via); h != nil {
		s = inv.Settings(h)
	}
	if s.ConnectTimeout > 0 {
		return s.ConnectTimeout
	}
	return sshexec.DefaultConnectTimeout
}

// viaDialer is the SSH tunnel an API section names with via (nil for
// none): the via host's connection dials the API's address.
func viaDialer(ctx context.Context, inv *inventory.Inventory, section string, cfg *inventory.API,
	connect func(context.Context, *inventory.Host) (sshexec.Runner, error)) (sshexec.Dialer, error) {
	if cfg == nil || cfg.Via == "" {
		return nil, nil
	}
	name := map[string]string{"consul": "Consul", "nomad": "Nomad"}[section]
	ep := httpapi.Endpoint{Name: name, Section: section, Address: strings.Join(cfg.URLs(), ", "), Via: cfg.Via}
	r, err := connect(ctx, inv.Host(cfg.Via))
	if err != nil {
		return nil, &httpapi.ViaError{Endpoint: ep, Err: err}
	}
	d, ok := r.(sshexec.Dialer)
	if !ok {
		return nil, fmt.Errorf("%s.via %s: only an SSH host can carry a tunnel", section, cfg.Via)
	}
	return d, nil
}

// apiClients connects to Consul and Nomad on first use, once each per
// command; a nil func means the inventory has no such section.
func (f *Factory) apiClients(inv *inventory.Inventory, connect func(context.Context, *inventory.Host) (sshexec.Runner, error)) (
	consulFn func(context.Context) (*api.Client, error), nomadFn func(context.Context) (*nomadapi.Client, error)) {
	if inv.Consul != nil {
		var once sync.Once
		var c *api.Client
		var err error
		consulFn = func(ctx context.Context) (*api.Client, error) {
			once.Do(func() { c, err = f.consulClient(ctx, inv, connect) })
			return c, err
		}
	}
	if inv.Nomad != nil {
		var once sync.Once
		var c *nomadapi.Client
		var err error
		nomadFn = func(ctx context.Context) (*nomadapi.Client, error) {
			once.Do(func() { c, err = f.nomadClient(ctx, inv, connect) })
			return c, err
		}
	}
	return consulFn, nomadFn
}

// nomadClient reaches the inventory's Nomad, through the nomad.via host's
// SSH connection when one is named.
func (f *Factory) nomadClient(ctx context.Context, inv *inventory.Inventory, connect func(context.Context, *inventory.Host) (sshexec.Runner, error)) (*nomadapi.Client, error) {
	via, err := viaDialer(ctx, inv, "nomad", inv.Nomad, connect)
	if err != nil {
		return nil, err
	}
	if inv.Nomad.TokenEnv != "" {
		f.Trace().Secret(f.Getenv(inv.Nomad.TokenEnv))
	}
	return nomad.NewClient(inv.Nomad, via, f.Getenv, httpapi.Options{Timeout: apiTimeout(inv, inv.Nomad), DialTimeout: apiDialTimeout(inv, inv.Nomad), Trace: f.Trace()})
}
