// Package status answers "is my cluster OK?": every host, Consul, Nomad,
// the NFS services and their replication lag, and the btrfs pools,
// probed in parallel, each with its own deadline, so that a dead host or
// API shows as such instead of slowing the whole.
package status

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	consulapi "github.com/hashicorp/consul/api"
	nomadapi "github.com/hashicorp/nomad/api"
	"github.com/hoctl/hoctl/pkg/consul"
	"github.com/hoctl/hoctl/pkg/failover"
	"github.com/hoctl/hoctl/pkg/httpapi"
	"github.com/hoctl/hoctl/pkg/inventory"
	"github.com/hoctl/hoctl/pkg/nomad"
	"github.com/hoctl/hoctl/pkg/replicate"
	"github.com/hoctl/hoctl/pkg/sshexec"
)

// Levels of a check, worst first.
const (
	Fail = "fail"
	Warn = "warn"
	OK   = "ok"
	// Skip is a part of the cluster the inventory does not describe, so
	// it was not checked: said, so that silence is never taken for OK.
	Skip = "skip"
)

// Check is one line of the status.
type Check struct {
	Area   string `json:"area"` // host, consul, nomad, nfs, disk
	Name   string `json:"name"`
	Level  string `json:"level"`
	Detail string `json:"detail"`
	Hint   string `json:"hint,omitempty"` // the command that looks deeper
}

// Probes are the status's inputs.
type Probes struct {
	Inv     *inventory.Inventory
	Connect func(ctx context.Context, h *inventory.Host) (sshexec.Runner, error)
	Consul  func(ctx context.Context) (*consulapi.Client, error) // nil: no consul section
	Nomad   func(ctx context.Context) (*nomadapi.Client, error)  // nil: no nomad section
	// Timeout bounds each probe (a host: its connection and command; an
	// API: its calls). Limit says where that value comes from, for the
	// check of a probe that runs into it ("connect_timeout 2s + keepalive
	// 5s; --timeout sets it"): a slow host must not read as a dead one
	// without saying which limit passed.
	Timeout time.Duration
	Limit   string
	// Hosts, when not nil, are the only hosts probed (status TARGET); the
	// cluster-wide checks (Consul, Nomad, NFS, replication) are then
	// listed as not checked.
	Hosts []*inventory.Host
	Now   func() time.Time
}

// errProbeLimit is the cause of a probe's context ending at Timeout.
var errProbeLimit = errors.New("status probe limit")

// short is err for a check's detail, on one line. An error of a probe
// that ran into its own limit is that limit: its value, where it comes
// from and how to change it, not Go's "context deadline exceeded".
func (p *Probes) short(ctx context.Context, err error) string {
	if ctx.Err() != nil && errors.Is(context.Cause(ctx), errProbeLimit) {
		limit := fmt.Sprintf("no answer within %s, status's limit per probe (%s)", p.Timeout, p.Limit)
		// An API's own error says which address did not answer.
		var api *httpapi.Error
		if errors.As(err, &api) {
			return api.Where() + ": " + limit
		}
		return limit
	}
	return short(err)
}

// Run probes everything at once and returns the checks, problems first.
func (p *Probes) Run(ctx context.Context) []Check {
	if p.Now == nil {
		p.Now = time.Now
	}
	var mu sync.Mutex
	var out []Check
	add := func(cs ...Check) {
		mu.Lock()
		out = append(out, cs...)
		mu.Unlock()
	}
	var wg sync.WaitGroup
	run := func(f func(ctx context.Context) []Check) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeoutCause(ctx, p.Timeout, errProbeLimit)
			defer cancel()
			add(f(ctx)...)
		}()
	}
	hosts := p.Hosts
	if hosts == nil {
		for _, name := range p.Inv.HostNames() {
			hosts = append(hosts, p.Inv.Host(name))
		}
	}
	for _, h := range hosts {
		run(func(ctx context.Context) []Check { return p.host(ctx, h) })
	}
	if p.Hosts != nil {
		add(Check{Area: "cluster", Name: "consul, nomad, nfs, replication", Level: Skip, Detail: "not checked: status TARGET probes those hosts only (hoctl status without TARGET checks the whole cluster)"})
		wg.Wait()
		return sortChecks(out)
	}
	if p.Consul != nil {
		run(p.consul)
	} else {
		add(Check{Area: "consul", Name: "consul", Level: Skip, Detail: "not configured (no consul section in the inventory): not checked"})
	}
	if p.Nomad != nil {
		run(p.nomad)
	} else {
		add(Check{Area: "nomad", Name: "nomad", Level: Skip, Detail: "not configured (no nomad section in the inventory): not checked"})
	}
	if len(p.Inv.NFS) == 0 {
		add(Check{Area: "nfs", Name: "nfs", Level: Skip, Detail: "not configured (no nfs section in the inventory): no NFS owner, health or standby lag checked"})
	}
	for _, name := range sortedNFS(p.Inv) {
		svc := p.Inv.NFS[name]
		run(func(ctx context.Context) []Check { return p.nfs(ctx, svc) })
	}
	for _, name := range sortedReplications(p.Inv) {
		rep := p.Inv.Replication[name]
		run(func(ctx context.Context) []Check { return p.nested(ctx, rep) })
	}
	wg.Wait()
	return sortChecks(out)
}

