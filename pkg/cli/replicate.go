package cli

import (
	"context"
	"fmt"
	"time"

	"github.com/hoctl/hoctl/pkg/consul"
	"github.com/hoctl/hoctl/pkg/failover"
	"github.com/hoctl/hoctl/pkg/inventory"
	"github.com/hoctl/hoctl/pkg/replicate"
	"github.com/hoctl/hoctl/pkg/tasks"
	"github.com/spf13/cobra"
)

// ReplicateOptions are the inputs of `hoctl replicate`.
type ReplicateOptions struct {
	F         *Factory
	Src, Dst  string
	Name      string
	Full      bool
	Transport string
}

// NewCmdReplicate sends a new btrfs snapshot from one host to another.
func NewCmdReplicate(f *Factory, runF func(*ReplicateOptions) error) *cobra.Command {
	opts := &ReplicateOptions{F: f}
	cmd := &cobra.Command{
		Use:   "replicate [SRC DST | --name N] [--full] [--transport relay|direct]",
		Short: "Snapshot a btrfs subvolume and send it to another host, incrementally, verified and pruned",
		Long: `Run the inventory's replication N (or the one from SRC to DST): inspect both
sides and choose the parent by UUID, remove garbage of interrupted receives,
take a read-only snapshot <name>@<UTC time>, send it (incrementally when a
common parent exists) through this machine into btrfs receive, verify the
copy (read-only, received UUID, parent), and prune both sides.

SRC DST the other way round from the inventory's replication sends back
after a failover: from the promoted standby to the old primary,
incrementally.

With no SRC DST and no --name, every replication of the inventory runs (as
btrbk run does): one plan and one confirmation, in parallel where they
share no host, each its own journaled run; one failure does not stop the
others, and the exit code is the failures' (1 when they differ).
See docs/replicate.md.`,
		Args: func(c *cobra.Command, args []string) error {
			if len(args) != 0 && len(args) != 2 {
				return usagef("expected SRC DST, --name N, or nothing for every replication")
			}
			return nil
		},
		RunE: func(c *cobra.Command, args []string) error {
			if len(args) == 2 {
				opts.Src, opts.Dst = args[0], args[1]
			}
			if runF != nil {
				return runF(opts)
			}
			if opts.Src == "" && opts.Name == "" {
				return replicateAll(c.Context(), opts)
			}
			return replicateRun(c.Context(), opts)
		},
	}
	cmd.Flags().StringVar(&opts.Name, "name", "", "the inventory's replication to run")
	honoursDryRun(f, cmd, "inspect both sides, print the plan with its checks; change nothing")
	honoursYes(f, cmd)
	cmd.Flags().BoolVar(&opts.Full, "full", false, "send in full even when a common parent exists")
	cmd.Flags().StringVar(&opts.Transport, "transport", "", "relay (through this machine) or direct (the source connects to the target); default: the inventory's")
	return cmd
}

// findReplication picks the inventory's replication by name or by ends.
// SRC and DST the other way round from the inventory's replication run it
// reversed: sending back after a failover.
func findReplication(inv *inventory.Inventory, name, src, dst string) (replicate.Ends, error) {
	var none replicate.Ends
	if name != "" {
		r := inv.Replication[name]
		if r == nil {
			return none, usagef("no replication %q in the inventory", name)
		}
		switch {
		case src == "" || r.Source.Host == src && r.Target.Host == dst:
			return replicate.EndsOf(r), nil
		case r.Source.Host == dst && r.Target.Host == src:
			return replicate.EndsOf(r).Reverse(), nil
		}
		return none, usagef("replication %q runs %s → %s (or back, after a failover), not %s → %s", name, r.Source.Host, r.Target.Host, src, dst)
	}
	for _, h := range []string{src, dst} {
		if inv.Host(h) == nil {
			_, err := inv.Select(h)
			if err == nil {
				err = usagef("%q is not a single host", h)
			}
			return none, err
		}
	}
	var found []replicate.Ends
	for _, r := range inv.Replication {
		switch {
		case r.Source.Host == src && r.Target.Host == dst:
			found = append(found, replicate.EndsOf(r))
		case r.Source.Host == dst && r.Target.Host == src:
			found = append(found, replicate.EndsOf(r).Reverse())
		}
	}
	switch len(found) {
	case 0:
		return none, usagef("no replication between %s and %s in the inventory", src, dst)
	case 1:
		return found[0], nil
	}
	return none, usagef("several replications run between %s and %s: choose one with --name", src, dst)
}

