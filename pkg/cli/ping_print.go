package cli

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/charmbracelet/x/ansi"
	"github.com/hoctl/hoctl/pkg/hostout"
	"github.com/hoctl/hoctl/pkg/inventory"
	"github.com/hoctl/hoctl/pkg/iostreams"
)

// pingPrinter shows ping's answers as they come: each host's ping event,
// or its line in columns (pingLines) and a count of the hosts that
// answered. start sees the hosts before any answer; done ends the output
// (he nil: interrupted, no count).
type pingPrinter interface {
	start(hosts []*inventory.Host)
	answer(r PingResult)
	done(he *HostsError)
}

func newPingPrinter(ios *iostreams.IOStreams) pingPrinter {
	if ios.JSON {
		return jsonPingPrinter{ios}
	}
	return &textPingPrinter{io: ios}
}

type jsonPingPrinter struct{ io *iostreams.IOStreams }

func (jsonPingPrinter) start([]*inventory.Host) {}

func (p jsonPingPrinter) answer(r PingResult) { _ = p.io.Emit(r) }

func (jsonPingPrinter) done(*HostsError) {}

type textPingPrinter struct {
	io    *iostreams.IOStreams
	lines *pingLines
}

func (p *textPingPrinter) start(hosts []*inventory.Host) { p.lines = newPingLines(p.io, hosts) }

func (p *textPingPrinter) answer(r PingResult) { p.lines.add(r) }

func (p *textPingPrinter) done(he *HostsError) {
	if p.lines != nil {
		p.lines.flush()
	}
	if he == nil {
		return
	}
	io := p.io
	ecs := io.ColorScheme()
	if bad := he.Failed + he.Unreachable; bad == 0 {
		fmt.Fprintf(io.ErrOut, "%s %d/%d hosts answered\n", ecs.SuccessIcon(), he.Total, he.Total)
	} else {
		fmt.Fprintf(io.ErrOut, "%s %d/%d hosts answered, %d unreachable\n", ecs.FailureIcon(), he.Total-bad, he.Total, bad)
	}
}

// pingGather is how long ping holds the first answers: the hosts that
// answer within it are printed together in inventory order (on a healthy
// network, all of them: the same table every time); any host answering
// later is printed the moment it answers, so a hung host holds back no
// other host's line.
const pingGather = 250 * time.Millisecond

// pingLines prints each host's line of ping as it answers, in columns.
type pingLines struct {
	io    *iostreams.IOStreams
	cs    *iostreams.ColorScheme
	index map[string]int // inventory order
	names int            // width of the widest host name

	mu    sync.Mutex
	held  []PingResult
	open  bool // past pingGather: print as answers come
	total int
	width [2]int // of the first two columns, set at the first print
	timer *time.Timer
}

func newPingLines(ios *iostreams.IOStreams, hosts []*inventory.Host) *pingLines {
	p := &pingLines{io: ios, cs: ios.OutColorScheme(), index: map[string]int{}, total: len(hosts)}
	for i, h := range hosts {
		p.index[h.Name] = i
		p.names = max(p.names, ansi.StringWidth(h.Name))
	}
	p.timer = time.AfterFunc(pingGather, p.flush)
	return p
}

// add takes a host's answer: held while the first answers gather,
// printed at once after.
func (p *pingLines) add(r PingResult) {
	if errors.Is(r.err, context.Canceled) {
		return // Ctrl-C: said once, for the run, not per host
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.open {
		p.print([]PingResult{r})
		return
	}
	p.held = append(p.held, r)
	if len(p.held) == p.total {
		p.flushLocked()
	}
}

// flush prints the answers held, in inventory order, and prints every
// later one as it comes.
func (p *pingLines) flush() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.flushLocked()
}

func (p *pingLines) flushLocked() {
	p.timer.Stop()
	p.open = true
	slices.SortFunc(p.held, func(a, b PingResult) int { return p.index[a.Host] - p.index[b.Host] })
	p.print(p.held)
	p.held = nil
}

func (p *pingLines) row(r PingResult) [3]string {
	cs := p.cs
	if r.OK {
		return [3]string{cs.SuccessIcon() + " " + cs.Host(r.Host), hostout.Sanitize(r.Hostname), "rtt " + ms(r.RTTms) + "  connect " + ms(r.Connect)}
	}
	return [3]string{cs.FailureIcon() + " " + cs.Host(r.Host), cs.Red(strings.ToUpper(r.Reason)), hostout.Sanitize(r.Error)}
}

// print writes rs's lines, the columns as wide as the first lines'
// (and every host's name) need, two spaces apart, as a table has them.
func (p *pingLines) print(rs []PingResult) {
	if len(rs) == 0 {
		return
	}
	rows := make([][3]string, len(rs))
	for i, r := range rs {
		rows[i] = p.row(r)
	}
	if p.width[0] == 0 {
		p.width[0] = 2 + p.names
		for _, r := range rows {
			p.width[1] = max(p.width[1], ansi.StringWidth(r[1]))
		}
	}
	var b strings.Builder
	for _, r := range rows {
		line := pad(r[0], p.width[0]) + "  " + pad(r[1], p.width[1]) + "  " + r[2]
		b.WriteString(strings.TrimRight(line, " ") + "\n")
	}
	p.io.Lock()
	defer p.io.Unlock()
	fmt.Fprint(p.io.Out, b.String())
}

// pad fills s with blanks to display width w.
func pad(s string, w int) string {
	return s + strings.Repeat(" ", max(0, w-ansi.StringWidth(s)))
}

// ms shows a latency: below a millisecond the digits are noise from the
// scheduler, not the network.
func ms(v float64) string {
	switch {
	case v < 1:
		return "<1ms"
	case v < 10:
		return fmt.Sprintf("%.1fms", v)
	}
	return fmt.Sprintf("%.0fms", v)
}
