package cli

import (
	"context"
	"fmt"
	"io"
	"net/url"
	"os"
	"strconv"
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
	// CheckLease: only say whether the guard's lease holds (the NFS
	// unit's ExecStartPre), waiting up to CheckWait for it.
	CheckLease bool
	CheckWait  time.Duration
}

// guardLong is guard's help; it names the fence drop-in, the lease and
// the guard's unit.
const guardLong = `Meant for a systemd service on every host of an NFS service (the primary
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
    It asks systemd about UNIT every second while the lease has run out,
    and stops it whoever started it. It does not start UNIT again after
    a snapshot restore of Consul (its index going back), nor when
    someone else started UNIT since the lease stop.
It never starts UNIT otherwise. What it does goes to the journal
(journalctl -u %s). Under systemd it tells its watchdog it is alive
(Type=notify, WatchdogSec=): a guard wedged or stopped is killed and
restarted, and the next one finds the lease where this one left it.

--check-lease is UNIT's own start check (ExecStartPre): it exits 0 when
the guard's lease holds (the guard confirmed this host, and its lease,
kept in --state-dir as CLOCK_BOOTTIME, has not run out), waiting up to
--check-wait for it; otherwise 1, saying why. So nothing starts UNIT
(an operator, a deploy, the boot order) while its guard would stop it.

The token, if Consul needs one, is Consul's own CONSUL_HTTP_TOKEN or
CONSUL_HTTP_TOKEN_FILE; it needs read access to KEY only.

--dry-run logs what it would do and changes nothing.

Exit status: 0 when stopped (SIGTERM, SIGINT); 2 for a usage error.
With --check-lease: 0 the lease holds, 1 it does not, 2 usage.
Otherwise it does not exit: Consul and systemd errors are logged and
retried. See docs/failover.md#self-fencing.`

// NewCmdGuard is the NFS host's self-fence, run by systemd on the host.
func NewCmdGuard(f *Factory, runF func(*GuardOptions) error) *cobra.Command {
	opts := &GuardOptions{F: f}
	cmd := &cobra.Command{
		Use:   "guard --key KEY [--unit UNIT] [--consul URL] [--host NAME] [--check-lease]",
		Short: "On an NFS host, as a systemd service: stop the NFS unit when Consul's owner key names another host",
		Long:  fmt.Sprintf(guardLong, failover.FenceDropIn("UNIT"), failover.GuardLease, guard.DefaultStartGrace, failover.GuardUnit("SERVICE")),
		Args:  rangeArgs(0, 0),
		RunE: func(c *cobra.Command, _ []string) error {
			if runF != nil {
				return runF(opts)
			}
			return guardRun(c.Context(), opts)
		},
	}
	honoursDryRun(f, cmd, "log what the guard would do; stop and start nothing")
	guardFlags(cmd, opts)
	return cmd
}

func guardFlags(cmd *cobra.Command, opts *GuardOptions) {
	fl := cmd.Flags()
	fl.StringVar(&opts.Key, "key", "", "the Consul owner key of the NFS service (the inventory's nfs.<name>.owner_key)")
	fl.StringVar(&opts.Unit, "unit", "nfs-server.service", "the NFS server's systemd unit (nfs.<name>.unit)")
	fl.StringVar(&opts.Consul, "consul", "", "this host's Consul agent (default $CONSUL_HTTP_ADDR, else http://127.0.0.1:8500)")
	fl.StringVar(&opts.Host, "host", "", "this host's name as the owner key names it (default the hostname)")
	fl.StringVar(&opts.State, "state-dir", guard.DefaultStateDir, "where the guard keeps its lease for the next guard (a tmpfs: a reboot forgets it)")
	fl.BoolVar(&opts.CheckLease, "check-lease", false, "only check that the guard of --key holds its lease (UNIT's ExecStartPre); exit 1 if not")
	fl.DurationVar(&opts.CheckWait, "check-wait", 10*time.Second, "with --check-lease: how long to wait for the guard's first confirmation")
}

