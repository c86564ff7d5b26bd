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
	"strings"
	"sync"
	"time"

	consulapi "github.com/hashicorp/consul/api"
	nomadapi "github.com/hashicorp/nomad/api"
	"github.com/hoctl/hoctl/pkg/httpapi"
	"github.com/hoctl/hoctl/pkg/inventory"
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

func short(err error) string {
	// A probe cut short by its own bound timed out; Go's wording for it
	// means nothing to an operator.
	s := strings.ReplaceAll(err.Error(), context.DeadlineExceeded.Error(), "timed out")
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	return s
}
