package jobs

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/hoctl/hoctl/pkg/exitcode"
	"github.com/hoctl/hoctl/pkg/inventory"
	"github.com/hoctl/hoctl/pkg/tasks"
)

// Migration is what a migrate-jobs command line asks for.
type Migration struct {
	// Dir overrides the inventory's jobs.dir; From and To, paired,
	// override its jobs.rewrite.
	Dir      string
	From, To []string
	// Write writes the changed files, ShowPlan shows Nomad's plan for
	// each changed job, Submit writes and submits.
	Write, ShowPlan, Submit bool
	// AllowMissing writes or submits without checking the new paths.
	AllowMissing bool
	// Wait bounds each submitted job's wait for health.
	Wait time.Duration
}

// NeedsInventory says whether the inventory must be read: not when the
// directory and the rules are both on the command line and nothing is
// written, planned or submitted.
func (m *Migration) NeedsInventory() bool {
	return m.Dir == "" || len(m.From) == 0 || m.Write || m.ShowPlan || m.Submit
}

// Resolve is the directory and the checked rules, from the command line
// first, else from inv (nil only when !NeedsInventory).
func (m *Migration) Resolve(inv *inventory.Inventory) (dir string, rules []Rule, err error) {
	dir = m.Dir
	if dir == "" {
		dir = inv.Jobs.Dir
		if !filepath.IsAbs(dir) {
			dir = filepath.Join(filepath.Dir(inv.Path), dir)
		}
	}
	for i := range m.From {
		rules = append(rules, Rule{From: m.From[i], To: m.To[i]})
	}
	if len(rules) == 0 {
		for _, r := range inv.Jobs.Rewrite {
			rules = append(rules, Rule{From: r.From, To: r.To})
		}
	}
	if len(rules) == 0 {
		return "", nil, exitcode.Usagef("nothing to rewrite: give --from and --to, or jobs.rewrite in the inventory")
	}
	if rules, err = CheckRules(rules); err != nil {
		return "", nil, &exitcode.UsageError{Err: err}
	}
	if st, err := os.Stat(dir); err != nil || !st.IsDir() {
		return "", nil, exitcode.Usagef("job directory %s: not a directory", dir)
	}
	return dir, rules, nil
}

// Changed are the files the rules change; broken counts those that do
// not parse.
func Changed(files []*File) (changed []*File, broken int) {
	for _, jf := range files {
		if jf.Changed() {
			changed = append(changed, jf)
		}
		if jf.Err != nil {
			broken++
		}
	}
	return changed, broken
}

// Refuse is what makes the migration impossible before its diff is
// shown: writing new paths that no NFS client can check.
func (m *Migration) Refuse(inv *inventory.Inventory, files []*File) error {
	changed, broken := Changed(files)
	if broken == 0 && (m.Write || m.Submit) && !m.AllowMissing && NeedsPathCheck(changed) && PathCheckClient(inv) == nil {
		return &exitcode.UsageError{Err: ErrNoPathCheckClient}
	}
	return nil
}

// Plan is the run that writes the changed files (after checking their new
// paths) and, with Submit, submits every job of the directory that still
// differs from Nomad's, one at a time. An empty runbook has nothing to do.
func (m *Migration) Plan(inv *inventory.Inventory, files []*File, nomadJobs func(context.Context) (Nomad, error), rep tasks.Reporter) (*tasks.Runbook, error) {
	changed, _ := Changed(files)
	rb, err := WriteRunbook(inv, changed, m.AllowMissing)
	if errors.Is(err, ErrNoPathCheckClient) {
		return nil, &exitcode.UsageError{Err: err}
	}
	if err != nil {
		return nil, err
	}
	if m.Submit {
		// Every job of the directory, not only the files changed now: a
		// job whose server copy already matches is skipped at its plan,
		// so --submit after a failure submits exactly the jobs still to go.
		rb.Name = fmt.Sprintf("migrate-jobs: write %d files, submit the jobs that differ from Nomad's", len(changed))
		for _, jf := range files {
			if jf.Job != "" && jf.Err == nil {
				rb.Steps = append(rb.Steps, SubmitStep(jf, nomadJobs, m.Wait, rep))
			}
		}
	}
	// A new run scans again and acts only on what still differs.
	rb.Retry = "run the same hoctl migrate-jobs again: it scans anew and writes or submits only what still differs"
	return rb, nil
}
