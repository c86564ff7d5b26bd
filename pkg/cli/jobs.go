package cli

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

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
	F            *Factory
	Dir          string
	From, To     []string
	Write        bool
	Plan         bool
	Submit       bool
	AllowMissing bool
	Wait         time.Duration
}

// NewCmdMigrateJobs rewrites Nomad job host paths.
func NewCmdMigrateJobs(f *Factory, runF func(*MigrateJobsOptions) error) *cobra.Command {
	opts := &MigrateJobsOptions{F: f}
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
			if runF != nil {
				return runF(opts)
			}
			return migrateJobsRun(c.Context(), opts)
		},
	}
	cmd.Flags().StringVar(&opts.Dir, "dir", "", "directory of job files (default: the inventory's jobs.dir, relative to the inventory)")
	cmd.Flags().StringArrayVar(&opts.From, "from", nil, "old path prefix (repeatable, paired with --to)")
	cmd.Flags().StringArrayVar(&opts.To, "to", nil, "new path prefix")
	cmd.Flags().BoolVar(&opts.Write, "write", false, "write the changed files (after the path checks)")
	honoursDryRun(f, cmd, "with --write or --submit: run the path checks and print the plan; change nothing")
	honoursYes(f, cmd)
	cmd.Flags().BoolVar(&opts.Plan, "plan", false, "parse and plan each changed job on Nomad and show the diff (changes nothing)")
	cmd.Flags().BoolVar(&opts.Submit, "submit", false, "write, then submit each changed job (check index, HCL source), one at a time, waiting for healthy allocations")
	cmd.Flags().BoolVar(&opts.AllowMissing, "allow-missing", false, "write or submit even if new host paths are missing on the share")
	cmd.Flags().DurationVar(&opts.Wait, "wait", 2*time.Minute, "how long --submit waits for a job's new allocations to be healthy")
	return cmd
}

// migrationInputs resolves the directory and rules from flags and the
// inventory; the inventory is optional when both are on the command line.
func migrationInputs(ctx context.Context, f *Factory, opts *MigrateJobsOptions) (*inventory.Inventory, string, []jobs.Rule, error) {
	var inv *inventory.Inventory
	if opts.Dir == "" || len(opts.From) == 0 || opts.Write || opts.Plan || opts.Submit {
		var err error
		if inv, err = f.Inventory(ctx); err != nil {
			return nil, "", nil, err
		}
	}
	dir := opts.Dir
	if dir == "" {
		dir = inv.Jobs.Dir
		if !filepath.IsAbs(dir) {
			dir = filepath.Join(filepath.Dir(inv.Path), dir)
		}
	}
	var rules []jobs.Rule
	for i := range opts.From {
		rules = append(rules, jobs.Rule{From: opts.From[i], To: opts.To[i]})
	}
	if len(rules) == 0 {
		for _, r := range inv.Jobs.Rewrite {
			rules = append(rules, jobs.Rule{From: r.From, To: r.To})
		}
	}
	if len(rules) == 0 {
		return nil, "", nil, usagef("nothing to rewrite: give --from and --to, or jobs.rewrite in the inventory")
	}
	rules, err := jobs.CheckRules(rules)
	if err != nil {
		return nil, "", nil, &UsageError{Err: err}
	}
	if st, err := os.Stat(dir); err != nil || !st.IsDir() {
		return nil, "", nil, usagef("job directory %s: not a directory", dir)
	}
	return inv, dir, rules, nil
}

