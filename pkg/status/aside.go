package status

import (
	"context"
	"fmt"
	"path"
	"strings"
	"time"

	"github.com/hoctl/hoctl/pkg/inventory"
	"github.com/hoctl/hoctl/pkg/sshexec"
)

// asideMark and asideTime are how failover names what it moves aside
// from a service's subvolume before promoting a copy there:
// <subvolume>.before-failover-<UTC time> (pkg/failover's promoteCmd).
const (
	asideMark = ".before-failover-"
	asideTime = "20060102T150405Z"
)

// asides lists, on host, the old copies failover moved aside from svc's
// subvolume. Failover never deletes them, and nothing else shows them:
// each is a whole old copy of the service's data holding space on the
// pool until the operator, having checked it, deletes it. live says
// whether the subvolume itself is there: on a host that does not own
// the service it is a stale writable copy a failover left behind.
func (p *Probes) asides(ctx context.Context, svc *inventory.NFSService, host string) (out []Check, live bool) {
	name := svc.Name + " old copy " + host
	run, err := p.Connect(ctx, p.Inv.Host(host))
	if err != nil {
		return []Check{{Area: "nfs", Name: name, Level: Warn, Detail: "copies moved aside by failover unknown: " + p.short(ctx, err)}}, false
	}
	// The glob stays outside the quotes; a pattern that matches nothing
	// is itself, which -d drops.
	sub := sshexec.Quote(svc.Subvolume)
	script := "[ -d " + sub + " ] && echo live; for d in " + sshexec.Quote(svc.Subvolume+asideMark) + "*; do [ -d \"$d\" ] && printf '%s\\n' \"$d\"; done; true"
	res, err := run.Run(ctx, sshexec.Cmd{Script: script})
	if err != nil {
		return []Check{{Area: "nfs", Name: name, Level: Warn, Detail: "copies moved aside by failover unknown: " + p.short(ctx, sshexec.OneLine(res, err))}}, false
	}
	for _, l := range strings.Split(string(res.Stdout), "\n") {
		l = strings.TrimSpace(l)
		if l == "live" {
			live = true
			continue
		}
		stamp, ok := strings.CutPrefix(l, svc.Subvolume+asideMark)
		if !ok || path.Dir(l) != path.Dir(svc.Subvolume) {
			continue
		}
		age := "of unknown age"
		if t, err := time.Parse(asideTime, stamp); err == nil {
			age = ago(p.Now().Sub(t)) + " ago"
		}
		out = append(out, Check{Area: "nfs", Name: name, Level: Warn,
			Detail: fmt.Sprintf("%s:%s, the old %s a failover moved aside %s: not served, never deleted by hoctl, it holds space on the pool until deleted", host, l, svc.Subvolume, age),
			Hint:   "check it, then: hoctl run " + host + " -- btrfs subvolume delete " + sshexec.Quote(l) + " (docs/failover.md#old-copies)"})
	}
	return out, live
}

// staleLive is the subvolume itself on a member that does not own the
// service: the copy it served before a failover moved the service away.
// That is every planned failover's normal state, and after an unplanned
// one it holds the writes the last replication missed: said, not a
// problem, and never with a command that deletes it. The next failover
// to it moves it aside.
func staleLive(svc *inventory.NFSService, host, owner string) Check {
	return Check{Area: "nfs", Name: svc.Name + " old copy " + host, Level: OK,
		Detail: fmt.Sprintf("%s:%s is what %s served before %s took %s over: not served; a failover back moves it aside (after --primary-down it holds the writes the last replication missed)", host, svc.Subvolume, host, owner, svc.Name)}
}

// ago is an age to the minute (to the second under one).
func ago(d time.Duration) string {
	if d < time.Minute {
		return d.Round(time.Second).String()
	}
	return d.Round(time.Minute).String()
}