// sortChecks puts problems first, worst first, then by area and name.
func sortChecks(out []Check) []Check {
	rank := map[string]int{Fail: 0, Warn: 1, OK: 2, Skip: 3}
	area := map[string]int{"host": 0, "consul": 1, "nomad": 2, "nfs": 3, "replication": 4, "disk": 5}
	sort.SliceStable(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if rank[a.Level] != rank[b.Level] {
			return rank[a.Level] < rank[b.Level]
		}
		if area[a.Area] != area[b.Area] {
			return area[a.Area] < area[b.Area]
		}
		return a.Name < b.Name
	})
	return out
}

// Problems counts the checks that are not OK.
func Problems(cs []Check) int {
	n := 0
	for _, c := range cs {
		if c.Level != OK && c.Level != Skip {
			n++
		}
	}
	return n
}

func sortedNFS(inv *inventory.Inventory) []string {
	var names []string
	for n := range inv.NFS {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

func sortedReplications(inv *inventory.Inventory) []string {
	var names []string
	for n := range inv.Replication {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// nested reports subvolumes nested in a replication's source that no
// snapshot contains: their data never reaches the standby, and replicate
// refuses to run until they are dealt with.
func (p *Probes) nested(ctx context.Context, rep *inventory.Replication) []Check {
	e := replicate.EndsOf(rep)
	c := Check{Area: "replication", Name: rep.Name, Level: OK, Detail: "no nested subvolume left out of " + e.Subvolume}
	run, err := p.Connect(ctx, p.Inv.Host(e.SourceHost))
	if err != nil {
		c.Level, c.Detail = Fail, "nested subvolumes unknown: "+p.short(ctx, err)
		return []Check{c}
	}
	nested, err := replicate.Nested(ctx, run, e)
	switch {
	case err != nil:
		c.Level, c.Detail = Fail, "nested subvolumes unknown: "+p.short(ctx, err)
	case len(nested) > 0:
		c.Level = Fail
		c.Detail = fmt.Sprintf("%s:%s holds nested subvolumes no snapshot contains: %s (replicate refuses; exclude_nested leaves them out on purpose)", e.SourceHost, e.Subvolume, strings.Join(nested, ", "))
		c.Hint = "hoctl run " + e.SourceHost + " -- btrfs subvolume list -o " + e.Subvolume
	}
	return []Check{c}
}

// hostScript is one round trip: uptime, load, failed units, btrfs pools.
const hostScript = `cat /proc/uptime /proc/loadavg; echo --; systemctl --failed --plain --no-legend 2>/dev/null | awk '{print $1}'; echo --; df -B1 --output=target,size,used,avail -t btrfs 2>/dev/null | tail -n +2`

func (p *Probes) host(ctx context.Context, h *inventory.Host) []Check {
	hint := "hoctl ping " + h.Name
	run, err := p.Connect(ctx, h)
	if err != nil {
		return []Check{{Area: "host", Name: h.Name, Level: Fail, Detail: p.short(ctx, err), Hint: hint}}
	}
	res, err := run.Run(ctx, sshexec.Cmd{Script: hostScript})
	if err != nil {
		return []Check{{Area: "host", Name: h.Name, Level: Fail, Detail: p.short(ctx, err), Hint: hint}}
	}
	parts := strings.Split(string(res.Stdout), "--\n")
	for len(parts) < 3 {
		parts = append(parts, "")
	}
	f := strings.Fields(parts[0])
	c := Check{Area: "host", Name: h.Name, Level: OK}
	if len(f) >= 5 {
		up, _ := strconv.ParseFloat(f[0], 64)
		c.Detail = fmt.Sprintf("up %s, load %s %s %s", (time.Duration(up) * time.Second).Round(time.Minute), f[2], f[3], f[4])
	}
	if failed := strings.Fields(parts[1]); len(failed) > 0 {
		c.Level, c.Hint = Warn, "hoctl run "+h.Name+" -- systemctl --failed"
		c.Detail += "; failed units: " + strings.Join(failed, ", ")
	}
	out := []Check{c}
	for _, l := range strings.Split(strings.TrimSpace(parts[2]), "\n") {
		if dc, ok := diskCheck(h.Name, strings.Fields(l)); ok {
			out = append(out, dc)
		}
	}
	return out
}

// diskCheck is one pool from df's target, size, used and avail. Full is
// what df says, used/(used+avail): btrfs keeps space that is neither
// (metadata, reserves), so used/size looks emptier than a pool is, and a
// pool where writes fail with "no space" showed 89%.
func diskCheck(host string, d []string) (Check, bool) {
	if len(d) != 4 {
		return Check{}, false
	}
	size, _ := strconv.ParseInt(d[1], 10, 64)
	used, _ := strconv.ParseInt(d[2], 10, 64)
	avail, _ := strconv.ParseInt(d[3], 10, 64)
	if size <= 0 || used < 0 || avail < 0 || used+avail == 0 {
		return Check{}, false
	}
	pct := (used*100 + used + avail - 1) / (used + avail) // rounded up, as df
	c := Check{Area: "disk", Name: host + ":" + d[0], Level: OK,
		Detail: fmt.Sprintf("%d%% used (%s free of %s)", pct, replicate.BytesText(avail), replicate.BytesText(size))}
	switch {
	case pct >= 100:
		c.Level, c.Hint = Fail, "hoctl run "+host+" -- btrfs filesystem usage "+d[0]
		c.Detail += ": full, writes fail (replication too)"
	case pct >= 90:
		c.Level, c.Hint = Warn, "hoctl run "+host+" -- btrfs filesystem usage "+d[0]
	}
	return c, true
}

func short(err error) string {
	// A probe cut short by its own bound timed out; Go's wording for it
	// means nothing to an operator.
	s := strings.ReplaceAll(err.Error(), context.DeadlineExceeded.Error(), "timed out")
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	return s
}

func (p *Probes) consul(ctx context.Context) []Check {
	c := Check{Area: "consul", Name: "consul", Level: OK, Hint: "consul operator autopilot state"}
	client, err := p.Consul(ctx)
	if err != nil {
		c.Level, c.Detail, c.Hint = Fail, p.short(ctx, err), apiDownHint(p.Inv.Consul, "consul")
		return []Check{c}
	}
	ctx, answered := httpapi.RecordAnswer(ctx)
	cl := &consul.Cluster{Client: client}
	leader, err := cl.Leader(ctx)
	if err != nil {
		c.Level, c.Detail, c.Hint = Fail, p.short(ctx, err), apiDownHint(p.Inv.Consul, "consul")
		return []Check{c}
	}
	var parts []string
	parts = append(parts, "leader "+leader+answeredBy(p.Inv.Consul, answered()))
	// Agent().Members takes no context; the raw call to its endpoint does.
	var members []*consulapi.AgentMember
	_, err = client.Raw().Query("/v1/agent/members", &members, (&consulapi.QueryOptions{}).WithContext(ctx))
	if err != nil {
		c.Level = Warn
		parts = append(parts, "members: "+p.short(ctx, httpapi.Clean(err, "")))
	} else {
		var failed []string
		for _, m := range members {
			if m.Status != 1 {
				failed = append(failed, m.Name)
			}
		}
		parts = append(parts, fmt.Sprintf("%d members, %d alive", len(members), len(members)-len(failed)))
		if len(failed) > 0 {
			c.Level = Warn
			parts = append(parts, "not alive: "+strings.Join(failed, ", "))
		}
	}
	health, err := client.Operator().AutopilotServerHealth((&consulapi.QueryOptions{}).WithContext(ctx))
	switch {
	case err != nil && health == nil:
		c.Level = Fail
		parts = append(parts, "autopilot: "+p.short(ctx, httpapi.Clean(err, "")))
	default:
		parts = append(parts, fmt.Sprintf("failure tolerance %d", health.FailureTolerance))
		if !health.Healthy || health.FailureTolerance < 1 {
			c.Level = Fail
			parts = append(parts, "CANNOT LOSE A SERVER")
		}
	}
	c.Detail = strings.Join(parts, ", ")
	return []Check{c}
}

func (p *Probes) nomad(ctx context.Context) []Check {
	c := Check{Area: "nomad", Name: "nomad", Level: OK, Hint: "nomad node status; nomad job status"}
	client, err := p.Nomad(ctx)
	if err != nil {
		c.Level, c.Detail, c.Hint = Fail, p.short(ctx, err), apiDownHint(p.Inv.Nomad, "nomad")
		return []Check{c}
	}
	ctx, answered := httpapi.RecordAnswer(ctx)
	q := (&nomadapi.QueryOptions{}).WithContext(ctx)
	// Status().Leader takes no context; the raw call to its endpoint does.
	var leader string
	_, err = client.Raw().Query("/v1/status/leader", &leader, q)
	if err != nil || leader == "" {
		c.Level, c.Detail = Fail, "no leader"
		if err != nil {
			c.Detail = p.short(ctx, httpapi.Clean(err, ""))
			c.Hint = apiDownHint(p.Inv.Nomad, "nomad")
		}
		return []Check{c}
	}
	parts := []string{"leader " + leader + answeredBy(p.Inv.Nomad, answered())}
	nodes, _, err := client.Nodes().List(q)
	if err != nil {
		c.Level = Warn
		parts = append(parts, "nodes: "+p.short(ctx, httpapi.Clean(err, "")))
	} else {
		var ready, draining, inelig int
		var down []string
		for _, n := range nodes {
			switch {
			case n.Status != "ready":
				down = append(down, n.Name)
			case n.Drain:
				draining++
			case n.SchedulingEligibility != "eligible":
				inelig++
			default:
				ready++
			}
		}
		parts = append(parts, fmt.Sprintf("nodes %d ready, %d draining, %d ineligible", ready, draining, inelig))
		if len(down) > 0 {
			c.Level = Fail
			parts = append(parts, "down: "+strings.Join(down, ", "))
		} else if draining+inelig > 0 {
			c.Level = Warn
		}
	}
	allocs, _, err := client.Allocations().List(q)
	if err == nil {
		var failed []string
		for _, a := range allocs {
			if a.ClientStatus == "failed" {
				failed = append(failed, a.JobID+"/"+a.TaskGroup)
			}
		}
		parts = append(parts, fmt.Sprintf("%d failed allocations", len(failed)))
		if len(failed) > 0 {
			c.Level = Warn
			parts[len(parts)-1] += " (" + strings.Join(failed, ", ") + ")"
		}
	}
	if failed, err := failedDeployments(client, q); err == nil && len(failed) > 0 {
		c.Level = Warn
		parts = append(parts, "failed deployments: "+strings.Join(failed, ", "))
		c.Hint = "nomad job status " + strings.SplitN(failed[0], " ", 2)[0]
	}
	health, err := nomad.AutopilotHealth(ctx, client)
	switch {
	case err != nil:
		c.Level = Fail
		parts = append(parts, "autopilot: unknown ("+p.short(ctx, httpapi.Clean(err, ""))+")")
	case health.FailureTolerance < 1 || !health.Healthy:
		c.Level = Fail
		parts = append(parts, fmt.Sprintf("failure tolerance %d: CANNOT LOSE A SERVER", health.FailureTolerance))
		if bad := nomad.UnhealthyServers(health); len(bad) > 0 {
			parts = append(parts, "unhealthy: "+strings.Join(bad, ", "))
		}
		c.Hint = "nomad operator autopilot health"
	default:
		parts = append(parts, fmt.Sprintf("failure tolerance %d", health.FailureTolerance))
	}
	c.Detail = strings.Join(parts, ", ")
	return []Check{c}
}

// failedDeployments lists the running jobs whose latest deployment
// failed: they run, but Nomad found them unhealthy (a check that never
// passed, tasks that did not stay up), which failed allocations alone do
// not show. A later deployment (the fix) supersedes a failed one.
func failedDeployments(client *nomadapi.Client, q *nomadapi.QueryOptions) ([]string, error) {
	jobs, _, err := client.Jobs().List(q)
	if err != nil {
		return nil, err
	}
	live := map[string]uint64{} // job ID -> create index, of jobs not stopped
	for _, j := range jobs {
		if !j.Stop {
			live[j.ID] = j.CreateIndex
		}
	}
	ds, _, err := client.Deployments().List(q)
	if err != nil {
		return nil, err
	}
	latest := map[string]*nomadapi.Deployment{}
	for _, d := range ds {
		if cur := latest[d.JobID]; cur == nil || d.CreateIndex > cur.CreateIndex {
			latest[d.JobID] = d
		}
	}
	var out []string
	for id, d := range latest {
		if created, ok := live[id]; ok && d.JobCreateIndex == created && d.Status == nomadapi.DeploymentStatusFailed {
			out = append(out, fmt.Sprintf("%s (version %d: %s)", id, d.JobVersion, d.StatusDescription))
		}
	}
	sort.Strings(out)
	return out, nil
}

// answeredBy names the address that answered when the section lists
// several: which server hoctl heard the cluster from.
func answeredBy(api *inventory.API, addr string) string {
	if api == nil || len(api.URLs()) < 2 || addr == "" {
		return ""
	}
	return " (asked at " + addr + ")"
}

// apiDownHint is what to try when an API does not answer: its leader
// endpoint, from the via host when it is reached through one.
func apiDownHint(api *inventory.API, unit string) string {
	if api == nil {
		return ""
	}
	probe := "curl -sS " + strings.TrimRight(api.URLs()[0], "/") + "/v1/status/leader"
	if api.Via != "" {
		return fmt.Sprintf("hoctl run %s -- 'systemctl is-active %s; %s'", api.Via, unit, probe)
	}
	return probe + "; systemctl status " + unit + " (on the server)"
}

// nfs shows who owns and serves the share, and each other member's
// replication lag: the age of its newest complete received copy.
func (p *Probes) nfs(ctx context.Context, svc *inventory.NFSService) []Check {
	c := Check{Area: "nfs", Name: svc.Name, Level: OK, Hint: "hoctl snapshots " + svc.Primary + " --name " + svc.Replication}
	// Every member's lag is read over SSH at the same time as Consul is
	// asked who owns the share: a hung Consul must not eat the probe's
	// time before the lag, which needs no Consul at all.
	rep := p.Inv.Replication[svc.Replication]
	members := append([]string{svc.Primary}, svc.Standbys...)
	var lagMu sync.Mutex
	var wg sync.WaitGroup
	lagOf := map[string]Check{}
	guardOf := map[string]string{} // why a member's guard is not OK
	var asides []Check
	liveOn := map[string]bool{} // members where the subvolume itself is
	for _, m := range members {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cs, live := p.asides(ctx, svc, m)
			lagMu.Lock()
			asides = append(asides, cs...)
			liveOn[m] = live
			lagMu.Unlock()
		}()
		wg.Add(1)
		go func() {
			defer wg.Done()
			ok, why := p.guard(ctx, svc, m)
			lagMu.Lock()
			if !ok {
				guardOf[m] = why
			}
			lagMu.Unlock()
		}()
		if rep == nil {
			continue
		}
		dir := rep.Target.Dir
		if m == rep.Source.Host {
			dir = rep.Source.SnapshotDir
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			lc := p.lag(ctx, svc, m, dir, replicate.EndsOf(rep).Base)
			lagMu.Lock()
			lagOf[m] = lc
			lagMu.Unlock()
		}()
	}
	owner := svc.Primary
	ownerKnown := false // read from the owner key, not taken from the inventory
	var passing []string
	var consulErr error
	if p.Consul != nil {
		client, err := p.Consul(ctx)
		if err == nil {
			cl := &consul.Cluster{Client: client}
			if v, _, ok, err := cl.Get(ctx, svc.OwnerKey); err == nil && ok {
				owner, ownerKnown = v, true
			}
			passing, err = cl.Passing(ctx, svc.Name)
			consulErr = err
		} else {
			consulErr = err
		}
	}
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
	wg.Wait()
	var lags []Check
	for _, m := range members {
		if lc, ok := lagOf[m]; ok && m != owner {
			lags = append(lags, lc)
		}
	}
	sort.Slice(lags, func(i, j int) bool { return lags[i].Name < lags[j].Name })
	// Self-fencing: said on the service's line when every host has its
	// guard, a problem of its own for each host that has not.
	if len(guardOf) == 0 {
		parts = append(parts, "guard active on "+strings.Join(members, ", "))
	}
	for _, m := range members {
		if why, bad := guardOf[m]; bad {
			lags = append(lags, Check{Area: "nfs", Name: svc.Name + " guard " + m, Level: Warn, Detail: why,
				Hint: "hoctl run " + m + " -- systemctl status " + failover.GuardUnit(svc.Name) + " (install: docs/failover.md#self-fencing)"})
		}
	}
	// The subvolume on a member that does not own the service is stale
	// only when the owner key says who does: the inventory's primary is
	// wrong after a failover. A member receiving into the subvolume's
	// own path holds copies there, not a stale one.
	for _, m := range members {
		if liveOn[m] && ownerKnown && m != owner && !receivesInto(rep, m, svc.Subvolume) {
			asides = append(asides, staleLive(svc, m, owner))
		}
	}
	sort.SliceStable(asides, func(i, j int) bool { return asides[i].Name+asides[i].Detail < asides[j].Name+asides[j].Detail })
	c.Detail = strings.Join(parts, ", ")
	return append(append([]Check{c}, lags...), asides...)
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
