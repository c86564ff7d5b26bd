package cli

import (
	"context"
	"fmt"
	"time"

	"github.com/hashicorp/consul/api"
	nomadapi "github.com/hashicorp/nomad/api"

	"github.com/hoctl/hoctl/pkg/consul"
	"github.com/hoctl/hoctl/pkg/inventory"
	"github.com/hoctl/hoctl/pkg/iostreams"
	"github.com/hoctl/hoctl/pkg/jobs"
	"github.com/hoctl/hoctl/pkg/nomad"
	"github.com/hoctl/hoctl/pkg/tasks"
	"github.com/spf13/cobra"
)

// MigrateJobsOptions are the inputs of `hoctl migrate-jobs`.
type MigrateJobsOptions struct {
	Invocation
	jobs.Migration
}

// NewCmdMigrateJobs rewrites Nomad job host paths.
func NewCmdMigrateJobs(f *Factory, runF func(*MigrateJobsOptions) error) *cobra.Command {
	opts := &MigrateJobsOptions{}
	cmd := &cobra.Command{
		Use:   "migrate-jobs [--dir D] [--from P --to P]... [--write]",
		Short: "Rewrite host paths in Nomad job files byte-exactly: diff by default, --write to apply",
		Long: `Scan the job files (*.hcl, *.nomad, *.nomad.hcl) in jobs.dir (or --dir) and
move host paths under each rewrite's "from" to its "to" (jobs.rewrite, or
--from/--to pairs, in order): docker volumes (host side), bind mount
sources, host_volume paths, absolute template and artifact sources. Only the
bytes of those path literals change. Other mentions of the old paths (env,
args, template data, heredocs, container sides, paths built from variables)
are reported, not changed. A file that does not parse is reported and left
alone.

By default this prints a unified diff per file and a summary, and changes
nothing. --write checks on an NFS client (nfs.clients) that every new host
path exists and is not empty where the old one was not, then writes each
changed file atomically, as a journaled run. --plan shows Nomad's plan for
each changed job; --submit writes, then registers each changed job with the
plan's check index and its HCL source, one at a time, waiting for healthy
allocations and stopping at the first failure. See docs/migrate-jobs.md.`,
		Args: rangeArgs(0, 0),
		RunE: func(c *cobra.Command, _ []string) error {
			if len(opts.From) != len(opts.To) {
				return usagef("--from and --to come in pairs: %d --from, %d --to", len(opts.From), len(opts.To))
			}
			opts.Invocation = f.Invocation()
			if runF != nil {
				return runF(opts)
			}
			return migrateJobsRun(c.Context(), opts)
		},
	}
	migrateJobsFlags(cmd, f, opts)
	return cmd
}

func migrateJobsFlags(cmd *cobra.Command, f *Factory, opts *MigrateJobsOptions) {
	cmd.Flags().StringVar(&opts.Dir, "dir", "", "directory of job files (default: the inventory's jobs.dir, relative to the inventory)")
	cmd.Flags().StringArrayVar(&opts.From, "from", nil, "old path prefix (repeatable, paired with --to)")
	cmd.Flags().StringArrayVar(&opts.To, "to", nil, "new path prefix")
	cmd.Flags().BoolVar(&opts.Write, "write", false, "write the changed files (after the path checks)")
	honoursDryRun(f, cmd, "with --write or --submit: run the path checks and print the plan; change nothing")
	honoursYes(f, cmd)
	cmd.Flags().BoolVar(&opts.ShowPlan, "plan", false, "parse and plan each changed job on Nomad and show the diff (changes nothing)")
	cmd.Flags().BoolVar(&opts.Submit, "submit", false, "write, then submit each changed job (check index, HCL source), one at a time, waiting for healthy allocations")
	cmd.Flags().BoolVar(&opts.AllowMissing, "allow-missing", false, "write or submit even if new host paths are missing on the share")
	cmd.Flags().DurationVar(&opts.Wait, "wait", 2*time.Minute, "how long --submit waits for a job's new allocations to be healthy")
}

