package cli

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/consul/api"
	nomadapi "github.com/hashicorp/nomad/api"
	"github.com/hoctl/hoctl/pkg/consul"
	"github.com/hoctl/hoctl/pkg/httpapi"
	"github.com/hoctl/hoctl/pkg/inventory"
	"github.com/hoctl/hoctl/pkg/iostreams"
	"github.com/hoctl/hoctl/pkg/nomad"
	"github.com/hoctl/hoctl/pkg/sshexec"
	"github.com/hoctl/hoctl/pkg/tasks"
	"github.com/spf13/cobra"
)

// RunbookOptions are the inputs of `hoctl runbook plan|run`.
type RunbookOptions struct {
	F    *Factory
	File string
	Vars map[string]string
	// Limit narrows every step's hosts (--limit TARGET).
	Limit string
	Plan  bool // plan only
}

// NewCmdRunbook groups plan and run.
func NewCmdRunbook(f *Factory, runF func(*RunbookOptions) error) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "runbook",
		Short: "Plan or run an operator runbook (YAML)",
		Long: `A runbook is an ordered list of steps, each with hosts, a check before,
the command, a check after and an optional undo. See docs/runbooks.md.`,
	}
	for _, plan := range []bool{true, false} {
		opts := &RunbookOptions{F: f, Plan: plan}
		var vars []string
		use, short := "run FILE", "Show the plan, confirm, then run the runbook step by step"
		if plan {
			use, short = "plan FILE", "Run the before checks and print every step's commands; change nothing"
		}
		sub := &cobra.Command{
			Use:   use,
			Short: short,
			Args:  rangeArgs(1, 1),
			RunE: func(c *cobra.Command, args []string) error {
				opts.File = args[0]
				var err error
				if opts.Vars, err = parseVars(vars); err != nil {
					return err
				}
				if runF != nil {
					return runF(opts)
				}
				return runbookRun(c.Context(), opts)
			},
		}
		sub.Flags().StringArrayVar(&vars, "var", nil, "set a runbook variable (k=v), repeatable")
		sub.Flags().StringVar(&opts.Limit, "limit", "", "narrow every step's hosts to those TARGET selects (e.g. 'cattle,!c2'); a step left with no host is an error")
		if !plan {
			honoursDryRun(f, sub, "run the before checks and print the plan (as runbook plan); change nothing")
			honoursYes(f, sub)
		}
		cmd.AddCommand(sub)
	}
	return cmd
}

func parseVars(kvs []string) (map[string]string, error) {
	out := map[string]string{}
	for _, kv := range kvs {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return nil, usagef("--var %q: expected name=value", kv)
		}
		out[k] = v
	}
	return out, nil
}

func runbookRun(ctx context.Context, opts *RunbookOptions) error {
	f := opts.F
	inv, err := f.Inventory(ctx)
	if err != nil {
		return err
	}
	rb, err := tasks.LoadRunbookFile(ctx, opts.File, inv, tasks.LoadOptions{Vars: opts.Vars, Getenv: f.Getenv, Limit: opts.Limit})
	if err != nil {
		return err
	}
	eng, closeFn, err := f.Engine(inv, rb.Secrets)
	if err != nil {
		return err
	}
	defer closeFn()
	if opts.Plan || f.DryRun {
		return planOnly(ctx, f.IO, eng, rb, 1)
	}
	_, err = eng.Run(ctx, rb, tasks.RunOptions{})
	return quiet(err)
}

// planOnly prints the plan (or emits it as JSON) and exits 3 when a before
// check that could run fails now.
func planOnly(ctx context.Context, io *iostreams.IOStreams, eng *tasks.Engine, rb *tasks.Runbook, from int) error {
	p, err := eng.Plan(ctx, rb, from)
	if err != nil {
		return err
	}
	if io.JSON {
		eng.Reporter.Plan(p)
	} else {
		tasks.PrintPlan(io.Out, io.OutColorScheme(), p, rb.Secrets)
	}
	if p.Failing > 0 {
		return &SilentError{Code: ExitRefused}
	}
	return nil
}

// quiet keeps the exit code of a run's error but drops its message when
// the reporter has already shown it (the run started); errors from before
// the start (no confirmation, a held lock) are returned for main to print.
func quiet(err error) error {
	switch {
	case err == nil:
		return nil
	case refusedAtStep(err), errors.As(err, new(*tasks.StepError)),
		errors.As(err, new(*tasks.UnverifiedError)), errors.Is(err, tasks.ErrLockLost):
		// Shown already: not printed again, but kept for --json's error
		// event and the exit code.
		var re *tasks.ReportedError
		if errors.As(err, &re) {
			return err
		}
		return &tasks.ReportedError{Err: err}
	}
	return err
}

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
	return consul.NewClient(inv.Consul, via, f.Getenv, httpapi.Options{Timeout: apiTimeout(inv, inv.Consul), Trace: f.Trace()})
}

// apiTimeout bounds each request to an API as a host is bounded
// (DESIGN.md): connect_timeout plus keepalive, of the via host when there
// is one, else of the inventory's defaults.
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

// viaDialer is the SSH tunnel an API section names with via (nil for
// none): the via host's connection dials the API's address.
func viaDialer(ctx context.Context, inv *inventory.Inventory, section string, cfg *inventory.API,
	connect func(context.Context, *inventory.Host) (sshexec.Runner, error)) (sshexec.Dialer, error) {
	if cfg == nil || cfg.Via == "" {
		return nil, nil
	}
	name := map[string]string{"consul": "Consul", "nomad": "Nomad"}[section]
	ep := httpapi.Endpoint{Name: name, Section: section, Address: cfg.Address, Via: cfg.Via}
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
	return nomad.NewClient(inv.Nomad, via, f.Getenv, httpapi.Options{Timeout: apiTimeout(inv, inv.Nomad), Trace: f.Trace()})
}

// refusedAtStep is a before check that failed once the run started (the
// reporter showed it), not at the plan nor for a reason of no step.
func refusedAtStep(err error) bool {
	var re *tasks.RefusedError
	return errors.As(err, &re) && !re.AtPlan && re.Reason == ""
}
