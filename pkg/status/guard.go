package status

import (
	"context"
	"fmt"
	"strings"

	"github.com/hoctl/hoctl/pkg/failover"
	"github.com/hoctl/hoctl/pkg/inventory"
	"github.com/hoctl/hoctl/pkg/sshexec"
)

// guard says whether host runs the NFS service's self-fence (hoctl guard,
// docs/failover.md#self-fencing): without it, a primary that hangs and
// comes back after a failover --primary-down serves again. ok is false
// when it is not active (or that cannot be told), with the reason.
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
		return true, ""
	case state == "" && err != nil:
		return false, fmt.Sprintf("guard unknown: systemctl is-active %s: %s", unit, sshexec.FirstLine(res, err))
	case state == "":
		return false, fmt.Sprintf("guard unknown: systemctl is-active %s said nothing", unit)
	}
	if state == "inactive" {
		state = "inactive (or not installed)"
	}
	return false, fmt.Sprintf("%s is %s: nothing stops %s here if it serves without the owner key (a primary back from a hang)", unit, state, svc.Unit)
}
