// Package iostreams is hoctl's one output type: data on stdout, progress
// and status on stderr, styling only where a terminal will show it, and a
// Test constructor so commands run without one.
package iostreams

import (
	"bytes"
	"encoding/json"
	"fmt"
	"github.com/hoctl/hoctl/pkg/hostout"
	"io"
	"os"
	"strings"
	"sync"

	"github.com/charmbracelet/lipgloss"
	"github.com/muesli/termenv"
	"golang.org/x/term"
)

// IOStreams carries a command's input and outputs and what they are
// connected to.
type IOStreams struct {
	In     io.Reader
	Out    io.Writer
	ErrOut io.Writer

	stdinTTY, stdoutTTY, stderrTTY bool
	color                          bool
	// dumb: TERM=dumb, a terminal that cannot draw boxes or move the cursor.
	dumb bool
	// JSON mode: stdout carries only JSON events.
	JSON bool

	mu    sync.Mutex // serialises Event and status lines from goroutines
	csMu  sync.Mutex // guards the lazily built schemes below
	cs    *ColorScheme
	outCS *ColorScheme
}

// System returns streams on the process's stdin, stdout and stderr.
// getenv is consulted for NO_COLOR.
func System(getenv func(string) string) *IOStreams {
	return FromFiles(os.Stdin, os.Stdout, os.Stderr, getenv)
}

// FromFiles returns streams on the given files, finding out which are
// terminals as System does; tests pass a real pseudo-terminal.
func FromFiles(in, out, errOut *os.File, getenv func(string) string) *IOStreams {
	s := &IOStreams{
		In: in, Out: out, ErrOut: errOut,
		stdinTTY:  term.IsTerminal(int(in.Fd())),
		stdoutTTY: term.IsTerminal(int(out.Fd())),
		stderrTTY: term.IsTerminal(int(errOut.Fd())),
	}
	s.dumb = getenv("TERM") == "dumb"
	s.color = getenv("NO_COLOR") == "" && !s.dumb
	return s
}

// Test returns streams backed by buffers, with no terminal anywhere.
func Test() (*IOStreams, *bytes.Buffer, *bytes.Buffer, *bytes.Buffer) {
	in, out, errOut := &bytes.Buffer{}, &bytes.Buffer{}, &bytes.Buffer{}
	return &IOStreams{In: in, Out: out, ErrOut: errOut}, in, out, errOut
}

// SetTTY forces terminal detection, for tests.
func (s *IOStreams) SetTTY(stdin, stdout, stderr bool) {
	s.csMu.Lock()
	defer s.csMu.Unlock()
	s.stdinTTY, s.stdoutTTY, s.stderrTTY = stdin, stdout, stderr
	s.cs, s.outCS = nil, nil
}

// SetDumb says the terminal is TERM=dumb, for tests.
func (s *IOStreams) SetDumb(dumb bool) {
	s.csMu.Lock()
	defer s.csMu.Unlock()
	s.dumb = dumb
	s.cs, s.outCS = nil, nil
}

// CanRedrawOut reports whether stdout is a terminal that can move the
// cursor (not TERM=dumb), for --watch.
func (s *IOStreams) CanRedrawOut() bool { return s.stdoutTTY && !s.dumb && !s.JSON }

// CanRedraw reports whether stderr is a terminal that can move the
// cursor, for progress lines and --watch.
func (s *IOStreams) CanRedraw() bool { return s.stderrTTY && !s.dumb }

// SetColor allows or forbids colour, for tests; it still shows only on a
// terminal.
func (s *IOStreams) SetColor(on bool) {
	s.csMu.Lock()
	defer s.csMu.Unlock()
	s.color = on
	s.cs, s.outCS = nil, nil
}

// IsStdinTTY reports whether stdin is a terminal: someone typing, not
// input to forward.
func (s *IOStreams) IsStdinTTY() bool { return s.stdinTTY }

// IsStdoutTTY reports whether stdout is a terminal.
func (s *IOStreams) IsStdoutTTY() bool { return s.stdoutTTY }

// IsStderrTTY reports whether stderr is a terminal.
func (s *IOStreams) IsStderrTTY() bool { return s.stderrTTY }

// CanPrompt reports whether a confirmation can be asked: both stdin and
// stderr are terminals and output is not for machines.
func (s *IOStreams) CanPrompt() bool { return s.stdinTTY && s.stderrTTY && !s.JSON }

// ColorEnabled reports whether stderr is styled.
func (s *IOStreams) ColorEnabled() bool { return s.color && s.stderrTTY }

// Lock serialises writes from concurrent goroutines; hold it for a whole
// line so output from hosts never interleaves mid-line.
func (s *IOStreams) Lock()   { s.mu.Lock() }
func (s *IOStreams) Unlock() { s.mu.Unlock() }

// Event is one JSON object hoctl prints: its kind is its type's (one
// shape per kind, docs/json.md), not data a caller fills in.
type Event interface {
	EventKind() string
}

