package iostreams

import (
	"strings"

	"github.com/charmbracelet/lipgloss"
	"github.com/charmbracelet/lipgloss/table"
)

// Table renders rows in columns sized by display width, so colour codes
// and wide characters (✓, →) do not push columns apart as they do in
// text/tabwriter, which counts bytes. Headers may be nil. Each line
// starts with indent and has no trailing blanks.
//
// With boxed, and when the scheme's stream is a terminal that can draw
// boxes (not TERM=dumb), the table gets a rounded border; otherwise the
// columns are plain, for grep, cut and awk.
func (c *ColorScheme) Table(indent string, boxed bool, headers []string, rows [][]string) string {
	if len(rows) == 0 && len(headers) == 0 {
		return ""
	}
	ncols := len(headers)
	for _, r := range rows {
		ncols = max(ncols, len(r))
	}
	// lipgloss/table wants every row as long as the widest.
	full := make([][]string, len(rows))
	for i, r := range rows {
		full[i] = append(append([]string(nil), r...), make([]string, ncols-len(r))...)
	}
	t := table.New().Rows(full...).Wrap(false)
	if len(headers) > 0 {
		t = t.Headers(headers...)
	}
	box := boxed && c.boxes
	if box {
		t = t.Border(lipgloss.RoundedBorder()).BorderStyle(c.r.NewStyle().Foreground(lipgloss.Color("8")))
	} else {
		t = t.Border(lipgloss.HiddenBorder()).BorderTop(false).BorderBottom(false).BorderLeft(false).
			BorderRight(false).BorderColumn(false).BorderHeader(false).BorderRow(false)
	}
	t = t.StyleFunc(func(row, col int) lipgloss.Style {
		st := c.r.NewStyle()
		switch {
		case box:
			st = st.Padding(0, 1)
		case col < ncols-1:
			st = st.PaddingRight(2)
		}
		if row == table.HeaderRow && c.enabled {
			st = st.Bold(true)
		}
		return st
	})
	// lipgloss/table (v1.1) counts one line too few for a table without
	// headers and cuts its last row (its height is one less than the rows
	// plus borders). Give it hidden top and bottom borders, which make up
	// for the line, and drop the blank lines they draw.
	noHead := !box && len(headers) == 0
	if noHead {
		t = t.BorderTop(true).BorderBottom(true)
	}
	var lines []string
	for _, l := range strings.Split(t.Render(), "\n") {
		l = strings.TrimRight(l, " ")
		if noHead && l == "" {
			continue
		}
		lines = append(lines, indent+l)
	}
	return strings.Join(lines, "\n") + "\n"
}
