package cli

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	nomadapi "github.com/hashicorp/nomad/api"
	"github.com/hoctl/hoctl/pkg/inventory"
	"github.com/hoctl/hoctl/pkg/iostreams"
	"github.com/hoctl/hoctl/pkg/jobs"
	"github.com/hoctl/hoctl/pkg/nomad"
	"github.com/hoctl/hoctl/pkg/sshexec"
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
func migrationInputs(f *Factory, opts *MigrateJobsOptions) (*inventory.Inventory, string, []jobs.Rule, error) {
	var inv *inventory.Inventory
	if opts.Dir == "" || len(opts.From) == 0 || opts.Write || opts.Plan || opts.Submit {
		var err error
		if inv, err = f.Inventory(); err != nil {
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
	inv, dir, rules, err := migrationInputs(f, opts)
	if err != nil {
		return err
	}
	files, err := jobs.Scan(dir, rules)
	if err != nil {
		return err
	}
	printMigration(f.IO, files)
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
	_, nomadFn := f.apiClients(inv, eng.Env.Connect)
	nomadJobs := func(ctx context.Context) (*nomad.Jobs, error) {
		c, err := nomadFn(ctx)
		return &nomad.Jobs{Client: c}, err
	}
	if opts.Plan && !opts.Submit {
		return planJobs(ctx, f, changed, nomadJobs)
	}
	rb, err := writeRunbook(inv, changed, opts.AllowMissing)
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
				rb.Steps = append(rb.Steps, submitStep(jf, nomadJobs, opts.Wait, eng.Reporter))
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

// newPaths lists the whole new host paths the rewrite introduces (with
// their old ones), sorted; interpolated ones cannot be checked.
func newPaths(files []*jobs.File) (pairs [][2]string) {
	seen := map[string]bool{}
	for _, jf := range files {
		for _, e := range jf.Edits {
			if e.NewPath != "" && !seen[e.NewPath] {
				seen[e.NewPath] = true
				pairs = append(pairs, [2]string{e.OldPath, e.NewPath})
			}
		}
	}
	sort.Slice(pairs, func(i, j int) bool { return pairs[i][1] < pairs[j][1] })
	return pairs
}

// pathCheckScript prints "MISSING new" or "EMPTY new (old has data)" for
// each pair, on a client that mounts both the old and the new share.
func pathCheckScript(pairs [][2]string) string {
	var b strings.Builder
	for _, p := range pairs {
		o, n := sshexec.Quote(p[0]), sshexec.Quote(p[1])
		fmt.Fprintf(&b, "if [ ! -e %s ]; then echo MISSING %s; elif [ -d %s ] && [ -z \"$(ls -A %s)\" ] && [ -n \"$(ls -A %s 2>/dev/null)\" ]; then echo EMPTY %s; fi\n", n, n, n, n, o, n)
	}
	return b.String()
}

// writeRunbook checks the new paths on a client, then writes each changed
// file atomically; each write's before check makes sure the file is still
// what was scanned.
func writeRunbook(inv *inventory.Inventory, changed []*jobs.File, allowMissing bool) (*tasks.Runbook, error) {
	var steps []*tasks.Step
	pairs := newPaths(changed)
	if len(pairs) > 0 {
		var client *inventory.Host
		for _, svc := range inv.NFS {
			if hosts, err := inv.Select(svc.Clients); err == nil && len(hosts) > 0 {
				client = hosts[0]
				break
			}
		}
		if client == nil {
			return nil, usagef("--write checks the new paths on an NFS client, and the inventory's nfs section names no clients")
		}
		script := pathCheckScript(pairs)
		steps = append(steps, &tasks.Step{
			Title: fmt.Sprintf("the %d new host paths exist on the share (checked on %s)", len(pairs), client.Name),
			Hosts: []*inventory.Host{client},
			Before: &tasks.Func{Desc: fmt.Sprintf("test -e each new path, and not empty where the old one has data (%d paths)", len(pairs)),
				Fn: func(ctx context.Context, env *tasks.Env, h *inventory.Host) (string, error) {
					run, err := env.Connect(ctx, h)
					if err != nil {
						return "", err
					}
					res, err := run.Run(ctx, sshexec.Cmd{Script: script})
					if err != nil {
						return "", err
					}
					problems := strings.TrimSpace(string(res.Stdout))
					if problems == "" {
						return fmt.Sprintf("all %d present", len(pairs)), nil
					}
					if allowMissing {
						return "allowed by --allow-missing: " + strings.ReplaceAll(problems, "\n", ", "), nil
					}
					return "", fmt.Errorf("not on the share yet (copy the data first, or --allow-missing):\n%s", problems)
				}},
			Action: &tasks.Func{Desc: "nothing: a check", Fn: func(context.Context, *tasks.Env, *inventory.Host) (string, error) { return "", nil }},
		})
	}
	for _, jf := range changed {
		jf := jf
		sum := sha256.Sum256(jf.Src)
		steps = append(steps, &tasks.Step{
			Title: fmt.Sprintf("write %s (%s)", jf.Path, iostreams.Plural(len(jf.Edits), "rewrite")),
			Before: &tasks.Func{Desc: "the file is still what was scanned (sha256)", Fn: func(context.Context, *tasks.Env, *inventory.Host) (string, error) {
				cur, err := os.ReadFile(jf.Path)
				if err != nil {
					return "", err
				}
				if sha256.Sum256(cur) != sum {
					return "", fmt.Errorf("%s changed since it was scanned: run again", jf.Path)
				}
				return "unchanged", nil
			}},
			Action: &tasks.Func{Desc: "write a temporary file beside it (same mode), sync, rename over it", Fn: func(context.Context, *tasks.Env, *inventory.Host) (string, error) {
				return "written", jobs.WriteAtomic(jf.Path, jf.Out)
			}},
			After: &tasks.Func{Desc: "the file reads back as the rewrite", Fn: func(context.Context, *tasks.Env, *inventory.Host) (string, error) {
				cur, err := os.ReadFile(jf.Path)
				if err != nil {
					return "", err
				}
				if !bytes.Equal(cur, jf.Out) {
					return "", fmt.Errorf("%s does not read back as written", jf.Path)
				}
				return "verified", nil
			}},
		})
	}
	return &tasks.Runbook{Name: fmt.Sprintf("migrate-jobs: write %d files", len(changed)), Lock: "migrate-jobs", Steps: steps, Kind: "migrate-jobs"}, nil
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

// submitStep submits one job: plan (the before check, which records the
// check index), register with that index and the HCL source, then wait
// for the new allocations to be healthy.
func submitStep(jf *jobs.File, nomadJobs func(context.Context) (*nomad.Jobs, error), wait time.Duration, rep tasks.Reporter) *tasks.Step {
	var mu sync.Mutex
	var planned *nomadapi.Job
	var index, registered uint64
	var same bool // the server's job already matches: nothing to submit
	return &tasks.Step{
		Title: fmt.Sprintf("submit job %s (%s)", jf.Job, filepath.Base(jf.Path)),
		Before: &tasks.Func{Desc: "POST /v1/jobs/parse; PUT /v1/job/" + jf.Job + "/plan (diff, check index)", Fn: func(ctx context.Context, _ *tasks.Env, _ *inventory.Host) (string, error) {
			nj, err := nomadJobs(ctx)
			if err != nil {
				return "", err
			}
			job, err := nj.Parse(ctx, string(jf.Out))
			if err != nil {
				return "", err
			}
			p, err := nj.Plan(ctx, job)
			if err != nil {
				return "", err
			}
			mu.Lock()
			planned, index = job, p.JobModifyIndex
			same = p.Diff != nil && p.Diff.Type == "None"
			mu.Unlock()
			return nomad.DiffSummary(p), nil
		}},
		Action: &tasks.Func{DescFn: func(*inventory.Host) string {
			mu.Lock()
			defer mu.Unlock()
			return fmt.Sprintf("PUT /v1/jobs %s with check index %d and its HCL source", jf.Job, index)
		}, Fn: func(ctx context.Context, _ *tasks.Env, _ *inventory.Host) (string, error) {
			nj, err := nomadJobs(ctx)
			if err != nil {
				return "", err
			}
			mu.Lock()
			job, idx, skip := planned, index, same
			mu.Unlock()
			if skip {
				return "Nomad already runs this version: not submitted", nil
			}
			got, err := nj.Register(ctx, job, idx, string(jf.Out))
			if err != nil {
				return "", err
			}
			mu.Lock()
			registered = got
			mu.Unlock()
			return fmt.Sprintf("registered at index %d", got), nil
		}},
		After: &tasks.Func{Desc: fmt.Sprintf("the new allocations of %s are healthy (waiting up to %s)", jf.Job, wait), Fn: func(ctx context.Context, _ *tasks.Env, _ *inventory.Host) (string, error) {
			nj, err := nomadJobs(ctx)
			if err != nil {
				return "", err
			}
			mu.Lock()
			idx, skip := registered, same
			mu.Unlock()
			if skip {
				return "nothing submitted", nil
			}
			state, err := nj.WaitHealthy(ctx, jf.Job, idx, wait, func(s string) { rep.Progress(0, "local", jf.Job+": "+s) })
			if err != nil {
				return "", fmt.Errorf("job %s: %w", jf.Job, err)
			}
			return state, nil
		}},
	}
}
