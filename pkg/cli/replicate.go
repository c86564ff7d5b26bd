package cli

import (
	"context"
	"fmt"
	"time"

	"github.com/hoctl/hoctl/pkg/inventory"
	"github.com/hoctl/hoctl/pkg/replicate"
	"github.com/hoctl/hoctl/pkg/tasks"
	"github.com/spf13/cobra"
)

// ReplicateOptions are the inputs of `hoctl replicate`.
type ReplicateOptions struct {
	F        *Factory
	Src, Dst string
	Name     string
	Full     bool
}

// NewCmdReplicate sends a new btrfs snapshot from one host to another.
func NewCmdReplicate(f *Factory, runF func(*ReplicateOptions) error) *cobra.Command {
	opts := &ReplicateOptions{F: f}
	cmd := &cobra.Command{
		Use:   "replicate [SRC DST] [--name N] [--full]",
		Short: "Snapshot a btrfs subvolume and send it to another host, incrementally, verified and pruned",
		Long: `Run the inventory's replication N (or the one from SRC to DST): inspect both
sides and choose the parent by UUID, remove garbage of interrupted receives,
take a read-only snapshot <name>@<UTC time>, send it (incrementally when a
common parent exists) through this machine into btrfs receive, verify the
copy (read-only, received UUID, parent), and prune both sides. See
docs/replicate.md.`,
		Args: func(c *cobra.Command, args []string) error {
			if len(args) != 0 && len(args) != 2 {
				return usagef("expected SRC DST, or --name N")
			}
			if len(args) == 0 && opts.Name == "" {
				return usagef("expected SRC DST, or --name N")
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
			return replicateRun(c.Context(), opts)
		},
	}
	cmd.Flags().StringVar(&opts.Name, "name", "", "the inventory's replication to run")
	cmd.Flags().BoolVar(&opts.Full, "full", false, "send in full even when a common parent exists")
	return cmd
}

// findReplication picks the inventory's replication by name or by ends.
func findReplication(inv *inventory.Inventory, name, src, dst string) (*inventory.Replication, error) {
	if name != "" {
		r := inv.Replication[name]
		if r == nil {
			return nil, usagef("no replication %q in the inventory", name)
		}
		if src != "" && (r.Source.Host != src || r.Target.Host != dst) {
			return nil, usagef("replication %q runs %s → %s, not %s → %s", name, r.Source.Host, r.Target.Host, src, dst)
		}
		return r, nil
	}
	for _, h := range []string{src, dst} {
		if inv.Host(h) == nil {
			_, err := inv.Select(h)
			if err == nil {
				err = usagef("%q is not a single host", h)
			}
			return nil, err
		}
	}
	var found *inventory.Replication
	for _, r := range inv.Replication {
		if r.Source.Host == src && r.Target.Host == dst {
			if found != nil {
				return nil, usagef("several replications run %s → %s: choose one with --name", src, dst)
			}
			found = r
		}
	}
	if found == nil {
		return nil, usagef("no replication from %s to %s in the inventory", src, dst)
	}
	return found, nil
}

func replicateRun(ctx context.Context, opts *ReplicateOptions) error {
	f := opts.F
	inv, err := f.Inventory()
	if err != nil {
		return err
	}
	rep, err := findReplication(inv, opts.Name, opts.Src, opts.Dst)
	if err != nil {
		return err
	}
	eng, closeFn, err := f.Engine(inv, nil)
	if err != nil {
		return err
	}
	defer closeFn()
	ends := replicate.EndsOf(rep)
	var rb *tasks.Runbook
	var run *replicate.Run
	rb, run = replicate.Runbook(inv, ends, replicate.Options{
		Full: opts.Full,
		Progress: func(sent int64, elapsed time.Duration) {
			rate := float64(sent) / max(elapsed.Seconds(), 0.001)
			eng.Reporter.Progress(4, ends.TargetHost, fmt.Sprintf("%s sent, %s/s, %s", replicate.BytesText(sent), replicate.BytesText(int64(rate)), elapsed.Round(100*time.Millisecond)))
		},
	})
	if f.DryRun {
		return planOnly(ctx, f, eng, rb, 1)
	}
	_, err = eng.Run(ctx, rb, tasks.RunOptions{})
	if err == nil && run.Summary != "" && !f.IO.JSON {
		fmt.Fprintf(f.IO.ErrOut, "%s %s → %s: %s\n", f.IO.ColorScheme().SuccessIcon(), ends.SourceHost, ends.TargetHost, run.Summary)
	}
	return quiet(err)
}
