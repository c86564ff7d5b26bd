package jobs

// The migrate-jobs runbook: check the new host paths on the share, write
// each changed file atomically, submit each job to Nomad. It lives beside
// the rewrite, as replicate's, failover's and deploy's runbooks live in
// their packages; the command line only wires flags to it and prints.

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	nomadapi "github.com/hashicorp/nomad/api"

	"github.com/hoctl/hoctl/pkg/format"
	"github.com/hoctl/hoctl/pkg/inventory"
	"github.com/hoctl/hoctl/pkg/nomad"
	"github.com/hoctl/hoctl/pkg/sshexec"
	"github.com/hoctl/hoctl/pkg/tasks"
)

// newPaths lists the whole new host paths the rewrite introduces (with
// their old ones), sorted; interpolated ones cannot be checked.
func newPaths(files []*File) (pairs [][2]string) {
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

// ErrNoPathCheckClient: --write and --submit check the new host paths on
// an NFS client, and the inventory names none.
var ErrNoPathCheckClient = errors.New("--write checks that the new host paths exist on the share, on an NFS client (nfs.<service>.clients), and the inventory names none: add one, or pass --allow-missing to write without the check")

// PathCheckClient is the host the new paths are checked on: the first
// client of the first nfs service (by name) that has one; nil if none.
func PathCheckClient(inv *inventory.Inventory) *inventory.Host {
	names := make([]string, 0, len(inv.NFS))
	for n := range inv.NFS {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		if c := inv.NFS[n].Clients; c != "" {
			if hosts, err := inv.Select(c); err == nil && len(hosts) > 0 {
				return hosts[0]
			}
		}
	}
	return nil
}

// NeedsPathCheck reports whether writing files would check new host
// paths (any rewrite introduces a whole new path).
func NeedsPathCheck(changed []*File) bool { return len(newPaths(changed)) > 0 }

// pathCheckStep checks on client that each new path exists, and is not
// empty where the old one has data. The plan and the run say the same
// thing about the same paths, once, on one line.
func pathCheckStep(client *inventory.Host, pairs [][2]string, allowMissing bool) *tasks.Step {
	script := pathCheckScript(pairs)
	return &tasks.Step{
		Title: fmt.Sprintf("the %s exist on the share (checked on %s)", format.Plural(len(pairs), "new host path"), client.Name),
		Hosts: []*inventory.Host{client},
		Before: &tasks.Func{Desc: fmt.Sprintf("test -e each new path, and not empty where the old one has data (%s)", format.Plural(len(pairs), "path")),
			Fn: func(ctx context.Context, env *tasks.Env, h *inventory.Host) (string, error) {
				run, err := env.Connect(ctx, h)
				if err != nil {
					return "", err
				}
				res, err := run.Run(ctx, sshexec.Cmd{Script: script})
				if err != nil {
					return "", err
				}
				problems := pathProblems(string(res.Stdout))
				switch {
				case problems == "":
					return fmt.Sprintf("all %d present", len(pairs)), nil
				case allowMissing:
					return "allowed by --allow-missing: " + problems, nil
				}
				return "", fmt.Errorf("not on the share yet: %s (copy the data first, or --allow-missing)", problems)
			}},
		Action: &tasks.Func{Desc: "nothing: a check", Fn: func(context.Context, *tasks.Env, *inventory.Host) (string, error) { return "", nil }},
	}
}

// pathProblems turns pathCheckScript's lines into one sentence:
// "missing: /a, /b; empty where the old path has data: /c".
func pathProblems(out string) string {
	var missing, empty []string
	seen := map[string]bool{}
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		kind, path, ok := strings.Cut(strings.TrimSpace(l), " ")
		if !ok || seen[l] {
			continue
		}
		seen[l] = true
		switch kind {
		case "MISSING":
			missing = append(missing, path)
		case "EMPTY":
			empty = append(empty, path)
		}
	}
	var parts []string
	if len(missing) > 0 {
		parts = append(parts, "missing: "+strings.Join(missing, ", "))
	}
	if len(empty) > 0 {
		parts = append(parts, "empty where the old path has data: "+strings.Join(empty, ", "))
	}
	return strings.Join(parts, "; ")
}

