package status

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/hoctl/hoctl/pkg/failover"
	"github.com/hoctl/hoctl/pkg/inventory"
	"github.com/hoctl/hoctl/pkg/sshexec"
)

// serverState is a member's NFS unit as systemd has it.
type serverState struct {
	active string // ActiveState: active, inactive, failed, ...
	result string // Result: success, signal, exit-code, ...
	fenced bool   // the failover's (and the guard's) fence drop-in is loaded
}

// server reads the NFS unit on host; ok is false when that cannot be
// told (the host line says why a host does not answer).
func (p *Probes) server(ctx context.Context, svc *inventory.NFSService, host string) (serverState, bool) {
	run, err := p.Connect(ctx, p.Inv.Host(host))
	if err != nil {
		return serverState{}, false
	}
	res, err := run.Run(ctx, sshexec.Cmd{Argv: []string{"systemctl", "show", "-p", "ActiveState", "-p", "Result", "-p", "DropInPaths", svc.Unit}})
	if err != nil || res == nil {
		return serverState{}, false
	}
	var s serverState
	for _, line := range strings.Split(string(res.Stdout), "\n") {
		k, v, _ := strings.Cut(strings.TrimSpace(line), "=")
		switch k {
		case "ActiveState":
			s.active = v
		case "Result":
			s.result = v
		case "DropInPaths":
			for _, d := range strings.Fields(v) {
				if d == failover.FenceDropIn(svc.Unit) {
					s.fenced = true
				}
			}
		}
	}
	return s, s.active != ""
}

func (s serverState) running() bool {
	return s.active == "active" || s.active == "activating" || s.active == "reloading" || s.active == "deactivating"
}

// says is the unit's state in words: "failed" alone is what systemd
// shows after its guard killed it, which is no fault of the server.
func (s serverState) says(unit, host string) string {
	w := unit + " " + s.active
	if s.fenced {
		w += " and fenced"
	}
	w += " on " + host
	switch {
	case s.active == "failed" && s.result == "signal":
		w += " (Result=signal: killed, as its guard kills a server systemd does not stop within 3s)"
	case s.active == "failed" && s.result != "":
		w += " (Result=" + s.result + ")"
	}
	return w
}

// serverChecks says what the members' NFS units show beside Consul's
// view: on the owner, why it does not serve; elsewhere, where each unit
// stands (stopped, and fenced as a failover or a guard leaves it), a
// unit left failed, and a unit that runs on a host the owner key does
// not name.
//
// ownerHint is what to do when the owner's unit does not run. During
// `failover --primary-down`'s lease wait the key already names the new
// primary, whose unit's own checks pass, while the old one still serves
// on its lease: a start hinted then, done as printed, gave two servers
// for 1.9 s (fourth attack review, N1). So a start is hinted only when
// every other member's unit is known not to run and none passes
// Consul's check, and after a failover that stopped part-way, which
// its resume finishes (it waits, promotes and starts); a failover under
// way holds its cluster lock, which the caller says instead.
func serverChecks(svc *inventory.NFSService, members []string, owner string, ownerKnown bool, units map[string]serverState, passing []string) (parts []string, checks []Check, ownerHint string) {
	othersQuiet := true
	for _, m := range members {
		s, ok := units[m]
		if m != owner && (!ok || s.running() || slices.Contains(passing, m)) {
			othersQuiet = false
		}
	}
	for _, m := range members {
		s, ok := units[m]
		if !ok {
			continue
		}
		running := s.running()
		switch {
		case m == owner && !running:
			parts = append(parts, s.says(svc.Unit, m))
			ownerHint = "hoctl history --failed (a failover that stopped part-way: hoctl resume RUN-ID); another host may still serve: do not start " + svc.Unit + " by hand (docs/failover.md#after-a-kill)"
			if othersQuiet {
				ownerHint = "hoctl history --failed (a failover that stopped part-way: hoctl resume RUN-ID); if none: hoctl run " + m + " -- systemctl start " + svc.Unit + " (docs/failover.md#after-a-kill)"
			}
		case m == owner:
		case !ownerKnown:
		case running:
			checks = append(checks, Check{Area: "nfs", Name: svc.Name + " server " + m, Level: Fail,
				Detail: fmt.Sprintf("%s is %s on %s, which the owner key does not name (%s owns %s): two hosts may serve", svc.Unit, s.active, m, owner, svc.Name),
				Hint:   "hoctl run " + m + " -- systemctl stop " + svc.Unit + " (docs/failover.md)"})
		case s.active == "failed":
			checks = append(checks, Check{Area: "nfs", Name: svc.Name + " server " + m, Level: Warn,
				Detail: s.says(svc.Unit, m) + ": not serving (" + owner + " owns " + svc.Name + "); systemd lists it as failed and the host as degraded until reset",
				Hint:   "hoctl run " + m + " -- systemctl reset-failed " + svc.Unit + " (docs/failover.md#after-a-kill)"})
		default:
			// Said even when all is well, so that the line shows the
			// one server and where the others stand.
			parts = append(parts, s.says(svc.Unit, m))
		}
	}
	return parts, checks, ownerHint
}
