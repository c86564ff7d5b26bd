package iostreams

import (
	"strings"
	"testing"

	"github.com/charmbracelet/x/ansi"
)

func TestTableAlignsColouredCellsByDisplayWidth(t *testing.T) {
	for _, headers := range [][]string{nil, {"HOST", "STATE", "NOTE"}} {
		s, _, _, _ := Test()
		s.SetTTY(false, true, true)
		s.SetColor(true)
		cs := s.OutColorScheme()
		rows := [][]string{
			{cs.SuccessIcon() + " " + cs.Host("zippy"), cs.Green("ok"), "rtt 1ms"},
			{cs.FailureIcon() + " " + cs.Host("c1"), cs.Red("CONNECTION REFUSED"), "dial tcp"},
			{cs.WarningIcon() + " " + cs.Host("fractal"), "→ wide", ""},
		}
		out := cs.Table("  ", false, headers, rows)
		if !strings.Contains(out, "\x1b[") {
			t.Fatalf("no colour on a colour terminal:\n%s", out)
		}
		lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
		if len(lines) != len(rows)+min(len(headers), 1) {
			t.Fatalf("%d lines for %d rows (headers %v):\n%s", len(lines), len(rows), headers, out)
		}
		// The second column starts at the same display column on every line.
		col := -1
		for _, l := range lines {
			plain := ansi.Strip(l)
			if !strings.HasPrefix(plain, "  ") || strings.HasSuffix(plain, " ") {
				t.Errorf("indent or trailing blanks: %q", plain)
			}
			f := strings.Fields(plain)
			second := f[2] // icon, host, then the second column
			if headers != nil && strings.HasPrefix(plain, "  HOST") {
				second = f[1]
			}
			at := ansi.StringWidth(plain[:strings.Index(plain, second)])
			if col == -1 {
				col = at
			} else if at != col {
				t.Errorf("column 2 at %d, want %d:\n%s", at, col, ansi.Strip(out))
			}
		}
	}
}

func TestTableBoxOnlyWhereTheTerminalDrawsIt(t *testing.T) {
	rows := [][]string{{"a", "b"}}
	for _, c := range []struct {
		tty, dumb, box bool
	}{{true, false, true}, {true, true, false}, {false, false, false}} {
		s, _, _, _ := Test()
		s.SetTTY(false, c.tty, c.tty)
		s.SetDumb(c.dumb)
		out := s.OutColorScheme().Table("", true, []string{"X", "Y"}, rows)
		if strings.Contains(out, "╭") != c.box || strings.ContainsAny(out, "│─╰") != c.box {
			t.Errorf("tty %v dumb %v: box %v wanted:\n%s", c.tty, c.dumb, c.box, out)
		}
	}
}

func TestStyleDoesNotPadOrSpanLines(t *testing.T) {
	s, _, _, _ := Test()
	s.SetTTY(false, true, true)
	s.SetColor(true)
	cs := s.OutColorScheme()
	got := cs.Red("-a long removed line\n")
	lines := strings.Split(got, "\n")
	if len(lines) != 2 || lines[1] != "" || !strings.HasSuffix(lines[0], "\x1b[0m") {
		t.Fatalf("%q", got)
	}
	got = cs.Green("+x\n+a much longer line\tafter a tab")
	for _, l := range strings.Split(got, "\n") {
		if strings.HasSuffix(ansi.Strip(l), " ") {
			t.Errorf("padded: %q", l)
		}
	}
	if !strings.Contains(got, "\t") {
		t.Errorf("tab converted: %q", got)
	}
}
