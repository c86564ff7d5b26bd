package cli

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/hoctl/hoctl/pkg/sshexec"
)

// historyHarness is a harness with a state directory of its own and a
// serial runbook whose after check fails on c1, the first of its hosts.
func historyHarness(t *testing.T) (*harness, string) {
	t.Helper()
	h := newHarness(t)
	dir := t.TempDir()
	state := filepath.Join(dir, "state")
	getenv := h.f.Getenv
	h.f.Getenv = func(k string) string {
		if k == "XDG_STATE_HOME" {
			return state
		}
		return getenv(k)
	}
	rb := filepath.Join(dir, "roll.yaml")
	if err := os.WriteFile(rb, []byte("name: roll\nsteps:\n  - {title: roll, hosts: cattle, serial: 1, run: change, after: 'healthy?', undo: revert}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	h.conn.handler = func(host string, c sshexec.Cmd) (string, string, int) {
		if host == "c1" && c.Line() == "healthy?" {
			return "", "port 80 closed\n", 1
		}
		return "", "", 0
	}
	return h, rb
}

var reRunID = regexp.MustCompile(`\(run (\d{8}T\d{6}Z-([0-9a-f]{6}))\)`)

// `hoctl history SUFFIX` shows the run whose id ends so (what an operator
// copies from "run 20261207T…Z-cab475"), as git finds a commit by part of
// its hash; text more than one run holds is a usage error listing them.
func TestHistoryFindsARunByItsRandomSuffix(t *testing.T) {
	h, rb := historyHarness(t)
	var ids []string
	for range 2 {
		h.err.Reset()
		if code := h.runLine("--yes", "runbook", "run", rb); code != ExitUnverified {
			t.Fatalf("exit %d:\n%s", code, h.err)
		}
		m := reRunID.FindStringSubmatch(h.err.String())
		if m == nil {
			t.Fatalf("no run id in:\n%s", h.err)
		}
		ids = append(ids, m[1])
		if len(ids) == 2 && ids[1][len(ids[1])-6:] == ids[0][len(ids[0])-6:] {
			t.Skip("two random suffixes alike")
		}
	}
	h.out.Reset()
	suffix := ids[0][len(ids[0])-6:]
	if code := h.runLine("history", suffix); code != 0 {
		t.Fatalf("history %s: exit %d:\n%s", suffix, code, h.err)
	}
	if !strings.HasPrefix(h.out.String(), "run "+ids[0]+"\n") {
		t.Fatalf("history %s shows:\n%s", suffix, h.out)
	}
	h.err.Reset()
	if code := h.runLine("history", "Z-"); code != ExitUsage {
		t.Fatalf("history Z-: exit %d, want %d", code, ExitUsage)
	}
	for _, id := range ids {
		if !strings.Contains(h.err.String(), id) {
			t.Errorf("the ambiguous answer does not list %s:\n%s", id, h.err)
		}
	}
}

// After a serial step's after check failed on its first host, history
// says what happened to each host, as the live view does: c1 ran, failed
// its check and was undone; c2 was not run.
func TestHistoryNamesTheHostsASerialStepDidNotRun(t *testing.T) {
	h, rb := historyHarness(t)
	if code := h.runLine("--yes", "runbook", "run", rb); code != ExitUnverified {
		t.Fatalf("exit %d:\n%s", code, h.err)
	}
	h.out.Reset()
	if code := h.runLine("history", "last"); code != 0 {
		t.Fatalf("history: exit %d:\n%s", code, h.err)
	}
	out := regexp.MustCompile(` \d+ms `).ReplaceAllString(h.out.String(), " Nms ")
	for _, want := range []string{
		"    run    c1       ok exit 0 Nms  change\n",
		"    after  c1       FAILED exit 1 Nms  healthy?\n             | port 80 closed\n",
		"    undo   c1       ok exit 0 Nms  revert\n",
		"           not run: c2\n    → unverified\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("history lacks %q:\n%s", want, out)
		}
	}
}

// A step that succeeded shows the head and tail of its output in history,
// not only in --json: what a "show me the disk usage" step printed is the
// point of running it.
func TestHistoryShowsASuccessfulStepsOutputHeadAndTail(t *testing.T) {
	h, _ := historyHarness(t)
	var lines []string
	for i := 1; i <= 20; i++ {
		lines = append(lines, "line "+strconv.Itoa(i))
	}
	h.conn.handler = func(host string, c sshexec.Cmd) (string, string, int) {
		switch c.Line() {
		case "report":
			return strings.Join(lines, "\n") + "\n", "", 0
		case "short":
			return "all good\n", "", 0
		}
		return "", "", 0
	}
	rb := filepath.Join(t.TempDir(), "report.yaml")
	if err := os.WriteFile(rb, []byte("name: report\nsteps:\n  - {title: report, hosts: c1, run: report}\n  - {title: short, hosts: c2, run: short}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if code := h.runLine("--yes", "runbook", "run", rb); code != 0 {
		t.Fatalf("exit %d:\n%s", code, h.err)
	}
	h.out.Reset()
	if code := h.runLine("history", "last"); code != 0 {
		t.Fatalf("history: exit %d:\n%s", code, h.err)
	}
	out := regexp.MustCompile(` \d+ms `).ReplaceAllString(h.out.String(), " Nms ")
	for _, want := range []string{
		"    run    c1       ok exit 0 Nms  report\n" +
			"             | line 1\n             | line 2\n             | line 3\n" +
			"             | … 14 more lines …\n" +
			"             | line 18\n             | line 19\n             | line 20\n",
		"    run    c2       ok exit 0 Nms  short\n             | all good\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("history lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "line 10\n") {
		t.Errorf("history shows the middle of a successful step's output:\n%s", out)
	}
}

// history --json prints the journal's records as journaled, and the list
// as run events: nothing for people on stdout.
func TestHistoryJSONIsTheJournal(t *testing.T) {
	h, rb := historyHarness(t)
	if code := h.runLine("--yes", "runbook", "run", rb); code != ExitUnverified {
		t.Fatalf("exit %d:\n%s", code, h.err)
	}
	for _, c := range []struct {
		args        []string
		first, last string
	}{
		{[]string{"--json", "history", "last"}, "run_start", "run_end"},
		{[]string{"--json", "history"}, "run", "run"},
	} {
		h.out.Reset()
		if code := h.runLine(c.args...); code != 0 {
			t.Fatalf("%v: exit %d:\n%s", c.args, code, h.err)
		}
		var kinds []string
		for _, l := range strings.Split(strings.TrimSpace(h.out.String()), "\n") {
			var ev struct{ Event string }
			if err := json.Unmarshal([]byte(l), &ev); err != nil {
				t.Fatalf("%v: not JSON: %q", c.args, l)
			}
			kinds = append(kinds, ev.Event)
		}
		if kinds[0] != c.first || kinds[len(kinds)-1] != c.last {
			t.Errorf("%v: events %q, want %s … %s", c.args, kinds, c.first, c.last)
		}
	}
}
