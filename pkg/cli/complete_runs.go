package cli

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/hoctl/hoctl/pkg/hostout"
	"github.com/hoctl/hoctl/pkg/tasks"
	"github.com/spf13/cobra"
)

// Completion of run IDs from the journal: history's and resume's.

// runIDs completes journaled run IDs, newest first, and "last". Only the
// first line of each journal is read, and only for the newest runs, so
// completion stays quick with thousands of runs.
func (c *completer) runIDs(_ *cobra.Command, _ []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
	runs := filepath.Join(tasks.StateDir(c.f.Getenv), "runs")
	entries, _ := os.ReadDir(runs)
	var ids []string
	for _, e := range entries {
		if id, ok := strings.CutSuffix(e.Name(), ".jsonl"); ok && strings.HasPrefix(id, toComplete) {
			ids = append(ids, id)
		}
	}
	sort.Sort(sort.Reverse(sort.StringSlice(ids))) // IDs start with their UTC time
	var out []cobra.Completion
	if last := "last"; strings.HasPrefix(last, toComplete) {
		out = append(out, cobra.CompletionWithDesc("last", "the newest run"))
	}
	for i, id := range ids {
		desc := ""
		if i < 50 {
			desc = runCommand(filepath.Join(runs, id+".jsonl"))
		}
		out = append(out, cobra.CompletionWithDesc(id, desc))
	}
	return out, cobra.ShellCompDirectiveNoFileComp | cobra.ShellCompDirectiveKeepOrder
}

// resumableRunIDs completes the run IDs resume accepts, newest first:
// runs that failed or were interrupted, of a kind resume rebuilds. The
// newest 50 such runs are offered, "last" when the newest run is one.
func (c *completer) resumableRunIDs(_ *cobra.Command, _ []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
	dir := tasks.StateDir(c.f.Getenv)
	runs, _, err := tasks.ListRuns(dir, tasks.RunFilter{Failed: true})
	if err != nil {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	var out []cobra.Completion
	if last := "last"; strings.HasPrefix(last, toComplete) {
		if newest, _, err := tasks.ListRuns(dir, tasks.RunFilter{Limit: 1}); err == nil && len(newest) == 1 {
			if _, err := resumeBuilder(newest[0]); err == nil {
				out = append(out, cobra.CompletionWithDesc("last", "the newest run"))
			}
		}
	}
	n := 0
	for _, s := range runs {
		if n == 50 {
			break
		}
		if _, err := resumeBuilder(s); err != nil || !strings.HasPrefix(s.ID, toComplete) {
			continue
		}
		n++
		desc := s.Status
		if s.FailedStep > 0 {
			desc += fmt.Sprintf(" at step %d", s.FailedStep)
		}
		desc += ": " + strings.Join(strings.Fields(hostout.Sanitize(s.Command)), " ")
		out = append(out, cobra.CompletionWithDesc(s.ID, desc))
	}
	return out, cobra.ShellCompDirectiveNoFileComp | cobra.ShellCompDirectiveKeepOrder
}

// runCommand is the command line a journal's first record names.
func runCommand(path string) string {
	fh, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer func() { _ = fh.Close() }()
	sc := bufio.NewScanner(fh)
	sc.Buffer(make([]byte, 64*1024), 1<<20)
	if !sc.Scan() {
		return ""
	}
	var r struct {
		Command string `json:"command"`
	}
	if json.Unmarshal(sc.Bytes(), &r) != nil {
		return ""
	}
	// The command line may hold a hostile file name; zsh and fish print
	// descriptions, so it is defused as the history table does, and kept
	// on one line.
	return strings.Join(strings.Fields(hostout.Sanitize(r.Command)), " ")
}
