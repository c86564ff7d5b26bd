package cli

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/hoctl/hoctl/pkg/inventory"
	"github.com/hoctl/hoctl/pkg/sshexec"
	"github.com/hoctl/hoctl/pkg/status"
)

// StatusOptions are the inputs of `hoctl status`.
type StatusOptions struct {
	F        *Factory
	Watch    bool
	Interval time.Duration
	// Targets narrow the host probes to their union; none: the whole
	// cluster.
	Targets []string
	// Timeout bounds each probe; 0: connect_timeout + keepalive.
	Timeout time.Duration
}

// NewCmdStatus answers "is my cluster OK?".
func NewCmdStatus(f *Factory, runF func(*StatusOptions) error) *cobra.Command {
	opts := &StatusOptions{F: f}
	cmd := &cobra.Command{
		Use:   "status [TARGET...] [--watch] [--timeout D]",
		Short: "Cluster overview: hosts, Consul, Nomad, NFS and replication lag, disks; problems first",
		Long: `Probe every host (uptime, load, failed systemd units, btrfs pools), Consul
(leader, members, failure tolerance), Nomad (leader, nodes, failed
allocations, failure tolerance) and each NFS service (owner key, who passes
Consul's checks, each standby's replication lag) at once, and print one
screen: problems first, each with the command that looks deeper. Exit 0 when
everything is OK, 1 when not.

Each probe is bounded by connect_timeout + keepalive (the inventory's, the
largest of the hosts'), or by --timeout; a probe that runs into it says so,
with the value. With TARGETs (several: their union), only those hosts are
probed. See docs/status.md.`,
		RunE: func(c *cobra.Command, args []string) error {
			opts.Targets = args
			if c.Flags().Changed("timeout") && opts.Timeout <= 0 {
				return usagef("--timeout must be more than 0")
			}
			if runF != nil {
				return runF(opts)
			}
			return statusRun(c.Context(), opts)
		},
	}
	cmd.Flags().BoolVar(&opts.Watch, "watch", false, "refresh in place until interrupted")
	cmd.Flags().DurationVar(&opts.Interval, "interval", 2*time.Second, "refresh interval with --watch")
	cmd.Flags().DurationVar(&opts.Timeout, "timeout", 0, "bound of each probe (default: connect_timeout + keepalive)")
	return cmd
}

func statusRun(ctx context.Context, opts *StatusOptions) error {
	f := opts.F
	inv, err := f.Inventory(ctx)
	if err != nil {
		return err
	}
	conn, err := f.connector(inv, false)
	if err != nil {
		return err
	}
	defer func() { _ = conn.Close() }()
	p, err := statusProbes(f, inv, conn, opts)
	if err != nil {
		return err
	}
	// Redraw in place only where stdout is a terminal that can move the
	// cursor; piped, each refresh follows the last.
	redraw := opts.Watch && f.IO.CanRedrawOut()
	if redraw {
		fmt.Fprint(f.IO.Out, "\033[2J")
	}
	for {
		start := time.Now()
		checks := p.Run(ctx)
		if ctx.Err() != nil {
			// Interrupted: the probes cut short say nothing about the
			// cluster.
			return ctx.Err()
		}
		showStatus(f, inv, checks, time.Since(start), redraw)
		if !opts.Watch {
			return statusOutcome(checks)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(opts.Interval):
		}
	}
}

// statusOutcome is status's exit: 1 when a check found a problem.
func statusOutcome(checks []status.Check) error {
	if status.Problems(checks) > 0 {
		return &SilentError{Code: ExitFailed}
	}
	return nil
}

