package status

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	consulapi "github.com/hashicorp/consul/api"

	"github.com/hoctl/hoctl/pkg/consul"
	"github.com/hoctl/hoctl/pkg/failover"
	"github.com/hoctl/hoctl/pkg/inventory"
	"github.com/hoctl/hoctl/pkg/replicate"
)

// nfs shows who owns and serves the share, and each other member's
// replication lag: the age of its newest complete received copy.
func (p *Probes) nfs(ctx context.Context, svc *inventory.NFSService) []Check {
	c := Check{Area: "nfs", Name: svc.Name, Level: OK, Hint: "hoctl snapshots " + svc.Primary + " --name " + svc.Replication}
	// Every member's lag is read over SSH at the same time as Consul is
	// asked who owns the share: a hung Consul must not eat the probe's
	// time before the lag, which needs no Consul at all.
	rep := p.Inv.Replication[svc.Replication]
	members := append([]string{svc.Primary}, svc.Standbys...)
	f := p.probeMembers(ctx, svc, rep, members)
	owner, ownerKnown, passing, consulErr := p.nfsOwner(ctx, svc)
	parts := []string{"primary " + owner + " (owner key)"}
	switch {
	case consulErr != nil:
		// The owner and who serves are Consul's to say; the standbys'
		// lag is read over SSH and still shown below.
		c.Level, c.Hint = Warn, apiDownHint(p.Inv.Consul, "consul")
		parts = []string{fmt.Sprintf("owner and health unknown (Consul: %s); taking the inventory's primary %s", p.short(ctx, consulErr), svc.Primary)}
	case p.Consul == nil:
		parts = []string{"primary " + owner + " (the inventory's; no consul section: owner and health not checked)"}
	case len(passing) == 1 && passing[0] == owner:
		parts = append(parts, "serving on "+owner)
	case len(passing) == 0:
		c.Level = Fail
		parts = append(parts, "NOT SERVED: no passing instance in Consul")
	default:
		c.Level = Fail
		parts = append(parts, "passing on "+strings.Join(passing, ", ")+", owner "+owner)
	}
	var holder string
	if consulErr == nil && p.Consul != nil {
		holder = p.lockHolder(ctx, failover.LockScope(svc.Name))
	}
	f.wg.Wait()
	sp, sc, hint := serverChecks(svc, members, owner, ownerKnown && consulErr == nil, f.units, passing)
	parts = append(parts, sp...)
	if holder != "" {
		parts = append(parts, "cluster lock "+failover.LockScope(svc.Name)+" held by "+holder)
		hint = "a failover may be under way: wait for it to end (hoctl history), then hoctl status again"
	}
	if hint != "" && c.Level == Fail {
		c.Hint = hint
	}
	var lags []Check
	for _, m := range members {
		if lc, ok := f.lag[m]; ok && m != owner {
			lags = append(lags, lc)
		}
	}
	lags = append(lags, sc...)
	sort.Slice(lags, func(i, j int) bool { return lags[i].Name < lags[j].Name })
	// Self-fencing: said on the service's line when every host has its
	// guard, a problem of its own for each host that has not.
	if len(f.guard) == 0 {
		parts = append(parts, "guard active on "+strings.Join(members, ", "))
	}
	for _, m := range members {
		if why, bad := f.guard[m]; bad {
			lags = append(lags, Check{Area: "nfs", Name: svc.Name + " guard " + m, Level: Warn, Detail: why,
				Hint: "hoctl run " + m + " -- systemctl status " + failover.GuardUnit(svc.Name) + " (install: docs/failover.md#self-fencing)"})
		}
	}
	// The subvolume on a member that does not own the service is stale
	// only when the owner key says who does: the inventory's primary is
	// wrong after a failover. A member receiving into the subvolume's
	// own path holds copies there, not a stale one.
	asides := f.asides
	for _, m := range members {
		if f.live[m] && ownerKnown && m != owner && !receivesInto(rep, m, svc.Subvolume) {
			asides = append(asides, staleLive(svc, m, owner))
		}
	}
	sort.SliceStable(asides, func(i, j int) bool { return asides[i].Name+asides[i].Detail < asides[j].Name+asides[j].Detail })
	c.Detail = strings.Join(parts, ", ")
	return append(append([]Check{c}, lags...), asides...)
}

// memberFacts are what the NFS members answer over SSH, filled by
// probeMembers; read them after wg.Wait().
type memberFacts struct {
	wg     sync.WaitGroup
	mu     sync.Mutex
	lag    map[string]Check
	guard  map[string]string // why a member's guard is not OK
	asides []Check
	live   map[string]bool // members where the subvolume itself is
	units  map[string]serverState
}

