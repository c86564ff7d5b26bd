package status

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/hoctl/hoctl/pkg/failover"
	"github.com/hoctl/hoctl/pkg/guard"
	"github.com/hoctl/hoctl/pkg/inventory"
	"github.com/hoctl/hoctl/pkg/sshexec"
)

// guardStale: a guard whose newest answer from Consul is older than
// this is wedged or cut off. Its blocking queries return every 5 s, so
// this is several missed answers, and the lease (15 s) has run out.
const guardStale = 2 * failover.GuardLease

// guard says whether host runs the NFS service's self-fence (hoctl guard,
// docs/failover.md#self-fencing) and whether it works: without it, a
// primary that hangs and comes back after a failover --primary-down
// serves again. It checks that the guard unit is active, that it guards
// the inventory's owner key and unit, and that Consul answered it lately
// (its state file's answered time against the host's CLOCK_BOOTTIME,
// /proc/uptime). ok is false otherwise (or when that cannot be told),
// with the reason.
func (p *Probes) guard(ctx context.Context, svc *inventory.NFSService, host string) (ok bool, why string) {
	unit := failover.GuardUnit(svc.Name)
	run, err := p.Connect(ctx, p.Inv.Host(host))
	if err != nil {
		return false, "guard unknown: " + p.short(ctx, err)
	}
	res, err := run.Run(ctx, sshexec.Cmd{Argv: []string{"systemctl", "is-active", unit}})
	state := ""
	if res != nil {
		state = strings.TrimSpace(string(res.Stdout))
	}
	switch {
	case err == nil && state == "active":
	case state == "" && err != nil:
		return false, fmt.Sprintf("guard unknown: systemctl is-active %s: %s", unit, sshexec.FirstLine(res, err))
	case state == "":
		return false, fmt.Sprintf("guard unknown: systemctl is-active %s said nothing", unit)
	default:
		if state == "inactive" {
			state = "inactive (or not installed)"
		}
		return false, fmt.Sprintf("%s is %s: nothing stops %s here if it serves without the owner key (a primary back from a hang)", unit, state, svc.Unit)
	}

	res, err = run.Run(ctx, sshexec.Cmd{Argv: []string{"systemctl", "show", "-p", "ExecStart", "--value", unit}})
	if err != nil {
		return false, fmt.Sprintf("guard unknown: systemctl show %s: %s", unit, sshexec.FirstLine(res, err))
	}
	flags := guardFlags(string(res.Stdout))
	if flags == nil {
		return false, fmt.Sprintf("%s does not run hoctl guard (ExecStart %q)", unit, strings.TrimSpace(string(res.Stdout)))
	}
	key, gunit, dir := flags["key"], flags["unit"], flags["state-dir"]
	if gunit == "" {
		gunit = inventory.DefaultNFSUnit
	}
	if dir == "" {
		dir = guard.DefaultStateDir
	}
	if key != svc.OwnerKey || gunit != svc.Unit {
		return false, fmt.Sprintf("%s guards --key %q --unit %s, but the inventory's nfs.%s has owner_key %q, unit %s: it does not guard this service", unit, key, gunit, svc.Name, svc.OwnerKey, svc.Unit)
	}

	path := guard.StatePath(dir, key)
	res, err = run.Run(ctx, sshexec.Cmd{Argv: []string{"cat", path, "/proc/uptime"}})
	if err != nil {
		return false, fmt.Sprintf("guard unknown: cat %s /proc/uptime: %s", path, sshexec.FirstLine(res, err))
	}
	answered, now, err := guardAnswered(res.Stdout)
	if err != nil {
		return false, fmt.Sprintf("guard unknown: %s: %v", path, err)
	}
	if answered == 0 || now-answered > guardStale {
		age := "never"
		if answered != 0 {
			age = (now - answered).Round(time.Second).String() + " ago"
		}
		return false, fmt.Sprintf("%s is active but Consul last answered it %s (more than %s): it is wedged or cannot reach Consul, and on the owner its lease has run out", unit, age, guardStale)
	}
	return true, ""
}

// guardFlags are the flags of the hoctl guard command in systemctl
// show's ExecStart ("{ path=... ; argv[]=hoctl guard --key K ... ; ...
// }"), nil when it is not hoctl guard.
func guardFlags(execStart string) map[string]string {
	_, argv, ok := strings.Cut(execStart, "argv[]=")
	if !ok {
		return nil
	}
	argv, _, _ = strings.Cut(argv, " ;")
	args := strings.Fields(argv)
	if len(args) < 2 || args[1] != "guard" {
		return nil
	}
	flags := map[string]string{}
	for i := 2; i < len(args); i++ {
		name, ok := strings.CutPrefix(args[i], "--")
		if !ok {
			continue
		}
		if k, v, eq := strings.Cut(name, "="); eq {
			flags[k] = v
		} else if i+1 < len(args) && !strings.HasPrefix(args[i+1], "--") {
			flags[name] = args[i+1]
			i++
		}
	}
	return flags
}

// guardAnswered reads `cat STATE /proc/uptime`: the guard's newest
// answer and the host's boottime now (both since boot).
func guardAnswered(out []byte) (answered, now time.Duration, err error) {
	dec := json.NewDecoder(bytes.NewReader(out))
	var st guard.StateFile
	if err := dec.Decode(&st); err != nil {
		return 0, 0, err
	}
	rest, _ := io.ReadAll(dec.Buffered())
	fields := strings.Fields(string(rest))
	if len(fields) == 0 {
		return 0, 0, fmt.Errorf("no /proc/uptime")
	}
	secs, err := strconv.ParseFloat(fields[0], 64)
	if err != nil {
		return 0, 0, fmt.Errorf("/proc/uptime: %w", err)
	}
	return time.Duration(st.AnsweredBoottimeNS), time.Duration(secs * float64(time.Second)), nil
}
