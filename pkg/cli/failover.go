package cli

import (
	"context"

	"github.com/hoctl/hoctl/pkg/failover"
	"github.com/hoctl/hoctl/pkg/tasks"
	"github.com/spf13/cobra"
)

// FailoverOptions are the inputs of `hoctl failover`.
type FailoverOptions struct {
	Invocation
	To          string
	Service     string
	PrimaryDown bool
	AcceptLag   bool
}

// NewCmdFailover moves an NFS service to a standby.
func NewCmdFailover(f *Factory, runF func(*FailoverOptions) error) *cobra.Command {
	opts := &FailoverOptions{}
	cmd := &cobra.Command{
		Use:   "failover --to HOST [--service S] [--primary-down] [--accept-lag]",
		Short: "Move an NFS service to another host: fence, final sync, promote, start, remount clients",
		Long: `Fail the inventory's NFS service over to HOST (a standby, or the primary to
fail back), as a journaled runbook under a Consul lock: check Consul and the
copy on HOST, move the Consul owner key and stop the old primary (fence),
send its last writes (final sync), promote the newest complete copy to a
writable subvolume, start NFS on HOST, wait for Consul's health checks,
record the replication's new direction, and remount the clients.

An unreachable primary is never taken as fenced: --primary-down is your word
that it is powered off (no final sync then; the data written since the
newest copy is lost, and the plan says how much). See docs/failover.md.`,
		Args: rangeArgs(0, 0),
		RunE: func(c *cobra.Command, _ []string) error {
			if opts.To == "" {
				return usagef("--to HOST is required")
			}
			opts.Invocation = f.Invocation()
			if runF != nil {
				return runF(opts)
			}
			return failoverRun(c.Context(), opts)
		},
	}
	cmd.Flags().StringVar(&opts.To, "to", "", "the host to serve the share from now on")
	honoursDryRun(f, cmd, "run the assessment and print the plan; change nothing")
	honoursYes(f, cmd)
	cmd.Flags().StringVar(&opts.Service, "service", "", "the inventory's nfs service (default: the only one)")
	cmd.Flags().BoolVar(&opts.PrimaryDown, "primary-down", false, "the current primary is powered off: do not fence it over SSH, no final sync")
	cmd.Flags().BoolVar(&opts.AcceptLag, "accept-lag", false, "promote a copy older than max_lag (with --primary-down)")
	return cmd
}

func failoverRun(ctx context.Context, opts *FailoverOptions) error {
	inv, err := opts.Inventory(ctx)
	if err != nil {
		return err
	}
	eng, closeFn, err := opts.Engine(inv, nil)
	if err != nil {
		return err
	}
	defer closeFn()
	consulFn, _ := opts.APIs(inv, eng)
	rb, err := failover.Resolve(ctx, inv, failover.ConsulVia(consulFn), failover.Options{Service: opts.Service, To: opts.To,
		PrimaryDown: opts.PrimaryDown, AcceptLag: opts.AcceptLag, Plan: opts.DryRun})
	if err != nil {
		return err
	}
	if opts.DryRun {
		return planOnly(ctx, opts.IO, eng, rb, 1)
	}
	_, err = eng.Run(ctx, rb, tasks.RunOptions{})
	return quiet(err)
}
