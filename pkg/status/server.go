package status

import (
	"context"
	"fmt"
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
// ownerHint is what to do when the owner's unit does not run: start it
// (its own checks refuse a start the owner key or the guard's lease do
// not allow).
func serverChecks(svc *inventory.NFSService, members []string, owner string, ownerKnown bool, units map[string]serverState) (parts []string, checks []Check, ownerHint string) {
	for _, m := range members {
		s, ok := units[m]
		if !ok {
			continue
		}
		running := s.active == "active" || s.active == "activating" || s.active == "reloading" || s.active == "deactivating"
		switch {
		case m == owner && !running:
			parts = append(parts, s.says(svc.Unit, m))
			ownerHint = "hoctl run " + m + " -- systemctl start " + svc.Unit + " (docs/failover.md#after-a-kill)"
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
