package cli

import (
	"context"

	"github.com/hashicorp/consul/api"
	nomadapi "github.com/hashicorp/nomad/api"
	"io"
	"os"
	"path/filepath"
	"sync"

	"github.com/hoctl/hoctl/pkg/inventory"
	"github.com/hoctl/hoctl/pkg/iostreams"
	"github.com/hoctl/hoctl/pkg/sshexec"
	"github.com/hoctl/hoctl/pkg/tasks"
	"github.com/hoctl/hoctl/pkg/trace"
)

// Connector hands out a Runner per inventory host. The real one dials SSH
// through a Pool; command tests use a fake.
type Connector interface {
	Runner(ctx context.Context, h *inventory.Host) (sshexec.Runner, error)
	Close() error
}

// Factory holds what commands need, resolved lazily so that `hoctl
// version` never reads an inventory and tests fill in only what they use.
type Factory struct {
	IO      *iostreams.IOStreams
	Version string
	Build   BuildInfo
	Getenv  func(string) string

	// Global flags, set by the root command.
	InventoryPath string
	Yes, DryRun   bool
	Verbose       int
	// Become overrides every host's become for this invocation
	// (--become: sudo, --no-become: none); empty keeps the inventory's.
	Become string
	// AcceptNew (--accept-new) accepts, and records in known_hosts, the
	// key of a host known_hosts has none for, for this invocation, as
	// host_key_policy: accept-new does; a changed key still stops it.
	AcceptNew bool

	// JQ is --jq: an expression run on each --json event.
	JQ string
	// jq is stdout's filter once --jq is checked.
	jq *jqFilter

	// Args is the command line, for the journal.
	Args []string

	// OpenTTY opens the terminal confirmations are asked on; nil (tests)
	// or an error (no controlling terminal) means none can be asked.
	OpenTTY func() (io.ReadWriteCloser, error)

	// Connect returns the run's Connector; nil means SSH.
	Connect func(inv *inventory.Inventory) (Connector, error)
	// ClusterLock takes a cluster-wide lock (Consul); nil when the
	// inventory has no consul section.
	ClusterLock func(ctx context.Context, inv *inventory.Inventory, scope, holder string) (tasks.ClusterLock, error)

	traceOnce sync.Once
	trace     *trace.Log

	invOnce sync.Once
	inv     *inventory.Inventory
	invErr  error
}

// Inventory loads the inventory named by -i, $HOCTL_INVENTORY or
// ./inventory.yaml, once.
//
// ctx bounds the wait for a file that is not a regular one (a FIFO no one
// writes to): the first Ctrl-C or SIGTERM ends it (exit 130).
func (f *Factory) Inventory(ctx context.Context) (*inventory.Inventory, error) {
	f.invOnce.Do(func() {
		path, from := f.InventoryPath, "-i"
		if path == "" {
			path, from = f.Getenv("HOCTL_INVENTORY"), "$HOCTL_INVENTORY"
		}
		if path == "" {
			path, from = "inventory.yaml", "the default, ./inventory.yaml"
		}
		f.inv, f.invErr = inventory.Load(ctx, path)
		if f.invErr != nil {
			f.invErr = missingInventory(path, from, f.invErr)
		}
	})
	return f.inv, f.invErr
}

// Trace is where -v lines go (stderr); nil without -v. Secrets the run
// knows are registered with it before anything runs, so they are
// redacted from every line.
func (f *Factory) Trace() *trace.Log {
	f.traceOnce.Do(func() { f.trace = trace.New(f.IO.ErrOut, f.Verbose) })
	return f.trace
}

// Connector returns a connector for inv.
func (f *Factory) Connector(inv *inventory.Inventory) (Connector, error) {
	return f.connector(inv, false)
}

// connector is Connector; eager sends every command of a connection to its
// executor, for runs of many commands per host.
func (f *Factory) connector(inv *inventory.Inventory, eager bool) (Connector, error) {
	if f.Connect != nil {
		return f.Connect(inv)
	}
	home, _ := os.UserHomeDir()
	sc, err := sshexec.LoadSSHConfig(filepath.Join(home, ".ssh", "config"))
	if err != nil {
		return nil, err
	}
	return &sshConnector{
		pool:      sshexec.NewPool(sshexec.PoolOptions{AgentSocket: f.Getenv("SSH_AUTH_SOCK"), EagerExecutor: eager, Trace: f.Trace()}),
		resolver:  &sshexec.Resolver{Inventory: inv, SSHConfig: sc, Home: home},
		become:    f.Become,
		acceptNew: f.AcceptNew,
	}, nil
}

type sshConnector struct {
	pool     *sshexec.Pool
	resolver *sshexec.Resolver
	become   string // --become/--no-become, "" for the inventory's
	// acceptNew is --accept-new: every hop's policy is accept-new.
	acceptNew bool
}

func (c *sshConnector) Runner(ctx context.Context, h *inventory.Host) (sshexec.Runner, error) {
	t, err := c.resolver.Resolve(h)
	if err != nil {
		return nil, err
	}
	if c.become != "" {
		t.Become = c.become
	}
	if c.acceptNew {
		for hop := t; hop != nil; hop = hop.Jump {
			hop.HostKeyPolicy = inventory.PolicyAcceptNew
		}
	}
	return c.pool.Runner(ctx, t)
}

func (c *sshConnector) Close() error { return c.pool.Close() }

// Invocation is what a command's run needs from around it: the streams,
// the global flags, and the ways to the inventory, the hosts and the
// APIs. Options embed one, made when the command runs, instead of the
// Factory (as gh's Options hold IO and client funcs), so a run function
// sees only these; a test may fill in only what its command uses.
type Invocation struct {
	IO          *iostreams.IOStreams
	DryRun, Yes bool
	Getenv      func(string) string
	// Inventory loads the inventory (once); DefaultInventory names the
	// file to load when neither -i nor $HOCTL_INVENTORY does.
	Inventory        func(context.Context) (*inventory.Inventory, error)
	DefaultInventory func(path string)
	// Engine builds the runbook engine, redacting secrets; the func it
	// returns closes its connections.
	Engine func(inv *inventory.Inventory, secrets []string) (*tasks.Engine, func(), error)
	// Connector opens connections of their own, outside any engine's.
	Connector func(inv *inventory.Inventory) (Connector, error)
	// APIs reach Consul and Nomad through an engine's connections, once
	// each on first use; a nil func means no such inventory section.
	APIs func(inv *inventory.Inventory, eng *tasks.Engine) (consulFn func(context.Context) (*api.Client, error), nomadFn func(context.Context) (*nomadapi.Client, error))
}

// Invocation is the factory's view for a command that runs now: call it
// in RunE, once the global flags are parsed.
func (f *Factory) Invocation() Invocation {
	return Invocation{
		IO: f.IO, DryRun: f.DryRun, Yes: f.Yes, Getenv: f.Getenv,
		Inventory: f.Inventory,
		DefaultInventory: func(path string) {
			if f.InventoryPath == "" && f.Getenv("HOCTL_INVENTORY") == "" {
				f.InventoryPath = path
			}
		},
		Engine:    f.Engine,
		Connector: f.Connector,
		APIs: func(inv *inventory.Inventory, eng *tasks.Engine) (func(context.Context) (*api.Client, error), func(context.Context) (*nomadapi.Client, error)) {
			return f.apiClients(inv, eng.Env.Connect)
		},
	}
}