func replicateRun(ctx context.Context, opts *ReplicateOptions) error {
	f := opts.F
	inv, err := f.Inventory(ctx)
	if err != nil {
		return err
	}
	ends, err := findReplication(inv, opts.Name, opts.Src, opts.Dst)
	if err != nil {
		return err
	}
	if err := checkTransport(opts.Transport); err != nil {
		return err
	}
	eng, closeFn, err := f.Engine(inv, nil)
	if err != nil {
		return err
	}
	defer closeFn()
	if ends, err = recordedDirection(ctx, f, inv, eng, ends, opts.Src != ""); err != nil {
		return err
	}
	var rb *tasks.Runbook
	var run *replicate.Run
	rb, run = replicate.Runbook(inv, ends, replicate.Options{
		Full:      opts.Full,
		Transport: opts.Transport,
		Progress: func(sent int64, elapsed time.Duration) {
			eng.Reporter.Progress(4, ends.TargetHost, replicate.ProgressText(sent, run.Estimate(), elapsed))
		},
	})
	// Each run inspects both sides and removes what an interrupted one
	// left, so the way on after a failure is another run, not resume.
	rb.Retry = replicateRetry
	if f.DryRun {
		return planOnly(ctx, f, eng, rb, 1)
	}
	_, err = eng.Run(ctx, rb, tasks.RunOptions{})
	run.Release()
	if err == nil && run.Summary != "" && !f.IO.JSON {
		fmt.Fprintf(f.IO.ErrOut, "%s %s → %s: %s\n", f.IO.ColorScheme().SuccessIcon(), ends.SourceHost, ends.TargetHost, run.Summary)
	}
	return quiet(err)
}

func checkTransport(t string) error {
	if t != "" && t != inventory.TransportRelay && t != inventory.TransportDirect {
		return usagef("--transport: expected relay or direct, got %q", t)
	}
	return nil
}

// recordedDirection applies the direction a failover recorded in Consul
// (failover.DirectionKey): after zippy → c1, `--name services` sends c1 →
// zippy, and an explicit `zippy c1` is refused rather than sending the old
// primary's stale data over the new primary's copies.
func recordedDirection(ctx context.Context, f *Factory, inv *inventory.Inventory, eng *tasks.Engine, ends replicate.Ends, explicit bool) (replicate.Ends, error) {
	if inv.Consul == nil {
		return ends, nil
	}
	client, err := f.consulClient(ctx, inv, eng.Env.Connect)
	if err != nil {
		return ends, err
	}
	src, _, ok, err := (&consul.Cluster{Client: client}).Get(ctx, failover.DirectionKey(ends.Name))
	if err != nil {
		return ends, fmt.Errorf("reading the replication's direction from Consul: %w", err)
	}
	if !ok || src == ends.SourceHost {
		return ends, nil
	}
	if src != ends.TargetHost {
		return ends, fmt.Errorf("consul kv %s names %s, which takes no part in replication %s", failover.DirectionKey(ends.Name), src, ends.Name)
	}
	if explicit {
		return ends, tasks.Refusef("replication %s runs %s → %s since a failover (consul kv %s): run hoctl replicate %s %s",
			ends.Name, ends.TargetHost, ends.SourceHost, failover.DirectionKey(ends.Name), ends.TargetHost, ends.SourceHost)
	}
	return ends.Reverse(), nil
}

// replicateRetry is what a failed replication says instead of resume.
const replicateRetry = "run hoctl replicate again: it inspects both sides anew and removes what this run left"
