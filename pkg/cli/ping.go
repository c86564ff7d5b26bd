package cli

import (
	"context"
	"errors"
	"strings"
	"time"

	"github.com/hoctl/hoctl/pkg/inventory"
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
	p := newPingPrinter(opts.F.IO)
	_, he, err := fanOut(ctx, opts.F, opts.Targets, opts.Parallel,
		func(hosts []*inventory.Host) func(context.Context, Connector, *inventory.Host) PingResult {
			p.start(hosts)
			return func(ctx context.Context, conn Connector, h *inventory.Host) PingResult {
				r := pingHost(ctx, conn, h)
				p.answer(r)
				return r
			}
		},
		func(r PingResult) error { return r.err })
	p.done(he)
	if err != nil {
		return err
	}
	if he.Failed+he.Unreachable > 0 {
		return &SilentError{Code: ExitCode(he)}
	}
	return nil
}

func millis(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

func pingHost(ctx context.Context, conn Connector, h *inventory.Host) PingResult {
	r := PingResult{Host: h.Name}
	start := time.Now()
	run, err := conn.Runner(ctx, h)
	if err != nil {
		return r.failed(err)
	}
	r.Connect = millis(time.Since(start))
	if p, ok := run.(sshexec.Pinger); ok {
		rtt, err := p.Ping(ctx)
		if err != nil {
			return r.failed(err)
		}
		r.RTTms = millis(rtt)
	}
	res, err := run.Run(ctx, sshexec.Cmd{Argv: []string{"uname", "-n"}, Timeout: 30 * time.Second})
	if err != nil {
		return r.failed(err)
	}
	r.Hostname = strings.TrimSpace(string(res.Stdout))
	r.OK = true
	return r
}

// failed is r with why the host did not answer: the reason (refused,
// timed out, …) in a field of its own, and the detail.
func (r PingResult) failed(err error) PingResult {
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
