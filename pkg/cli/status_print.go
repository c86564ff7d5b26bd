package cli

import (
	"fmt"
	"io"
	"time"

	"github.com/hoctl/hoctl/pkg/format"
	"github.com/hoctl/hoctl/pkg/hostout"
	"github.com/hoctl/hoctl/pkg/iostreams"
	"github.com/hoctl/hoctl/pkg/status"
)

// statusPrinter shows status's checks and their summary: JSON events
// (status_check, status_summary) or a line per check for people.
type statusPrinter interface {
	print(checks []status.Check, took time.Duration)
}

func newStatusPrinter(ios *iostreams.IOStreams, w io.Writer, inventory string) statusPrinter {
	if ios.JSON {
		return jsonStatusPrinter{ios}
	}
	return textStatusPrinter{w: w, cs: ios.OutColorScheme(), inventory: inventory}
}

type jsonStatusPrinter struct{ io *iostreams.IOStreams }

func (p jsonStatusPrinter) print(checks []status.Check, took time.Duration) {
	for _, c := range checks {
		_ = p.io.Emit(statusCheckEvent{Area: c.Area, Name: c.Name, Level: c.Level, Detail: c.Detail, Hint: c.Hint})
	}
	_ = p.io.Emit(statusSummaryEvent{Level: worstLevel(checks), Checks: len(checks), Problems: status.Problems(checks), DurationMS: took.Milliseconds()})
}

type textStatusPrinter struct {
	w         io.Writer
	cs        *iostreams.ColorScheme
	inventory string
}

func (p textStatusPrinter) print(checks []status.Check, took time.Duration) {
	cs, w := p.cs, p.w
	width := 0
	for _, c := range checks {
		width = max(width, len(c.Area)+1+len(c.Name))
	}
	for _, c := range checks {
		icon := cs.SuccessIcon()
		switch c.Level {
		case status.Fail:
			icon = cs.FailureIcon()
		case status.Warn:
			icon = cs.WarningIcon()
		case status.Skip:
			icon = cs.Dim("-")
		}
		label := fmt.Sprintf("%-*s", width, c.Area+" "+c.Name)
		// Details and hints quote hosts and APIs: shown, not acted on.
		line := fmt.Sprintf("%s %s  %s", icon, hostout.Sanitize(label), hostout.Sanitize(c.Detail))
		if c.Level != status.OK && c.Hint != "" {
			line += cs.Dim("   → " + hostout.Sanitize(c.Hint))
		}
		fmt.Fprintln(w, line)
	}
	n := status.Problems(checks)
	summary := fmt.Sprintf("%s, %s, %s (%s)", format.Plural(len(checks), "check"), format.Plural(n, "problem"), format.Duration(took), p.inventory)
	if n == 0 {
		fmt.Fprintln(w, cs.Green(summary))
	} else {
		fmt.Fprintln(w, cs.Red(summary))
	}
}
