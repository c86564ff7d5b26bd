package cli

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/hoctl/hoctl/pkg/hostout"
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
Unreachable hosts are reported with the reason (connection refused, timed
out, auth failed, host key changed) and make the exit status 4; the others
still answer.`,
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
	results, he, err := fanOut(ctx, opts.F, opts.Targets, opts.Parallel,
		func([]*inventory.Host) func(context.Context, Connector, *inventory.Host) PingResult { return pingHost },
		func(r PingResult) error { return r.err })
	if err != nil {
		return err
	}
	if !io.JSON {
		cs := io.OutColorScheme()
		var rows [][]string
		for _, r := range results {
			if r.OK {
				rows = append(rows, []string{cs.SuccessIcon() + " " + cs.Host(r.Host), hostout.Sanitize(r.Hostname), "rtt " + ms(r.RTTms) + "  connect " + ms(r.Connect)})
			} else {
				rows = append(rows, []string{cs.FailureIcon() + " " + cs.Host(r.Host), cs.Red(strings.ToUpper(r.Reason)), hostout.Sanitize(r.Error)})
			}
		}
		fmt.Fprint(io.Out, cs.Table("", false, nil, rows))
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
