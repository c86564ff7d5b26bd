package failover

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	consulapi "github.com/hashicorp/consul/api"
	"github.com/hoctl/hoctl/pkg/consul"
	"github.com/hoctl/hoctl/pkg/inventory"
	"github.com/hoctl/hoctl/pkg/replicate"
	"github.com/hoctl/hoctl/pkg/tasks"
)

func init() { tasks.Register(KindFailover, rebuild) }

// Resolve builds the failover a command line asks for: o.Service may be
// empty when the inventory has a single nfs service, and o.To must name
// one host. consulFn connects to Consul when a step first needs it.
func Resolve(ctx context.Context, inv *inventory.Inventory, consulFn func(context.Context) (Consul, error), o Options) (*tasks.Runbook, error) {
	if o.Service == "" {
		names := slices.Sorted(maps.Keys(inv.NFS))
		if len(names) == 0 {
			return nil, &inventory.Error{File: inv.Path, Msg: "no nfs section: failover moves an NFS service from its primary to a standby, so there is nothing to fail over (see hoctl help inventory, nfs)"}
		}
		if len(names) != 1 {
			return nil, inputf("--service: choose one of the inventory's nfs services (%s)", strings.Join(names, ", "))
		}
		o.Service = names[0]
	}
	if inv.NFS[o.Service] == nil {
		return nil, inputf("no nfs service %q in the inventory", o.Service)
	}
	if inv.Host(o.To) == nil {
		if _, err := inv.Select(o.To); err != nil {
			return nil, err
		}
		return nil, inputf("--to %q is not a single host", o.To)
	}
	rb, _, err := Runbook(ctx, inv, consulFn, o)
	if rb != nil {
		rb.Resumable = true // rebuild makes it again from the journal
	}
	return rb, err
}

// ConsulVia is the failover's view of the Consul client fn makes, or an
// error for an inventory without Consul (fn nil).
func ConsulVia(fn func(context.Context) (*consulapi.Client, error)) func(context.Context) (Consul, error) {
	return func(ctx context.Context) (Consul, error) {
		if fn == nil {
			return nil, errors.New("the inventory has no consul section")
		}
		c, err := fn(ctx)
		return &consul.Cluster{Client: c}, err
	}
}

// rebuild makes a journaled failover again with the run's own
// parameters: the old primary is the one the run recorded, not the owner
// key, which the run may already have moved.
func rebuild(ctx context.Context, r *tasks.Rebuild) (*tasks.Runbook, error) {
	return rebuildWith(ctx, r, ConsulVia(r.Consul))
}

// rebuildWith is rebuild with consulFn for Consul.
func rebuildWith(ctx context.Context, r *tasks.Rebuild, consulFn func(context.Context) (Consul, error)) (*tasks.Runbook, error) {
	if r.Limit != "" {
		return nil, inputf("--limit narrows runbook files; run %s is a failover, whose hosts are the service's", r.Run.ID)
	}
	p := r.Run.Params
	o := Options{Service: p["service"], From: p["from"], To: p["to"],
		PrimaryDown: p["primary_down"] == "true", AcceptLag: p["accept_lag"] == "true", Token: p["token"], Plan: r.Plan}
	rb, err := Resolve(ctx, r.Inventory, consulFn, o)
	if err != nil {
		return rb, err
	}
	fence, snapshot := stepNumbered(r.Run.Steps, "fence "), stepNumbered(r.Run.Steps, "final sync: snapshot ")
	// A fence cut short may have moved the owner key (Options.FenceCut);
	// the final sync's snapshot is named when the run inspects, from its
	// clock, so a run resumed after its snapshot step sends the one that
	// step took (Options.Snapshot). Only the journal knows either.
	cut := fence > 0 && r.Run.NextStep() == fence
	took := snapshot > 0 && r.Run.Done[snapshot] == tasks.StatusOK
	if !cut && !took {
		return rb, nil
	}
	if r.Getenv == nil {
		return nil, fmt.Errorf("run %s: no state dir to read its journal from", r.Run.ID)
	}
	recs, err := tasks.ReadJournal(tasks.StateDir(r.Getenv), r.Run.ID)
	if err != nil {
		return nil, err
	}
	if cut {
		o.FenceCut = fenceCut(recs, fence)
	}
	if took {
		if o.Snapshot, err = snapshotTaken(r, recs, snapshot); err != nil {
			return nil, err
		}
	}
	return Resolve(ctx, r.Inventory, consulFn, o)
}

// stepNumbered is the step (1-based) whose title starts with prefix, 0
// for none.
func stepNumbered(titles []string, prefix string) int {
	for i, t := range titles {
		if strings.HasPrefix(t, prefix) {
			return i + 1
		}
	}
	return 0
}

// fenceCut says whether the journal recs has fence step's before check
// passing (the key named the old primary, under the run's locks: the
// action, whose compare-and-set comes first, began) and no action of it
// that ended saying the key did not move (disarm's "the fence armed
// on"). A fence that was killed there has no action record at all.
func fenceCut(recs []tasks.Record, step int) bool {
	began := false
	for _, rec := range recs {
		if rec.Step != step {
			continue
		}
		switch {
		case rec.Type == "check" && rec.Phase == "before":
			began = rec.OK != nil && *rec.OK
		case rec.Type == "action" && strings.Contains(rec.Error, disarmedMark):
			began = false
		}
	}
	return began
}

// snapshotTaken is the final sync's new snapshot as journal recs say its
// snapshot step (step) took it.
func snapshotTaken(r *tasks.Rebuild, recs []tasks.Record, step int) (string, error) {
	svc := r.Inventory.NFS[r.Run.Params["service"]]
	ends := replicate.EndsOf(r.Inventory.Replication[svc.Replication])
	if ends.SourceHost != r.Run.Params["from"] {
		ends = ends.Reverse()
	}
	name := ""
	for _, rec := range recs {
		if rec.Type == "action" && rec.Step == step && rec.OK != nil && *rec.OK {
			name = replicate.TookSnapshot(ends, rec.Cmd)
		}
	}
	if name == "" {
		return "", fmt.Errorf("run %s: its final sync's snapshot step (%d) is done, but its journal does not say which snapshot it took, so a resumed send could not know which to send", r.Run.ID, step)
	}
	return name, nil
}