// statusProbes are the probes of the TARGETs' hosts (all without one),
// each bounded by --timeout or the hosts' own limit.
func statusProbes(f *Factory, inv *inventory.Inventory, conn Connector, opts *StatusOptions) (*status.Probes, error) {
	var hosts []*inventory.Host
	if len(opts.Targets) > 0 {
		var err error
		if hosts, err = selectUnion(inv, opts.Targets); err != nil {
			return nil, err
		}
	}
	timeout, limit := probeLimit(inv, hosts, opts.Timeout)
	p := &status.Probes{Inv: inv, Connect: conn.Runner, Timeout: timeout, Limit: limit, Hosts: hosts}
	p.Consul, p.Nomad = f.apiClients(inv, conn.Runner)
	return p, nil
}

// showStatus prints one round of checks; redraw draws it over the last.
func showStatus(f *Factory, inv *inventory.Inventory, checks []status.Check, took time.Duration, redraw bool) {
	if !redraw {
		printStatus(f, inv, checks, took)
		return
	}
	// The new screen over the old one, line by line, each line cleared to
	// its end and the rest below cleared after: no blank flash between
	// frames, nothing left of a longer one.
	var frame bytes.Buffer
	printStatusTo(f, &frame, inv, checks, took)
	fmt.Fprintf(f.IO.Out, "\033[H%s\033[J", strings.ReplaceAll(frame.String(), "\n", "\033[K\n"))
}

func printStatus(f *Factory, inv *inventory.Inventory, checks []status.Check, took time.Duration) {
	printStatusTo(f, f.IO.Out, inv, checks, took)
}

// printStatusTo shows the checks through status's printer; w is where
// the text goes (a frame buffer under --watch).
func printStatusTo(f *Factory, w io.Writer, inv *inventory.Inventory, checks []status.Check, took time.Duration) {
	newStatusPrinter(f.IO, w, inv.Path).print(checks, took)
}

// worstLevel is the summary's level: the worst of its checks', as the
// human summary's colour says.
func worstLevel(checks []status.Check) string {
	worst := status.OK
	for _, c := range checks {
		if c.Level == status.Fail || c.Level == status.Warn && worst == status.OK {
			worst = c.Level
		}
	}
	return worst
}

// probeLimit is status's bound of each probe and what to say of it: the
// flag's value, else connect_timeout + keepalive, the bound of a host that
// stops answering (DESIGN.md) and of every API call, the largest of the
// probed hosts' (every host's without TARGET).
func probeLimit(inv *inventory.Inventory, hosts []*inventory.Host, flag time.Duration) (time.Duration, string) {
	if flag > 0 {
		return flag, "--timeout " + flag.String()
	}
	if hosts == nil {
		for _, n := range inv.HostNames() {
			hosts = append(hosts, inv.Host(n))
		}
	}
	settings := []inventory.Settings{inv.Defaults}
	for _, h := range hosts {
		settings = append(settings, inv.Settings(h))
	}
	var ct, ka time.Duration
	for _, s := range settings {
		c, k := s.ConnectTimeout, s.Keepalive
		if c <= 0 {
			c = sshexec.DefaultConnectTimeout
		}
		if k <= 0 {
			k = sshexec.DefaultKeepalive
		}
		if c+k > ct+ka {
			ct, ka = c, k
		}
	}
	return ct + ka, fmt.Sprintf("connect_timeout %s + keepalive %s; --timeout sets it", ct, ka)
}

// targetsOrAll is a command's TARGETs, or "all" when it names none.
func targetsOrAll(args []string) []string {
	if len(args) == 0 {
		return []string{"all"}
	}
	return args
}

// selectUnion is the hosts any of exprs selects, each once, in inventory
// order: several TARGETs are their union.
func selectUnion(inv *inventory.Inventory, exprs []string) ([]*inventory.Host, error) {
	seen := map[string]bool{}
	for _, e := range exprs {
		hosts, err := inv.Select(e)
		if err != nil {
			return nil, err
		}
		for _, h := range hosts {
			seen[h.Name] = true
		}
	}
	var out []*inventory.Host
	for _, n := range inv.HostNames() {
		if seen[n] {
			out = append(out, inv.Host(n))
		}
	}
	return out, nil
}