// probeMembers starts reading every member's asides, guard, NFS unit
// and (with a replication) lag, all at once.
func (p *Probes) probeMembers(ctx context.Context, svc *inventory.NFSService, rep *inventory.Replication, members []string) *memberFacts {
	f := &memberFacts{lag: map[string]Check{}, guard: map[string]string{}, live: map[string]bool{}, units: map[string]serverState{}}
	for _, m := range members {
		f.wg.Add(1)
		go func() {
			defer f.wg.Done()
			if s, ok := p.server(ctx, svc, m); ok {
				f.mu.Lock()
				f.units[m] = s
				f.mu.Unlock()
			}
		}()
		f.wg.Add(1)
		go func() {
			defer f.wg.Done()
			cs, live := p.asides(ctx, svc, m)
			f.mu.Lock()
			f.asides = append(f.asides, cs...)
			f.live[m] = live
			f.mu.Unlock()
		}()
		f.wg.Add(1)
		go func() {
			defer f.wg.Done()
			ok, why := p.guard(ctx, svc, m)
			f.mu.Lock()
			if !ok {
				f.guard[m] = why
			}
			f.mu.Unlock()
		}()
		if rep == nil {
			continue
		}
		dir := rep.Target.Dir
		if m == rep.Source.Host {
			dir = rep.Source.SnapshotDir
		}
		f.wg.Add(1)
		go func() {
			defer f.wg.Done()
			lc := p.lag(ctx, svc, m, dir, replicate.EndsOf(rep).Base)
			f.mu.Lock()
			f.lag[m] = lc
			f.mu.Unlock()
		}()
	}
	return f
}

// nfsOwner asks Consul who owns the share (known: read from the owner
// key, not taken from the inventory) and where it passes its checks.
func (p *Probes) nfsOwner(ctx context.Context, svc *inventory.NFSService) (owner string, known bool, passing []string, consulErr error) {
	owner = svc.Primary
	if p.Consul == nil {
		return owner, false, nil, nil
	}
	client, err := p.Consul(ctx)
	if err != nil {
		return owner, false, nil, err
	}
	cl := &consul.Cluster{Client: client}
	if v, _, ok, err := cl.Get(ctx, svc.OwnerKey); err == nil && ok {
		owner, known = v, true
	}
	passing, err = cl.Passing(ctx, svc.Name)
	return owner, known, passing, err
}

// lockHolder is who holds the cluster lock scope ("" when no one does,
// or Consul cannot say), as Consul has it: like the owner key's value,
// it is made safe where it is printed (hostout.Sanitize, JSON).
func (p *Probes) lockHolder(ctx context.Context, scope string) string {
	client, err := p.Consul(ctx)
	if err != nil {
		return ""
	}
	kv, _, err := client.KV().Get(consul.LockPrefix+scope, (&consulapi.QueryOptions{}).WithContext(ctx))
	if err != nil || kv == nil || kv.Session == "" {
		return ""
	}
	return string(kv.Value)
}

// receivesInto says whether host receives rep's copies at or under sub.
func receivesInto(rep *inventory.Replication, host, sub string) bool {
	if rep == nil || host == rep.Source.Host {
		return false
	}
	d := strings.TrimRight(rep.Target.Dir, "/")
	return d == sub || strings.HasPrefix(d, sub+"/")
}

func (p *Probes) lag(ctx context.Context, svc *inventory.NFSService, host, dir, base string) Check {
	c := Check{Area: "nfs", Name: svc.Name + " standby " + host, Level: OK, Hint: "hoctl snapshots " + host}
	run, err := p.Connect(ctx, p.Inv.Host(host))
	if err != nil {
		c.Level, c.Detail = Fail, "replication lag unknown: "+p.short(ctx, err)
		return c
	}
	side, err := replicate.List(ctx, run, dir, base)
	if err != nil {
		c.Level, c.Detail = Fail, "replication lag unknown: "+p.short(ctx, err)
		return c
	}
	s, ok := side.NewestComplete()
	if !ok {
		c.Level, c.Detail = Fail, "no complete copy in "+dir
		return c
	}
	age := p.Now().Sub(s.Time).Round(time.Second)
	c.Detail = fmt.Sprintf("lag %s (newest copy %s)", age, s.Name())
	if svc.MaxLag > 0 && age > svc.MaxLag {
		c.Level = Warn
		c.Detail += fmt.Sprintf(": STALE, over max_lag %s", svc.MaxLag)
		c.Hint = "hoctl replicate --name " + svc.Replication
	}
	// What a send stream may plant in the dir it receives into stays
	// inert only on a nosuid,nodev mount (docs/security.md).
	if w := replicate.MountWarning(ctx, run, dir); w != "" {
		c.Level = Warn
		c.Detail += "; WARNING " + w
	}
	return c
}