func guardRun(ctx context.Context, opts *GuardOptions) error {
	f := opts.F
	if f.IO.JSON {
		return usagef("hoctl guard logs to the journal, so --json does not apply")
	}
	if opts.Key == "" {
		return usagef("--key: the owner key is required (nfs.<name>.owner_key, such as hoctl/nfs/data-services/owner)")
	}
	if opts.CheckLease {
		return checkLease(ctx, opts)
	}
	if !strings.HasSuffix(opts.Unit, ".service") {
		return usagef("--unit %q: expected a service unit name such as nfs-server.service", opts.Unit)
	}
	addr, err := guardConsulAddr(opts.Consul, f.Getenv)
	if err != nil {
		return err
	}
	host, err := guardHost(opts.Host)
	if err != nil {
		return err
	}
	kv, err := guard.NewConsulKV(addr, guard.DefaultRequest-guard.DefaultWait)
	if err != nil {
		return usagef("--consul %q: %v", addr, err)
	}
	logf := guardLog(f.IO.ErrOut, f.Getenv("JOURNAL_STREAM") != "")
	clock := guard.NewBootClock()
	notify := guard.Notifier{Socket: f.Getenv("NOTIFY_SOCKET")}
	c := guard.Config{Key: opts.Key, Unit: opts.Unit, Host: host, DryRun: f.DryRun, Log: logf, Notify: notify.Notify}
	if usec, err := strconv.ParseInt(f.Getenv("WATCHDOG_USEC"), 10, 64); err == nil && usec > 0 {
		// systemd's advice: tell it at half the interval at least.
		c.Heartbeat = min(guard.DefaultHeartbeat, time.Duration(usec)*time.Microsecond/3)
	}
	g := guard.New(c, kv, &guard.Systemd{Host: host, Log: logf}, clock, guard.NewFileState(opts.State, opts.Key, clock))
	return g.Run(ctx)
}

// guardHost is --host, else the hostname.
func guardHost(host string) (string, error) {
	if host != "" {
		return host, nil
	}
	h, err := os.Hostname()
	if err != nil {
		return "", usagef("no --host and no hostname: %v", err)
	}
	return h, nil
}

// guardConsulAddr is Consul's address: --consul, else CONSUL_HTTP_ADDR,
// else the local agent's.
func guardConsulAddr(flag string, getenv func(string) string) (string, error) {
	addr := flag
	if addr == "" {
		addr = getenv("CONSUL_HTTP_ADDR")
	}
	if addr == "" {
		addr = "http://127.0.0.1:8500"
	}
	if !strings.Contains(addr, "://") {
		addr = "http://" + addr // as Consul's own CONSUL_HTTP_ADDR allows
	}
	if u, err := url.Parse(addr); err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
		return "", usagef("--consul %q: expected http(s)://HOST:PORT", addr)
	}
	return addr, nil
}

// guardLog writes the guard's lines: under systemd (journal) a "<N>"
// prefix gives each line its priority in the journal; elsewhere a
// timestamp.
func guardLog(w io.Writer, journal bool) func(prio int, msg string) {
	var mu sync.Mutex
	return func(prio int, msg string) {
		mu.Lock()
		defer mu.Unlock()
		if journal {
			fmt.Fprintf(w, "<%d>%s\n", prio, msg)
			return
		}
		fmt.Fprintf(w, "%s hoctl guard: %s\n", time.Now().Format(time.RFC3339), msg)
	}
}

// checkLease is the NFS unit's start check: the guard's lease, read
// from its state file, holds. A guard just (re)started writes its first
// confirmation within a moment, so it waits up to CheckWait for one.
func checkLease(ctx context.Context, opts *GuardOptions) error {
	path := guard.StatePath(opts.State, opts.Key)
	deadline := time.Now().Add(opts.CheckWait)
	for {
		why := ""
		l, err := guard.ReadLease(path)
		if err == nil {
			now, berr := guard.Boottime()
			if berr != nil {
				return berr
			}
			if why = l.Holds(now); why == "" {
				fmt.Fprintf(opts.F.IO.ErrOut, "hoctl guard --check-lease: the guard's lease on %s holds for %s more\n", opts.Key, (l.End - now).Round(time.Millisecond))
				return nil
			}
		} else {
			why = err.Error()
		}
		if !time.Now().Before(deadline) {
			return fmt.Errorf("the guard's lease on %s does not hold (%s): %s must not start (the guard's journal says more)", opts.Key, why, opts.Unit)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}