// SchemaVersion is the version of hoctl's JSON events and journal records
// (docs/json.md): it changes when a field changes meaning or goes.
const SchemaVersion = 1

// Emit writes ev as one line on stdout: "schema" and "event" (its kind)
// first, then its fields. A journal record, which carries its kind as its
// first field, keeps it there.
func (s *IOStreams) Emit(ev Event) error {
	b, err := json.Marshal(ev)
	if err != nil {
		return err
	}
	if len(b) < 2 || b[0] != '{' {
		return fmt.Errorf("event %q is not a JSON object", ev.EventKind())
	}
	head := fmt.Sprintf(`{"schema":%d`, SchemaVersion)
	if !bytes.HasPrefix(b, []byte(`{"event":`)) {
		k, _ := json.Marshal(ev.EventKind())
		head += `,"event":` + string(k)
	}
	if len(b) > 2 {
		head += ","
	}
	b = hostout.EscapeJSON(append([]byte(head), b[1:]...))
	s.mu.Lock()
	defer s.mu.Unlock()
	_, err = s.Out.Write(append(b, '\n'))
	return err
}

// ColorScheme styles text written to stderr: status and progress.
func (s *IOStreams) ColorScheme() *ColorScheme {
	s.csMu.Lock()
	defer s.csMu.Unlock()
	if s.cs == nil {
		s.cs = newScheme(s.ErrOut, s.color && s.stderrTTY, s.stderrTTY && !s.dumb)
	}
	return s.cs
}

// OutColorScheme styles data written to stdout, plain when it is piped.
func (s *IOStreams) OutColorScheme() *ColorScheme {
	s.csMu.Lock()
	defer s.csMu.Unlock()
	if s.outCS == nil {
		s.outCS = newScheme(s.Out, s.color && s.stdoutTTY && !s.JSON, s.stdoutTTY && !s.dumb && !s.JSON)
	}
	return s.outCS
}

func newScheme(w io.Writer, on, boxes bool) *ColorScheme {
	r := lipgloss.NewRenderer(w)
	if on {
		r.SetColorProfile(termenv.ANSI256)
	} else {
		r.SetColorProfile(termenv.Ascii)
	}
	return &ColorScheme{r: r, enabled: on, boxes: boxes}
}

// ColorScheme returns text unchanged when colour is off.
type ColorScheme struct {
	r       *lipgloss.Renderer
	enabled bool
	boxes   bool // a terminal that draws box characters
}

func (c *ColorScheme) style(fg string, bold bool, s string) string {
	if !c.enabled {
		return s
	}
	st := c.r.NewStyle().Bold(bold).TabWidth(lipgloss.NoTabConversion)
	if fg != "" {
		st = st.Foreground(lipgloss.Color(fg))
	}
	// Line by line: lipgloss pads every line of a multi-line block to the
	// widest one, and a colour left open across a newline bleeds into the
	// next line (a diff's "-" line, a host prefix).
	if !strings.Contains(s, "\n") {
		return st.Render(s)
	}
	lines := strings.Split(s, "\n")
	for i, l := range lines {
		if l != "" {
			lines[i] = st.Render(l)
		}
	}
	return strings.Join(lines, "\n")
}

// Bold is emphasised text.
func (c *ColorScheme) Bold(s string) string { return c.style("", true, s) }

// Green marks success.
func (c *ColorScheme) Green(s string) string { return c.style("2", false, s) }

// Red marks failure.
func (c *ColorScheme) Red(s string) string { return c.style("1", true, s) }

// Yellow marks warnings.
func (c *ColorScheme) Yellow(s string) string { return c.style("3", false, s) }

// Dim is secondary text.
func (c *ColorScheme) Dim(s string) string { return c.style("8", false, s) }

// Cyan is for hunk headers of diffs.
func (c *ColorScheme) Cyan(s string) string { return c.style("6", false, s) }

// Host colours a host name with a stable colour per name, so streamed
// lines from many hosts can be told apart at a glance.
func (c *ColorScheme) Host(name string) string {
	if !c.enabled {
		return name
	}
	palette := []string{"6", "5", "4", "3", "2", "14", "13", "12", "11", "10"}
	h := 0
	for _, r := range name {
		h = h*31 + int(r)
	}
	if h < 0 {
		h = -h
	}
	return c.style(palette[h%len(palette)], false, name)
}

// Renderer is the lipgloss renderer bound to stderr's capabilities.
func (c *ColorScheme) Renderer() *lipgloss.Renderer { return c.r }

// SuccessIcon, FailureIcon and WarningIcon prefix status lines.
func (c *ColorScheme) SuccessIcon() string { return c.Green("✓") }
func (c *ColorScheme) FailureIcon() string { return c.Red("✗") }
func (c *ColorScheme) WarningIcon() string { return c.Yellow("!") }