func migrateJobsRun(ctx context.Context, opts *MigrateJobsOptions) error {
	f := opts.F
	inv, dir, rules, err := migrationInputs(ctx, f, opts)
	if err != nil {
		return err
	}
	files, err := jobs.Scan(dir, rules)
	if err != nil {
		return err
	}
	var changed []*jobs.File
	broken := 0
	for _, jf := range files {
		if jf.Changed() {
			changed = append(changed, jf)
		}
		if jf.Err != nil {
			broken++
		}
	}
	// Refuse what cannot be done before the whole diff scrolls by (a file
	// that does not parse is reported first, after the diffs, below).
	if broken == 0 && (opts.Write || opts.Submit) && !opts.AllowMissing && jobs.NeedsPathCheck(changed) && jobs.PathCheckClient(inv) == nil {
		return &UsageError{Err: jobs.ErrNoPathCheckClient}
	}
	printMigration(f.IO, files)
	// A job file that does not parse may hold paths to move: the
	// migration is not complete, whatever else it did (exit 2), and
	// nothing is written or submitted until it parses.
	if broken > 0 {
		return &InputError{Err: fmt.Errorf("%d job file(s) do not parse (listed above): fix or move them, then run again; nothing was written", broken)}
	}
	if !opts.Submit && (!opts.Write && !opts.Plan || len(changed) == 0) {
		return nil
	}
	if (opts.Plan || opts.Submit) && inv.Nomad == nil {
		return usagef("--plan and --submit need the inventory's nomad section")
	}
	eng, closeFn, err := f.Engine(inv, nil)
	if err != nil {
		return err
	}
	defer closeFn()
	consulFn, nomadFn := f.apiClients(inv, eng.Env.Connect)
	nomadJobs := func(ctx context.Context) (*nomad.Jobs, error) {
		c, err := nomadFn(ctx)
		nj := &nomad.Jobs{Client: c}
		if consulFn != nil {
			// An unhealthy job's report names its failing Consul checks.
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
	if opts.Plan && !opts.Submit {
		return planJobs(ctx, f, changed, nomadJobs)
	}
	rb, err := jobs.WriteRunbook(inv, changed, opts.AllowMissing)
	if errors.Is(err, jobs.ErrNoPathCheckClient) {
		return &UsageError{Err: err}
	}
	if err != nil {
		return err
	}
	if opts.Submit {
		// Every job of the directory, not only the files changed now: a
		// job whose server copy already matches is skipped at its plan,
		// so --submit after a failure submits exactly the jobs still to go.
		rb.Name = fmt.Sprintf("migrate-jobs: write %d files, submit the jobs that differ from Nomad's", len(changed))
		for _, jf := range files {
			if jf.Job != "" && jf.Err == nil {
				rb.Steps = append(rb.Steps, jobs.SubmitStep(jf, func(ctx context.Context) (jobs.Nomad, error) { return nomadJobs(ctx) }, opts.Wait, eng.Reporter))
			}
		}
	}
	if len(rb.Steps) == 0 {
		return nil
	}
	// A new run scans again and acts only on what still differs.
	rb.Retry = "run the same hoctl migrate-jobs again: it scans anew and writes or submits only what still differs"
	if f.DryRun {
		return planOnly(ctx, f, eng, rb, 1)
	}
	_, err = eng.Run(ctx, rb, tasks.RunOptions{})
	return quiet(err)
}

// printMigration writes the diffs to stdout (colored on a terminal) and
// each file's report and the summary to stderr; --json gives one event
// per file instead.
func printMigration(io *iostreams.IOStreams, files []*jobs.File) {
	cs, out := io.ColorScheme(), io.OutColorScheme()
	var rewrites, mentions, broken, changed int
	for _, jf := range files {
		rewrites += len(jf.Edits)
		mentions += len(jf.Mentions)
		if jf.Err != nil {
			broken++
		}
		if jf.Changed() {
			changed++
		}
		if io.JSON {
			ev := map[string]any{"event": "job_file", "file": jf.Path, "rewrites": len(jf.Edits), "mentions": len(jf.Mentions), "diff": jf.Diff()}
			if jf.Err != nil {
				ev["error"] = jf.Err.Error()
			}
			var ms []string
			for _, m := range jf.Mentions {
				ms = append(ms, fmt.Sprintf("%d:%d %s", m.Pos.Line, m.Pos.Column, m.Reason))
			}
			ev["reports"] = ms
			_ = io.Event(ev)
			continue
		}
		for _, line := range strings.SplitAfter(jf.Diff(), "\n") {
			switch {
			case strings.HasPrefix(line, "+++"), strings.HasPrefix(line, "---"):
				fmt.Fprint(io.Out, out.Bold(line))
			case strings.HasPrefix(line, "+"):
				fmt.Fprint(io.Out, out.Green(line))
			case strings.HasPrefix(line, "-"):
				fmt.Fprint(io.Out, out.Red(line))
			case strings.HasPrefix(line, "@@"):
				fmt.Fprint(io.Out, out.Cyan(line))
			default:
				fmt.Fprint(io.Out, line)
			}
		}
		if jf.Err != nil {
			fmt.Fprintf(io.ErrOut, "%s %s\n", cs.FailureIcon(), jf.Err)
		}
		for _, m := range jf.Mentions {
			fmt.Fprintf(io.ErrOut, "%s %s:%d:%d %s\n", cs.WarningIcon(), jf.Path, m.Pos.Line, m.Pos.Column, m.Reason)
		}
	}
	if io.JSON {
		_ = io.Event(map[string]any{"event": "summary", "files": len(files), "changed": changed, "rewrites": rewrites, "reports": mentions, "parse_errors": broken})
		return
	}
	fmt.Fprint(io.ErrOut, "\n"+cs.Table("", false, []string{"FILES", "CHANGED", "REWRITES", "REPORTS", "PARSE ERRORS"},
		[][]string{{fmt.Sprint(len(files)), fmt.Sprint(changed), fmt.Sprint(rewrites), fmt.Sprint(mentions), fmt.Sprint(broken)}}))
}

// planJobs shows Nomad's plan for each changed job, from its rewritten
// source; nothing is written or submitted.
func planJobs(ctx context.Context, f *Factory, changed []*jobs.File, nomadJobs func(context.Context) (*nomad.Jobs, error)) error {
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
		if f.IO.JSON {
			_ = f.IO.Event(map[string]any{"event": "plan", "file": jf.Path, "job": jf.Job, "diff": p.Diff, "job_modify_index": p.JobModifyIndex})
			continue
		}
		fmt.Fprintf(f.IO.Out, "%s (%s):\n%s\n", jf.Job, jf.Path, nomad.DiffSummary(p))
	}
	return nil
}
