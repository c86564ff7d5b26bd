package cli

import (
	"context"
	"fmt"
	"time"

	"github.com/hoctl/hoctl/pkg/deploy"
	"github.com/hoctl/hoctl/pkg/inventory"
	"github.com/hoctl/hoctl/pkg/sshexec"
	"github.com/hoctl/hoctl/pkg/tasks"
	"github.com/spf13/cobra"
)

// DeployOptions are the inputs of `hoctl deploy`.
type DeployOptions struct {
	Invocation
	Targets  []string
	Parallel int
	Wait     time.Duration
	Rollback bool
	// ConfirmTimeout overrides deploy.confirm_timeout (the magic
	// rollback) when the flag is given; 0 turns it off.
	ConfirmTimeout    time.Duration
	confirmTimeoutSet bool
	// Limit narrows the targets (--limit TARGET).
	Limit string
}

// deployLong is deploy's help: the rollout, its checks and its options.
const deployLong = `Deploy the targets (default: every managed host) with the inventory's
deploy.command, run on this machine per host (default deploy -s .#{{.Host}}).
Hosts outside deploy.quorum go first, --parallel at a time; quorum members
strictly one at a time, each only while Consul and Nomad can lose a server.
Each host's Nomad node is drained first; after the command, the host must
run a new system generation (an exit 0 that changed nothing fails), be
running with no failed units, its Consul agent alive with passing checks
and its Nomad node ready (then marked eligible again), before the next host.
The first failure stops the rollout and leaves that node drained.
--rollback switches the targets back to their previous generation (on each
host: nix-env --rollback, then its switch-to-configuration), with the same
order and checks.
Magic rollback (off unless deploy.confirm_timeout or --confirm-timeout is
set): each host first arms a rollback on itself (a transient systemd timer,
hoctl-rollback-HOST) that switches it back to the generation it runs now
unless hoctl, after the deploy command, reaches it over a new SSH
connection and its checks pass within the timeout, counted from the
command's end. A generation that kills sshd or the network rolls itself
back with nobody connected; one that fails its checks is rolled back at
once; deploy reports it as ROLLED BACK (exit 5), the rollout stopped, the
node left drained. An earlier rollback still armed or failed on a host
refuses the deploy (exit 3). A reboot while armed drops the rollback. See
docs/deploy.md.`

// NewCmdDeploy rolls a NixOS deploy over hosts.
func NewCmdDeploy(f *Factory, runF func(*DeployOptions) error) *cobra.Command {
	opts := &DeployOptions{}
	cmd := &cobra.Command{
		Use:   "deploy [TARGET...] [--parallel N] [--rollback]",
		Short: "Rolling NixOS deploy: drain, deploy, check health, host by host, keeping quorum",
		Long:  deployLong,
		RunE: func(c *cobra.Command, args []string) error {
			opts.Targets = args
			opts.confirmTimeoutSet = c.Flags().Changed("confirm-timeout")
			if opts.ConfirmTimeout < 0 {
				return usagef("--confirm-timeout must be 0 (off) or a duration like 60s")
			}
			if opts.Parallel < 1 {
				return usagef("--parallel must be at least 1")
			}
			opts.Invocation = f.Invocation()
			if runF != nil {
				return runF(opts)
			}
			return deployRun(c.Context(), opts)
		},
	}
	deployFlags(cmd, f, opts)
	return cmd
}

func deployFlags(cmd *cobra.Command, f *Factory, opts *DeployOptions) {
	cmd.Flags().IntVar(&opts.Parallel, "parallel", 1, "hosts outside the quorum deployed at once")
	honoursDryRun(f, cmd, "run the preflight and each host's before check, print the plan; change nothing")
	honoursYes(f, cmd)
	cmd.Flags().DurationVar(&opts.Wait, "wait", 5*time.Minute, "how long each host may take to come back healthy")
	cmd.Flags().StringVar(&opts.Limit, "limit", "", "narrow the targets to those TARGET selects (e.g. 'cattle,!c2')")
	cmd.Flags().DurationVar(&opts.ConfirmTimeout, "confirm-timeout", 0, "magic rollback: a host not confirmed over a new SSH connection within this (from the deploy command's end) switches back by itself (default: deploy.confirm_timeout, else off; 0: off)")
	cmd.Flags().BoolVar(&opts.Rollback, "rollback", false, "switch the targets back to their previous system generation, with the same order and checks")
}

func deployRun(ctx context.Context, opts *DeployOptions) error {
	inv, err := opts.Inventory(ctx)
	if err != nil {
		return err
	}
	targets, err := deploy.Targets(inv, opts.Targets, opts.Limit)
	if err != nil {
		return err
	}
	eng, closeFn, err := opts.Engine(inv, nil)
	if err != nil {
		return err
	}
	defer closeFn()
	clients := deployClients(opts.Invocation, inv, eng)
	confirm := inv.Deploy.ConfirmTimeout
	if opts.confirmTimeoutSet {
		confirm = opts.ConfirmTimeout
	}
	rb, _, err := deploy.Runbook(inv, targets, clients, deploy.Options{Parallel: opts.Parallel, Wait: opts.Wait, Output: opts.IO.ErrOut, OutputLock: opts.IO, Rollback: opts.Rollback,
		ConfirmTimeout: confirm, Progress: func(host, msg string) { eng.Reporter.Progress(0, host, msg) }})
	if err != nil {
		return usagef("%v", err)
	}
	rb.Retry = "hoctl history shows which hosts were deployed; deploy the others with hoctl deploy HOST..."
	if opts.DryRun {
		return planOnly(ctx, opts.IO, eng, rb, 1)
	}
	_, err = eng.Run(ctx, rb, tasks.RunOptions{})
	if err != nil && !opts.IO.JSON {
		fmt.Fprintln(opts.IO.ErrOut, "the rollout stopped; hosts after the failed one were not touched")
	}
	return quiet(err)
}

// deployClients reach Consul and Nomad through the engine's connections,
// and open the magic rollback's fresh connections in a pool of their own:
// a new TCP connection and SSH handshake, never the run's connection that
// survived the activation.
func deployClients(in Invocation, inv *inventory.Inventory, eng *tasks.Engine) deploy.Clients {
	var clients deploy.Clients
	clients.Consul, clients.Nomad = in.APIs(inv, eng)
	clients.Fresh = func(ctx context.Context, h *inventory.Host) (sshexec.Runner, func(), error) {
		conn, err := in.Connector(inv)
		if err != nil {
			return nil, nil, err
		}
		r, err := conn.Runner(ctx, h)
		if err != nil {
			_ = conn.Close()
			return nil, nil, err
		}
		return r, func() { _ = conn.Close() }, nil
	}
	return clients
}
