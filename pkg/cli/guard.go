package cli

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/hoctl/hoctl/pkg/failover"
	"github.com/hoctl/hoctl/pkg/guard"
	"github.com/spf13/cobra"
)

// GuardOptions are the inputs of `hoctl guard`.
type GuardOptions struct {
	F      *Factory
	Key    string
	Unit   string
	Consul string
	Host   string
	State  string
}

// NewCmdGuard is the NFS host's self-fence, run by systemd on the host.
func NewCmdGuard(f *Factory, runF func(*GuardOptions) error) *cobra.Command {
	opts := &GuardOptions{F: f}
	cmd := &cobra.Command{
		Use:   "guard --key KEY [--unit UNIT] [--consul URL] [--host NAME]",
		Short: "On an NFS host, as a systemd service: stop the NFS unit when Consul's owner key names another host",
		Long: fmt.Sprintf(`Meant for a systemd service on every host of an NFS service (the primary
and each standby), never for a workstation; it reads no inventory.

It watches Consul's owner key KEY through the host's Consul agent
(blocking queries, consistent reads, every request bounded) and lets UNIT
run only while the key names this host (--host, default the hostname):
  - the key names another host, or is deleted, while UNIT runs: it writes
    the failover's fence drop-in (%s),
    reloads systemd and stops UNIT; nothing starts it again until hoctl
    failover back to this host removes the drop-in.
  - Consul has not confirmed for %s (the lease) that the key names this
    host, while UNIT runs (Consul or the network is down, the host was
    frozen): it stops UNIT, and starts it again only when Consul names
    this host at the key's ModifyIndex it last confirmed (a key written
    since is for a failover or the operator). A guard just started that
    cannot confirm within %s stops a running UNIT.
It never starts UNIT otherwise. What it does goes to the journal
(journalctl -u %s).

The token, if Consul needs one, is Consul's own CONSUL_HTTP_TOKEN or
CONSUL_HTTP_TOKEN_FILE; it needs read access to KEY only.

--dry-run logs what it would do and changes nothing.

Exit status: 0 when stopped (SIGTERM, SIGINT); 2 for a usage error.
Otherwise it does not exit: Consul and systemd errors are logged and
retried. See docs/failover.md#self-fencing.`, failover.FenceDropIn("UNIT"), failover.GuardLease, guard.DefaultStartGrace, failover.GuardUnit("SERVICE")),
		Args: rangeArgs(0, 0),
		RunE: func(c *cobra.Command, _ []string) error {
			if runF != nil {
				return runF(opts)
			}
			return guardRun(c.Context(), opts)
		},
	}
	honoursDryRun(f, cmd, "log what the guard would do; stop and start nothing")
	fl := cmd.Flags()
	fl.StringVar(&opts.Key, "key", "", "the Consul owner key of the NFS service (the inventory's nfs.<name>.owner_key)")
	fl.StringVar(&opts.Unit, "unit", "nfs-server.service", "the NFS server's systemd unit (nfs.<name>.unit)")
	fl.StringVar(&opts.Consul, "consul", "", "this host's Consul agent (default $CONSUL_HTTP_ADDR, else http://127.0.0.1:8500)")
	fl.StringVar(&opts.Host, "host", "", "this host's name as the owner key names it (default the hostname)")
	fl.StringVar(&opts.State, "state-dir", guard.DefaultStateDir, "where the guard keeps its lease for the next guard (a tmpfs: a reboot forgets it)")
	return cmd
}

func guardRun(ctx context.Context, opts *GuardOptions) error {
	f := opts.F
	if f.IO.JSON {
		return usagef("hoctl guard logs to the journal, so --json does not apply")
	}
	if opts.Key == "" {
		return usagef("--key: the owner key is required (nfs.<name>.owner_key, such as hoctl/nfs/data-services/owner)")
	}
	if !strings.HasSuffix(opts.Unit, ".service") {
		return usagef("--unit %q: expected a service unit name such as nfs-server.service", opts.Unit)
	}
	addr := opts.Consul
	if addr == "" {
		addr = f.Getenv("CONSUL_HTTP_ADDR")
	}
	if addr == "" {
		addr = "http://127.0.0.1:8500"
	}
	if !strings.Contains(addr, "://") {
		addr = "http://" + addr // as Consul's own CONSUL_HTTP_ADDR allows
	}
	if u, err := url.Parse(addr); err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
		return usagef("--consul %q: expected http(s)://HOST:PORT", addr)
	}
	host := opts.Host
	if host == "" {
		h, err := os.Hostname()
		if err != nil {
			return usagef("no --host and no hostname: %v", err)
		}
		host = h
	}
	kv, err := guard.NewConsulKV(addr, guard.DefaultRequest-guard.DefaultWait)
	if err != nil {
		return usagef("--consul %q: %v", addr, err)
	}
	// Under systemd (JOURNAL_STREAM set) a "<N>" prefix gives each line
	// its priority in the journal; elsewhere a timestamp.
	journal := f.Getenv("JOURNAL_STREAM") != ""
	var mu sync.Mutex
	logf := func(prio int, msg string) {
		mu.Lock()
		defer mu.Unlock()
		if journal {
			fmt.Fprintf(f.IO.ErrOut, "<%d>%s\n", prio, msg)
			return
		}
		fmt.Fprintf(f.IO.ErrOut, "%s hoctl guard: %s\n", time.Now().Format(time.RFC3339), msg)
	}
	g := guard.New(guard.Config{Key: opts.Key, Unit: opts.Unit, Host: host, DryRun: f.DryRun, Log: logf}, kv, &guard.Systemd{Host: host}, nil, guard.NewFileState(opts.State, opts.Key))
	return g.Run(ctx)
}
