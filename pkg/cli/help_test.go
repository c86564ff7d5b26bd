package cli

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// walkCommands calls fn for every command a user can run or read help of.
func walkCommands(root *cobra.Command, fn func(c *cobra.Command)) {
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		fn(c)
		for _, sub := range c.Commands() {
			if sub.IsAvailableCommand() {
				walk(sub)
			}
		}
	}
	walk(root)
}

func TestEveryCommandHasDescriptionAndExamples(t *testing.T) {
	h := newHarness(t)
	walkCommands(NewRootCmd(h.f), func(c *cobra.Command) {
		if c.Short == "" || c.Long == "" {
			t.Errorf("%s: no description (Short %q, Long %q)", c.CommandPath(), c.Short, c.Long)
		}
		if c.HasParent() && strings.TrimSpace(c.Example) == "" {
			t.Errorf("%s: no examples", c.CommandPath())
		}
	})
}

func TestHelpTopicsComeFromTheDocs(t *testing.T) {
	for _, topic := range []struct{ name, page, fromPage string }{
		{"inventory", "inventory.md", "hoctl reads one YAML file"},
		{"targets", "hosts.md", "Ansible's host-pattern algebra"},
		{"runbooks", "runbooks.md", "before"},
		{"environment", "environment.md", "HOCTL_INVENTORY"},
		{"exit-codes", "exit-codes.md", "after* check failed"},
	} {
		page, err := os.ReadFile(filepath.Join("..", "..", "docs", topic.page))
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(page), topic.fromPage) {
			t.Fatalf("test out of date: docs/%s lacks %q", topic.page, topic.fromPage)
		}
		h := newHarness(t)
		if code := h.runLine("help", topic.name); code != 0 {
			t.Fatalf("help %s: exit %d: %s", topic.name, code, h.err)
		}
		if !strings.Contains(h.out.String(), topic.fromPage) || strings.Contains(h.out.String(), "](") {
			t.Errorf("help %s:\n%s", topic.name, h.out)
		}
	}
	h := newHarness(t)
	if code := h.runLine("help", "targts"); code != ExitUsage || !strings.Contains(h.err.String(), "did you mean targets?") {
		t.Errorf("help targts: exit %d, stderr %s", code, h.err)
	}
}

func TestVersionPrintsCommitDateAndGo(t *testing.T) {
	h := newHarness(t)
	h.f.Build = BuildInfo{Version: "v1.2.3", Commit: "abc123", Date: "2026-11-30T04:00:00Z"}
	if code := h.runLine("version"); code != 0 {
		t.Fatal(code)
	}
	for _, want := range []string{"hoctl v1.2.3", "commit: abc123", "built:  2026-11-30T04:00:00Z", "go:     go1."} {
		if !strings.Contains(h.out.String(), want) {
			t.Errorf("version lacks %q:\n%s", want, h.out)
		}
	}
}

// docsPageOf is where each command's flags are documented.
var docsPageOf = map[string]string{
	"hoctl":               "README.md",
	"hoctl target-filter": "docs/replicate.md",
	"hoctl guard":         "docs/failover.md",
	"hoctl runbook plan":  "docs/runbooks.md",
	"hoctl runbook run":   "docs/runbooks.md",
	"hoctl history":       "docs/runbooks.md",
	"hoctl resume":        "docs/runbooks.md",
}

// TestEveryFlagIsDocumented: each flag of each command appears, as
// --name, on the command's docs page (docs/<command>.md unless mapped
// above); the global flags in the README.
func TestEveryFlagIsDocumented(t *testing.T) {
	h := newHarness(t)
	walkCommands(NewRootCmd(h.f), func(c *cobra.Command) {
		path := c.CommandPath()
		if strings.HasPrefix(path, "hoctl completion") || strings.HasPrefix(path, "hoctl help") {
			return // cobra's own
		}
		flags := c.LocalNonPersistentFlags()
		if !c.HasParent() {
			flags = c.PersistentFlags()
		}
		page, ok := docsPageOf[path]
		if !ok {
			page = "docs/" + c.Name() + ".md"
		}
		var text string
		flags.VisitAll(func(fl *pflag.Flag) {
			if fl.Hidden || fl.Name == "help" {
				return
			}
			if text == "" {
				b, err := os.ReadFile(filepath.Join("..", "..", page))
				if err != nil {
					t.Errorf("%s: its flags have no docs page: %v (add it, or map the command in docsPageOf)", path, err)
				}
				text = string(b) + " "
			}
			if !regexp.MustCompile(`--` + regexp.QuoteMeta(fl.Name) + `\b`).MatchString(text) {
				t.Errorf("%s --%s is not documented in %s", path, fl.Name, page)
			}
		})
	})
}

// Help topics are read in a terminal or a pager: tables are aligned
// columns, not Markdown pipes; `code` and **bold** marks and HTML
// comments do not show; other pages are named as the installed binary
// offers them.
func TestHelpTopicsAreRenderedForATerminal(t *testing.T) {
	for _, topic := range []string{"inventory", "targets", "runbooks", "environment", "exit-codes", "json"} {
		h := newHarness(t)
		if code := h.runLine("help", topic); code != 0 {
			t.Fatalf("help %s: exit %d: %s", topic, code, h.err)
		}
		for i, line := range strings.Split(h.out.String(), "\n") {
			if strings.HasPrefix(line, "    ") {
				continue // a code block's line, shown as written
			}
			if strings.HasPrefix(strings.TrimSpace(line), "|") || strings.Contains(line, "|---") || strings.Contains(line, "`") ||
				regexp.MustCompile(`\*\*\w`).MatchString(line) || strings.Contains(line, "<!--") || reDocsPage.MatchString(line) || strings.Contains(line, ".md)") {
				t.Errorf("help %s line %d shows Markdown: %q", topic, i+1, line)
			}
		}
	}
	h := newHarness(t)
	h.runLine("help", "exit-codes")
	if !regexp.MustCompile(`(?m)^CODE  MEANING$`).MatchString(h.out.String()) || !regexp.MustCompile(`(?m)^130   interrupted`).MatchString(h.out.String()) {
		t.Errorf("help exit-codes: the table is not aligned columns:\n%s", h.out)
	}
}

// A user of the installed binary has no docs/ directory: command help
// names the help topic or the man page instead.
func TestCommandHelpPointsAtInstalledHelpNotDocsFiles(t *testing.T) {
	h := newHarness(t)
	walkCommands(NewRootCmd(h.f), func(c *cobra.Command) {
		for _, text := range []string{c.Long, c.Example, c.Short} {
			if m := reDocsPage.FindString(text); m != "" {
				t.Errorf("%s: help points at %s, which the installed binary does not have", c.CommandPath(), m)
			}
		}
	})
	h = newHarness(t)
	if code := h.runLine("check", "--help"); code != 0 || !strings.Contains(h.out.String(), "See 'man hoctl-check'.") {
		t.Errorf("check --help: exit %d\n%s", code, h.out)
	}
}
