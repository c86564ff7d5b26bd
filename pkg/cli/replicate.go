package cli

import (
	"context"
	"errors"
	"io"
	"strings"

	"fmt"
	"github.com/hashicorp/consul/api"
	nomadapi "github.com/hashicorp/nomad/api"
	"time"

	"github.com/hoctl/hoctl/pkg/consul"
	"github.com/hoctl/hoctl/pkg/hostout"
	"github.com/hoctl/hoctl/pkg/inventory"
	"github.com/hoctl/hoctl/pkg/replicate"
	"github.com/hoctl/hoctl/pkg/tasks"
	"github.com/hoctl/hoctl/pkg/trace"
	"github.com/spf13/cobra"
)

// ReplicateOptions are the inputs of `hoctl replicate`.
type ReplicateOptions struct {
	Invocation
	Src, Dst  string
	Name      string
	Full      bool
	Transport string
	// Trace is where -v prints the run's phases (nil without -v).
	Trace *trace.Log
}

// replicateLong is replicate's help: choosing a replication, the send and its checks.
const replicateLong = `Run the inventory's replication N (or the one from SRC to DST): inspect both
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
See docs/replicate.md.`

// NewCmdReplicate sends a new btrfs snapshot from one host to another.
func NewCmdReplicate(f *Factory, runF func(*ReplicateOptions) error) *cobra.Command {
	opts := &ReplicateOptions{}
	cmd := &cobra.Command{
		Use:   "replicate [SRC DST | --name N] [--full] [--transport relay|direct]",
		Short: "Snapshot a btrfs subvolume and send it to another host, incrementally, verified and pruned",
		Long:  replicateLong,
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
			opts.Invocation = f.Invocation()
			opts.Trace = f.Trace()
			if runF != nil {
				return runF(opts)
			}
			if opts.Src == "" && opts.Name == "" {
				return replicateAll(c.Context(), opts)
			}
			return replicateRun(c.Context(), opts)
		},
	}
	replicateFlags(cmd, f, opts)
	return cmd
}

func replicateFlags(cmd *cobra.Command, f *Factory, opts *ReplicateOptions) {
	cmd.Flags().StringVar(&opts.Name, "name", "", "the inventory's replication to run")
	honoursDryRun(f, cmd, "inspect both sides, print the plan with its checks; change nothing")
	honoursYes(f, cmd)
	cmd.Flags().BoolVar(&opts.Full, "full", false, "send in full even when a common parent exists")
	cmd.Flags().StringVar(&opts.Transport, "transport", "", "relay (through this machine) or direct (the source connects to the target); default: the inventory's")
}

func replicateRun(ctx context.Context, opts *ReplicateOptions) error {
	start := time.Now()
	inv, err := opts.Inventory(ctx)
	if err != nil {
		return err
	}
	ends, err := replicate.Resolve(inv, opts.Name, opts.Src, opts.Dst)
	if err != nil {
		return err
	}
	if err := replicate.CheckTransport(opts.Transport); err != nil {
		return err
	}
	eng, closeFn, err := opts.Engine(inv, nil)
	if err != nil {
		return err
	}
	defer closeFn()
	consulDir := replicate.NewConsulDirection(directionKV(opts.APIs, inv, eng))
	if ends, err = replicate.Directed(ctx, consulDir.KV(), ends, opts.Src != ""); err != nil {
		return err
	}
	rb, run := replicateRunbook(inv, eng, ends, opts, consulDir.KV())
	withoutConsul(rb, consulDir)
	clusterLockOrHosts(eng, opts.IO.ErrOut, rb)
	if opts.DryRun {
		defer run.Release()
		return planOnly(ctx, opts.IO, eng, rb, 1)
	}
	_, err = eng.Run(ctx, rb, tasks.RunOptions{})
	run.Release()
	tracePhases(opts.Trace, ends.Name, run.Phases(), time.Since(start))
	if err == nil && run.Summary != "" && !opts.IO.JSON {
		fmt.Fprintf(opts.IO.ErrOut, "%s %s → %s: %s\n", opts.IO.ColorScheme().SuccessIcon(), ends.SourceHost, ends.TargetHost, hostout.Sanitize(run.Summary))
	}
	return quiet(err)
}

