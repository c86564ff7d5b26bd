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

	"github.com/hoctl/hoctl/pkg/inventory"
	"github.com/hoctl/hoctl/pkg/iostreams"
	"github.com/hoctl/hoctl/pkg/jobs"
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
	AllowMissing bool
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
changed file atomically, as a journaled run. See docs/migrate-jobs.md.`,
		Args: cobra.NoArgs,
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
	cmd.Flags().BoolVar(&opts.AllowMissing, "allow-missing", false, "write even if new host paths are missing on the share")
	return cmd
}

// migrationInputs resolves the directory and rules from flags and the
// inventory; the inventory is optional when both are on the command line.
func migrationInputs(f *Factory, opts *MigrateJobsOptions) (*inventory.Inventory, string, []jobs.Rule, error) {
	var inv *inventory.Inventory
	if opts.Dir == "" || len(opts.From) == 0 || opts.Write {
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
	for _, jf := range files {
		if jf.Changed() {
			changed = append(changed, jf)
		}
	}
	if !opts.Write || len(changed) == 0 {
		return nil
	}
	eng, closeFn, err := f.Engine(inv, nil)
	if err != nil {
		return err
	}
	defer closeFn()
	rb, err := writeRunbook(inv, changed, opts.AllowMissing)
	if err != nil {
		return err
	}
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
	fmt.Fprintf(io.ErrOut, "\n%-8s %-8s %-9s %-8s %s\n", "FILES", "CHANGED", "REWRITES", "REPORTS", "PARSE ERRORS")
	fmt.Fprintf(io.ErrOut, "%-8d %-8d %-9d %-8d %d\n", len(files), changed, rewrites, mentions, broken)
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
			Title: fmt.Sprintf("write %s (%d rewrites)", jf.Path, len(jf.Edits)),
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