// WriteRunbook checks the new paths on a client, then writes each changed
// file atomically; each write's before check makes sure the file is still
// what was scanned.
func WriteRunbook(inv *inventory.Inventory, changed []*File, allowMissing bool) (*tasks.Runbook, error) {
	var steps []*tasks.Step
	pairs := newPaths(changed)
	if len(pairs) > 0 {
		client := PathCheckClient(inv)
		switch {
		case client == nil && !allowMissing:
			return nil, ErrNoPathCheckClient
		case client == nil:
			steps = append(steps, &tasks.Step{
				Title: fmt.Sprintf("the %s: not checked (no NFS client in the inventory; --allow-missing)", format.Plural(len(pairs), "new host path")),
				Before: &tasks.Func{Desc: "nothing to check on: the inventory's nfs section names no clients", Fn: func(context.Context, *tasks.Env, *inventory.Host) (string, error) {
					return "not checked: --allow-missing", nil
				}},
				Action: &tasks.Func{Desc: "nothing: a note in the plan and the journal", Fn: func(context.Context, *tasks.Env, *inventory.Host) (string, error) { return "", nil }},
			})
		default:
			steps = append(steps, pathCheckStep(client, pairs, allowMissing))
		}
	}
	for _, jf := range changed {
		jf := jf
		sum := sha256.Sum256(jf.Src)
		steps = append(steps, &tasks.Step{
			Title: fmt.Sprintf("write %s (%s)", jf.Path, format.Plural(len(jf.Edits), "rewrite")),
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
				return "written", WriteAtomic(jf.Path, jf.Out)
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

// Nomad is what submitting a job asks of Nomad (nomad.Jobs; a fake of
// it, held to the same contract, in nomadtest).
type Nomad interface {
	Parse(ctx context.Context, hcl string) (*nomadapi.Job, error)
	Plan(ctx context.Context, job *nomadapi.Job) (*nomadapi.JobPlanResponse, error)
	Register(ctx context.Context, job *nomadapi.Job, index uint64, source string) (nomad.Registration, error)
	WaitHealthy(ctx context.Context, reg nomad.Registration, timeout time.Duration, progress func(string)) (string, error)
}

// SubmitStep submits one job: plan (the before check, which records the
// check index), register with that index and the HCL source, then wait
// for Nomad's verdict on the deployment it started.
//
// The check index is the one of the first plan, the plan the operator
// was shown and confirmed: the before check runs again when the step
// starts (and shows the diff as it is then), but a job someone else
// changed in between is refused by Nomad (EnforceIndex), not silently
// overwritten with a change nobody reviewed.
func SubmitStep(jf *File, nomadJobs func(context.Context) (Nomad, error), wait time.Duration, rep tasks.Reporter) *tasks.Step {
	var mu sync.Mutex
	var planned *nomadapi.Job
	var index uint64
	var shown bool // a plan was made: index is the one shown
	var reg nomad.Registration
	var same bool // the server's job already matched when planned: nothing to submit
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
			defer mu.Unlock()
			planned = job
			note := ""
			if !shown {
				shown, index = true, p.JobModifyIndex
				same = p.Diff != nil && p.Diff.Type == "None"
			} else if p.JobModifyIndex != index {
				note = fmt.Sprintf("\n(the job changed since the plan shown: modify index %d, planned at %d; the register will be refused)", p.JobModifyIndex, index)
			}
			return nomad.DiffSummary(p) + note, nil
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
			reg = got
			mu.Unlock()
			return fmt.Sprintf("registered at index %d (evaluation %s)", got.Index, got.EvalID), nil
		}},
		After: &tasks.Func{Desc: fmt.Sprintf("Nomad's deployment of %s is healthy (every allocation running and passing its checks), waiting up to %s", jf.Job, wait), Fn: func(ctx context.Context, _ *tasks.Env, _ *inventory.Host) (string, error) {
			nj, err := nomadJobs(ctx)
			if err != nil {
				return "", err
			}
			mu.Lock()
			r, skip := reg, same
			mu.Unlock()
			if skip {
				return "nothing submitted", nil
			}
			state, err := nj.WaitHealthy(ctx, r, wait, func(s string) { rep.Progress(0, "local", jf.Job+": "+s) })
			var ue *nomad.UnhealthyError
			if err != nil && !errors.As(err, &ue) { // that one names the job already
				return "", fmt.Errorf("job %s: %w", jf.Job, err)
			}
			if err != nil {
				return "", err
			}
			return state, nil
		}},
	}
}