// replicateRunbook is the runbook of one replication; the send's
// progress goes to the engine's reporter.
func replicateRunbook(inv *inventory.Inventory, eng *tasks.Engine, ends replicate.Ends, opts *ReplicateOptions, recorded func(context.Context) (replicate.KV, error)) (*tasks.Runbook, *replicate.Run) {
	var run *replicate.Run
	rb, run := replicate.Runbook(inv, ends, replicate.Options{
		Full:      opts.Full,
		Transport: opts.Transport,
		Yes:       opts.Yes,
		DryRun:    opts.DryRun,
		Recorded:  recorded,
		Progress: func(sent int64, elapsed time.Duration) {
			eng.Reporter.Progress(4, ends.TargetHost, replicate.ProgressText(sent, run.Estimate(), elapsed))
		},
	})
	rb.Retry = replicate.Retry
	return rb, run
}

// directionKV reads the replication direction a failover recorded, from
// the inventory's Consul (nil without one).
func directionKV(apis func(*inventory.Inventory, *tasks.Engine) (func(context.Context) (*api.Client, error), func(context.Context) (*nomadapi.Client, error)),
	inv *inventory.Inventory, eng *tasks.Engine) func(context.Context) (replicate.KV, error) {
	consulFn, _ := apis(inv, eng)
	if consulFn == nil {
		return nil
	}
	return func(ctx context.Context) (replicate.KV, error) {
		client, err := consulFn(ctx)
		if err != nil {
			return nil, err
		}
		return &consul.Cluster{Client: client}, nil
	}
}

// withoutConsul marks a run whose Consul could not be read: the plan
// (human and --json) and the journal say so and why, and the run takes
// no cluster lock (the host locks exclude other runs without Consul).
func withoutConsul(rb *tasks.Runbook, d *replicate.ConsulDirection) {
	note := d.NotConsulted()
	if note == "" {
		return
	}
	rb.Warnings = append(rb.Warnings, note)
	rb.ClusterLock = false
	if rb.Params == nil {
		rb.Params = map[string]string{}
	}
	rb.Params["consul"] = "not consulted: " + firstLineOf(d.Unreachable().Error())
}

// clusterLockOrHosts makes the engine's cluster lock optional for
// replications (rbs, told apart by their lock's scope): where Consul
// answered the direction read but then fails to give the lock (an outage
// that began meanwhile, or a node Consul still counts as failed just
// after a partition healed, whose agent refuses sessions), the run goes
// on under the host locks, which exclude every other run of it wherever
// started, and says so on stderr and in its journal record. Another
// holder of the lock still refuses.
func clusterLockOrHosts(eng *tasks.Engine, w io.Writer, rbs ...*tasks.Runbook) {
	take := eng.ClusterLock
	byScope := map[string]*tasks.Runbook{}
	for _, rb := range rbs {
		if rb.ClusterLock {
			byScope[rb.Lock] = rb
		}
	}
	if take == nil || len(byScope) == 0 {
		return
	}
	eng.ClusterLock = func(ctx context.Context, scope, holder string) (tasks.ClusterLock, error) {
		l, err := take(ctx, scope, holder)
		rb := byScope[scope]
		if err == nil || rb == nil || errors.As(err, new(*consul.HeldError)) || ctx.Err() != nil {
			return l, err
		}
		why := firstLineOf(err.Error())
		fmt.Fprintf(w, "warning: %s: Consul's cluster lock was not taken (%s): the host locks exclude other runs of this replication\n", rb.Params["name"], why)
		if rb.Params == nil {
			rb.Params = map[string]string{}
		}
		rb.Params["consul"] = "cluster lock not taken: " + why
		return noClusterLock{}, nil
	}
}

// noClusterLock stands for a cluster lock not taken: never lost.
type noClusterLock struct{}

func (noClusterLock) Lost() <-chan struct{} { return nil }
func (noClusterLock) Release() error        { return nil }

// tracePhases prints, with -v, where a replication's time went: each
// phase and its share of the command's wall time, and the rest (start-up,
// the inventory, Consul, the plan's rendering, the local lock, the
// journal).
func tracePhases(l *trace.Log, name string, phases []replicate.Phase, total time.Duration) {
	if !l.Enabled(trace.Verbose) || total <= 0 {
		return
	}
	var parts []string
	var sum time.Duration
	for _, p := range phases {
		sum += p.Took
		parts = append(parts, fmt.Sprintf("%s %s (%.0f%%)", p.Name, p.Took.Round(time.Millisecond), 100*p.Took.Seconds()/total.Seconds()))
	}
	rest := max(total-sum, 0)
	parts = append(parts, fmt.Sprintf("other %s (%.0f%%)", rest.Round(time.Millisecond), 100*rest.Seconds()/total.Seconds()))
	l.Printf(trace.Verbose, "replication %s phases, of %s: %s", name, total.Round(time.Millisecond), strings.Join(parts, ", "))
}
