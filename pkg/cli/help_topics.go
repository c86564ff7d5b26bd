package cli

import (
	"fmt"
	"io/fs"
	"regexp"
	"strings"
	"unicode/utf8"

	"github.com/hoctl/hoctl/docs"
	"github.com/spf13/cobra"
)

// A helpTopic is `hoctl help NAME`: a page of docs/ (or one section of
// it), embedded at build time.
type helpTopic struct {
	name, short string
	page        string
	section     string // a "## " heading of page; "" for all of it
}

var helpTopics = []helpTopic{
	{name: "inventory", short: "The inventory file: hosts, groups, roles, cluster sections", page: "inventory.md"},
	{name: "targets", short: "How TARGET selects hosts: names, groups, roles, globs, ! and &", page: "hosts.md", section: "Targets"},
	{name: "runbooks", short: "Runbook files: steps, checks before and after, undo, journal, resume", page: "runbooks.md"},
	{name: "environment", short: "Environment variables hoctl reads", page: "environment.md"},
	{name: "exit-codes", short: "What each exit status means", page: "exit-codes.md"},
	{name: "json", short: "--json output: one object per line, the event kinds and their fields", page: "json.md"},
}

func (t helpTopic) text(root *cobra.Command) string {
	b, err := fs.ReadFile(docs.Pages, t.page)
	if err != nil {
		// The page list is fixed at build time and a test reads every
		// topic, so this is a build without its docs.
		return fmt.Sprintf("(docs/%s is missing from this build)", t.page)
	}
	s := string(b)
	if t.section != "" {
		s = markdownSection(s, t.section)
	}
	return markdownToText(root, s)
}

// markdownSection is the "## heading" section of a Markdown page, up to
// the next heading of the same level.
func markdownSection(page, heading string) string {
	var out []string
	in := false
	for _, line := range strings.Split(page, "\n") {
		if strings.HasPrefix(line, "## ") {
			if in {
				break
			}
			in = strings.TrimSpace(strings.TrimPrefix(line, "## ")) == heading
		}
		if in {
			out = append(out, line)
		}
	}
	return strings.Join(out, "\n")
}

var (
	reMDLink    = regexp.MustCompile(`\[([^\]]+)\]\(([^)]+)\)`)
	reMDHeading = regexp.MustCompile(`(?m)^#+ .*$`)
	reMDComment = regexp.MustCompile(`(?m)^<!--.*-->\n`)
	reMDCode    = regexp.MustCompile("`([^`]+)`")
	reMDBold    = regexp.MustCompile(`\*\*([^*\s][^*]*)\*\*`)
)

// markdownToText makes a docs page read well in a terminal and a pager:
// links become their text, code fences and comments go, headings are
// upper case, `code` and **bold** lose their marks outside code blocks,
// and tables become aligned columns.
func markdownToText(root *cobra.Command, s string) string {
	s = reMDComment.ReplaceAllString(s, "")
	s = reMDLink.ReplaceAllStringFunc(s, func(m string) string {
		sub := reMDLink.FindStringSubmatch(m)
		// A link named for another page says where the installed
		// binary shows that page.
		if page, ok := strings.CutSuffix(strings.Trim(sub[1], "`"), ".md"); ok {
			return pointAtInstalledHelp(root, "docs/"+page+".md")
		}
		return sub[1]
	})
	t := &mdText{root: root}
	for _, line := range strings.Split(s, "\n") {
		t.line(line)
	}
	t.flush()
	return strings.TrimSpace(strings.Join(t.out, "\n"))
}

// mdText is a page being made text, line by line: the lines done, and
// the table or paragraph being gathered.
type mdText struct {
	root              *cobra.Command
	out, table, prose []string
	inCode            bool
}

func (t *mdText) line(line string) {
	if strings.HasPrefix(line, "```") {
		t.flush()
		t.inCode = !t.inCode
		return
	}
	if t.inCode {
		t.out = append(t.out, "    "+line)
		return
	}
	if strings.HasPrefix(line, "|") {
		if t.prose != nil {
			t.flush()
		}
		t.table = append(t.table, line)
		return
	}
	if t.table != nil {
		t.flush()
	}
	if reMDHeading.MatchString(line) {
		line = strings.ToUpper(strings.TrimLeft(line, "# "))
	}
	t.prose = append(t.prose, line)
}

// flush ends the paragraph or table gathered.
func (t *mdText) flush() {
	if t.prose != nil {
		// Inline marks may span a line break: whole paragraphs.
		t.out = append(t.out, strings.Split(inline(pointAtInstalledHelp(t.root, strings.Join(t.prose, "\n"))), "\n")...)
		t.prose = nil
	}
	if t.table != nil {
		t.out = append(t.out, renderTable(t.table)...)
		t.table = nil
	}
}

func inline(s string) string {
	s = reMDCode.ReplaceAllString(s, "$1")
	return reMDBold.ReplaceAllString(s, "$1")
}

// renderTable lays out a Markdown table as columns two spaces apart,
// without its pipes and its |---| row; a cell too wide for a terminal
// leaves its column as wide as it needs, as a pager shows it.
func renderTable(lines []string) []string {
	var rows [][]string
	for _, l := range lines {
		l = strings.TrimSpace(l)
		l = strings.TrimSuffix(strings.TrimPrefix(l, "|"), "|")
		cells := strings.Split(l, "|")
		if strings.Trim(l, "|-: ") == "" {
			continue // the header's separator
		}
		for i := range cells {
			cells[i] = inline(strings.TrimSpace(cells[i]))
		}
		rows = append(rows, cells)
	}
	var width []int
	for _, r := range rows {
		for i, c := range r {
			if i >= len(width) {
				width = append(width, 0)
			}
			width[i] = max(width[i], utf8.RuneCountInString(c))
		}
	}
	out := make([]string, 0, len(rows))
	for ri, r := range rows {
		var b strings.Builder
		for i, c := range r {
			b.WriteString(c)
			if i < len(r)-1 {
				b.WriteString(strings.Repeat(" ", width[i]-utf8.RuneCountInString(c)+2))
			}
		}
		line := strings.TrimRight(b.String(), " ")
		if ri == 0 {
			line = strings.ToUpper(line)
		}
		out = append(out, line)
	}
	return out
}
