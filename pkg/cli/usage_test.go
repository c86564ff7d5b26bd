package cli

import (
	"context"
	"strings"
	"testing"
)

// runLine runs a command line the way Main does, printing the error.
func (h *harness) runLine(args ...string) int {
	return Run(context.Background(), h.f, args)
}

func TestUsageErrorsAreHumanAndPointAtTheCommandsHelp(t *testing.T) {
	cases := []struct {
		args []string
		want []string
	}{
		{[]string{"--dryrun", "replicate", "zippy", "c1"}, []string{"unknown flag --dryrun (did you mean --dry-run?)", "Run 'hoctl --help'"}},
		{[]string{"-i", "x.yaml", "--jsn", "hosts"}, []string{"unknown flag --jsn (did you mean --json?)"}},
		{[]string{"ping", "--parallell", "3"}, []string{"did you mean --parallel?", "Run 'hoctl ping --help' for usage."}},
		{[]string{"run", "--parallell", "3", "all", "--", "true"}, []string{"did you mean --parallel?", "Run 'hoctl run --help'"}},
		{[]string{"runbook", "pln", "x.yaml"}, []string{`unknown command "pln" for hoctl runbook (did you mean plan?)`, "Run 'hoctl runbook --help'"}},
		{[]string{"run", "all", "uptime"}, []string{"put -- between TARGET and the command: hoctl run all -- uptime"}},
		{[]string{"snapshots", "a", "b"}, []string{`too many arguments ("b"); usage: hoctl snapshots HOST`, "Run 'hoctl snapshots --help'"}},
		{[]string{"version", "x"}, []string{`hoctl version takes no arguments, got "x"`}},
		{[]string{"ping", "--parallel", "many"}, []string{`--parallel "many": expected a whole number`}},
		{[]string{"run", "--timeout", "3", "all", "--", "x"}, []string{`--timeout "3": expected a duration like 30s`}},
		{[]string{"pnig"}, []string{`unknown command "pnig" for hoctl (did you mean ping?)`}},
	}
	for _, c := range cases {
		h := newHarness(t)
		if code := h.runLine(c.args...); code != ExitUsage {
			t.Errorf("%q: exit %d, want 2; stderr:\n%s", c.args, code, h.err)
		}
		for _, w := range c.want {
			if !strings.Contains(h.err.String(), w) {
				t.Errorf("%q: stderr lacks %q:\n%s", c.args, w, h.err)
			}
		}
		for _, raw := range []string{"arg(s)", "Did you mean this?", "unknown shorthand", "strconv."} {
			if strings.Contains(h.err.String(), raw) {
				t.Errorf("%q: raw cobra/pflag wording %q:\n%s", c.args, raw, h.err)
			}
		}
		if len(h.conn.lines()) != 0 {
			t.Errorf("%q: ran commands on a usage error", c.args)
		}
	}
}

func TestOtherErrorsDoNotPointAtHelp(t *testing.T) {
	h := newHarness(t)
	code := h.runLine("--inventory", "/nonexistent/inv.yaml", "hosts")
	if code == 0 || strings.Contains(h.err.String(), "--help") {
		t.Fatalf("exit %d, stderr:\n%s", code, h.err)
	}
}