func migrateJobsRun(ctx context.Context, opts *MigrateJobsOptions) error {
	m := &opts.Migration
	inv, files, err := scanJobs(ctx, opts)
	if err != nil {
		return err
	}
	printMigration(opts.IO, files)
	// A job file that does not parse may hold paths to move: the
	// migration is not complete, whatever else it did (exit 2), and
	// nothing is written or submitted until it parses.
	changed, broken := jobs.Changed(files)
	if broken > 0 {
		return &InputError{Err: fmt.Errorf("%d job file(s) do not parse (listed above): fix or move them, then run again; nothing was written", broken)}
	}
	if !m.Submit && (!m.Write && !m.ShowPlan || len(changed) == 0) {
		return nil
	}
	if (m.ShowPlan || m.Submit) && inv.Nomad == nil {
		return usagef("--plan and --submit need the inventory's nomad section")
	}
	eng, closeFn, err := opts.Engine(inv, nil)
	if err != nil {
		return err
	}
	defer closeFn()
	nomadJobs := nomadJobsVia(opts.APIs(inv, eng))
	if m.ShowPlan && !m.Submit {
		return planJobs(ctx, opts.IO, changed, nomadJobs)
	}
	rb, err := m.Plan(inv, files, func(ctx context.Context) (jobs.Nomad, error) { return nomadJobs(ctx) }, eng.Reporter)
	if err != nil || len(rb.Steps) == 0 {
		return err
	}
	if opts.DryRun {
		return planOnly(ctx, opts.IO, eng, rb, 1)
	}
	_, err = eng.Run(ctx, rb, tasks.RunOptions{})
	return quiet(err)
}

// scanJobs reads the inventory when the migration needs it and scans its
// job files; it refuses what cannot be done before the whole diff
// scrolls by (a file that does not parse is reported after the diffs).
func scanJobs(ctx context.Context, opts *MigrateJobsOptions) (*inventory.Inventory, []*jobs.File, error) {
	m := &opts.Migration
	var inv *inventory.Inventory
	if m.NeedsInventory() {
		var err error
		if inv, err = opts.Inventory(ctx); err != nil {
			return nil, nil, err
		}
	}
	dir, rules, err := m.Resolve(inv)
	if err != nil {
		return nil, nil, err
	}
	files, err := jobs.Scan(dir, rules)
	if err != nil {
		return nil, nil, err
	}
	return inv, files, m.Refuse(inv, files)
}

// nomadJobsVia reaches Nomad's jobs API on first use; an unhealthy job's
// report names its failing Consul checks when the inventory has Consul.
func nomadJobsVia(consulFn func(context.Context) (*api.Client, error), nomadFn func(context.Context) (*nomadapi.Client, error)) func(context.Context) (*nomad.Jobs, error) {
	return func(ctx context.Context) (*nomad.Jobs, error) {
		c, err := nomadFn(ctx)
		nj := &nomad.Jobs{Client: c}
		if consulFn != nil {
			nj.Checks = func(ctx context.Context, node, alloc string) ([]string, error) {
				cc, err := consulFn(ctx)
				if err != nil {
					return nil, err
				}
				return (&consul.Cluster{Client: cc}).FailingChecks(ctx, node, alloc)
			}
		}
		return nj, err
	}
}

// planJobs shows Nomad's plan for each changed job, from its rewritten
// source; nothing is written or submitted.
func planJobs(ctx context.Context, io *iostreams.IOStreams, changed []*jobs.File, nomadJobs func(context.Context) (*nomad.Jobs, error)) error {
	nj, err := nomadJobs(ctx)
	if err != nil {
		return err
	}
	for _, jf := range changed {
		if jf.Job == "" {
			continue
		}
		job, err := nj.Parse(ctx, string(jf.Out))
		if err != nil {
			return fmt.Errorf("%s: %w", jf.Path, err)
		}
		p, err := nj.Plan(ctx, job)
		if err != nil {
			return fmt.Errorf("%s: %w", jf.Path, err)
		}
		newJobsPrinter(io).plan(jf, p)
	}
	return nil
}
