package tasks

import (
	"strings"
	"testing"

	"github.com/charmbracelet/x/ansi"
	"github.com/hoctl/hoctl/pkg/iostreams"
)

// A redrawn line never wraps, whatever a host prints: the view moves up
// by the lines it drew, and a wrapped one would leave copies behind.
func TestLiveViewLinesFitTheTerminal(t *testing.T) {
	r := newLiveReporter(func() *iostreams.IOStreams { ios, _, _, _ := iostreams.Test(); ios.SetColor(true); return ios }(), nil)
	r.width = func() int { return 40 }
	long := strings.Repeat("x", 300)
	if got := r.fit(r.cs.Yellow("run…") + " " + r.cs.Dim(long)); ansi.StringWidth(got) >= 40 {
		t.Fatalf("width %d: %q", ansi.StringWidth(got), got)
	}
}
