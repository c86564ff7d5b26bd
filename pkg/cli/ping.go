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
	"github.com/hoctl/hoctl/pkg/sshexec"
	"github.com/spf13/cobra"
)

// PingOptions are the inputs of `hoctl ping`.
type PingOptions struct {
	F        *Factory
	Targets  []string // their union; none: all
	Parallel int
}

// NewCmdPing connects to hosts and measures them.
func NewCmdPing(f *Factory, runF func(*PingOptions) error) *cobra.Command {
	opts := &PingOptions{F: f}
	cmd := &cobra.Command{
		Use:   "ping [TARGET...]",
		Short: "Connect to hosts in parallel; print round-trip latency and remote hostname",
		Long: `Connect to every selected host at once (default: all), measure an SSH
round trip on the open connection and read the remote hostname. Several
TARGETs select their union.
Each host's line is printed as it answers (those answering within the
first quarter second together, in inventory order); --json writes each
host's object as it answers. Unreachable hosts are reported with the
reason (connection refused, timed out, auth failed, host key changed) and
make the exit status 4; the others still answer.`,
		RunE: func(c *cobra.Command, args []string) error {
			opts.Targets = targetsOrAll(args)
			if opts.Parallel < 1 {
				return usagef("--parallel must be at least 1")
			}
			if runF != nil {
				return runF(opts)
			}
			return pingRun(c.Context(), opts)
		},
	}
	cmd.Flags().IntVar(&opts.Parallel, "parallel", 32, "hosts contacted at once")
	return cmd
}

// PingResult is one host's answer; also the --json event.
type PingResult struct {
	Host     string  `json:"host"`
	OK       bool    `json:"ok"`
	Hostname string  `json:"hostname,omitempty"`
	RTTms    float64 `json:"rtt_ms"`
	Connect  float64 `json:"connect_ms"`
	Reason   string  `json:"reason,omitempty"`
	Error    string  `json:"error,omitempty"`

	err error
}

func pingRun(ctx context.Context, opts *PingOptions) error {
	io := opts.F.IO
	var p *pingPrinter
	_, he, err := fanOut(ctx, opts.F, opts.Targets, opts.Parallel,
		func(hosts []*inventory.Host) func(context.Context, Connector, *inventory.Host) PingResult {
			if io.JSON {
				return pingHost
			}
			p = newPingPrinter(io, hosts)
			return func(ctx context.Context, conn Connector, h *inventory.Host) PingResult {
				r := pingHost(ctx, conn, h)
				p.add(r)
				return r
			}
		},
		func(r PingResult) error { return r.err })
	if p != nil {
		p.flush()
	}
	if err != nil {
		return err
	}
	if !io.JSON {
		ecs := io.ColorScheme()
		bad := he.Failed + he.Unreachable
		if bad == 0 {
			fmt.Fprintf(io.ErrOut, "%s %d/%d hosts answered\n", ecs.SuccessIcon(), he.Total, he.Total)
		} else {
			fmt.Fprintf(io.ErrOut, "%s %d/%d hosts answered, %d unreachable\n", ecs.FailureIcon(), he.Total-bad, he.Total, bad)
		}
	}
	if he.Failed+he.Unreachable > 0 {
		return &SilentError{Code: ExitCode(he)}
	}
	return nil
}

// pingGather is how long ping holds the first answers: the hosts that
// answer within it are printed together in inventory order (on a healthy
// network, all of them: the same table every time); any host answering
// later is printed the moment it answers, so a hung host holds back no
// other host's line.
const pingGather = 250 * time.Millisecond

// pingPrinter prints each host's line of ping as it answers, in columns.
type pingPrinter struct {
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

func newPingPrinter(ios *iostreams.IOStreams, hosts []*inventory.Host) *pingPrinter {
	p := &pingPrinter{io: ios, cs: ios.OutColorScheme(), index: map[string]int{}, total: len(hosts)}
	for i, h := range hosts {
		p.index[h.Name] = i
		p.names = max(p.names, ansi.StringWidth(h.Name))
	}
	p.timer = time.AfterFunc(pingGather, p.flush)
	return p
}

// add takes a host's answer: held while the first answers gather,
// printed at once after.
func (p *pingPrinter) add(r PingResult) {
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
func (p *pingPrinter) flush() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.flushLocked()
}

func (p *pingPrinter) flushLocked() {
	p.timer.Stop()
	p.open = true
	slices.SortFunc(p.held, func(a, b PingResult) int { return p.index[a.Host] - p.index[b.Host] })
	p.print(p.held)
	p.held = nil
}

func (p *pingPrinter) row(r PingResult) [3]string {
	cs := p.cs
	if r.OK {
		return [3]string{cs.SuccessIcon() + " " + cs.Host(r.Host), hostout.Sanitize(r.Hostname), "rtt " + ms(r.RTTms) + "  connect " + ms(r.Connect)}
	}
	return [3]string{cs.FailureIcon() + " " + cs.Host(r.Host), cs.Red(strings.ToUpper(r.Reason)), hostout.Sanitize(r.Error)}
}

// print writes rs's lines, the columns as wide as the first lines'
// (and every host's name) need, two spaces apart, as a table has them.
func (p *pingPrinter) print(rs []PingResult) {
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

func millis(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

func pingHost(ctx context.Context, conn Connector, h *inventory.Host) PingResult {
	r := PingResult{Host: h.Name}
	fail := func(err error) PingResult {
		r.err = err
		r.Error = err.Error()
		var ce *sshexec.ConnError
		switch {
		case errors.As(err, &ce):
			r.Reason = string(ce.Reason)
			// The reason has its own column; keep the detail only.
			if ce.Err != nil {
				r.Error = ce.Err.Error()
			}
		case errors.Is(err, context.Canceled):
			r.Reason = "interrupted"
		default:
			r.Reason = "failed"
		}
		return r
	}
	start := time.Now()
	run, err := conn.Runner(ctx, h)
	if err != nil {
		return fail(err)
	}
	r.Connect = millis(time.Since(start))
	if p, ok := run.(sshexec.Pinger); ok {
		rtt, err := p.Ping(ctx)
		if err != nil {
			return fail(err)
		}
		r.RTTms = millis(rtt)
	}
	res, err := run.Run(ctx, sshexec.Cmd{Argv: []string{"uname", "-n"}, Timeout: 30 * time.Second})
	if err != nil {
		return fail(err)
	}
	r.Hostname = strings.TrimSpace(string(res.Stdout))
	r.OK = true
	return r
}
