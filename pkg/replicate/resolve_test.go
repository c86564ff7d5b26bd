package replicate

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/hoctl/hoctl/pkg/btrfs"
	"github.com/hoctl/hoctl/pkg/exitcode"
	"github.com/hoctl/hoctl/pkg/inventory"
	"github.com/hoctl/hoctl/pkg/retention"
	"github.com/hoctl/hoctl/pkg/tasks"
)

const twoReplications = `hosts: {zippy: {}, c1: {}, c2: {}}
groups: {cattle: [c1, c2]}
replication:
  services:
    source: {host: zippy, subvolume: /persist/services}
    target: {host: c1, dir: /persist/services-standby}
  media:
    source: {host: zippy, subvolume: /persist/media}
    target: {host: c1, dir: /persist/media-standby}
  logs:
    source: {host: c2, subvolume: /persist/logs}
    target: {host: c1, dir: /persist/logs-standby}
`

func TestResolve(t *testing.T) {
	inv, err := inventory.Parse("i.yaml", []byte(twoReplications))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name, src, dst string
		want           string // "SRC→DST" or the error
	}{
		{"services", "", "", "zippy→c1"},
		{"services", "c1", "zippy", "c1→zippy"},
		{"", "c2", "c1", "c2→c1"},
		{"", "c1", "c2", "c1→c2"},
		{"nope", "", "", `usage: no replication "nope"`},
		{"services", "c2", "c1", `usage: replication "services" runs zippy → c1 (or back, after a failover), not c2 → c1`},
		{"", "zippy", "c1", "usage: several replications run between zippy and c1"},
		{"", "zippy", "c2", "usage: no replication between zippy and c2"},
		{"", "cattle", "c1", `usage: "cattle" is not a single host`},
		{"", "c9", "c1", `target "c9"`},
	} {
		e, err := Resolve(inv, c.name, c.src, c.dst)
		got := e.SourceHost + "→" + e.TargetHost
		if err != nil {
			got = err.Error()
			if errors.As(err, new(*exitcode.UsageError)) {
				got = "usage: " + got
			}
		}
		if !strings.HasPrefix(got, c.want) {
			t.Errorf("Resolve(%q, %q, %q) = %q, want %q", c.name, c.src, c.dst, got, c.want)
		}
	}
	if err := CheckTransport("carrier-pigeon"); !errors.As(err, new(*exitcode.UsageError)) {
		t.Errorf("--transport carrier-pigeon: %v", err)
	}
	if err := CheckTransport(""); err != nil {
		t.Errorf("no --transport: %v", err)
	}
}

type kv map[string]string

func (m kv) Get(_ context.Context, key string) (string, uint64, bool, error) {
	v, ok := m[key]
	return v, 1, ok, nil
}

// After a failover recorded c1 as the source, --name sends c1 → zippy and
// the explicit old direction is refused; no record keeps the inventory's.
func TestDirected(t *testing.T) {
	inv, err := inventory.Parse("i.yaml", []byte(twoReplications))
	if err != nil {
		t.Fatal(err)
	}
	e := EndsOf(inv.Replication["services"])
	at := func(m kv) func(context.Context) (KV, error) {
		return func(context.Context) (KV, error) { return m, nil }
	}
	ctx := context.Background()
	for _, c := range []struct {
		kv       func(context.Context) (KV, error)
		explicit bool
		want     string
	}{
		{nil, true, "zippy→c1"},
		{at(kv{}), true, "zippy→c1"},
		{at(kv{DirectionKey("services"): "zippy"}), true, "zippy→c1"},
		{at(kv{DirectionKey("services"): "c1"}), false, "c1→zippy"},
		{at(kv{DirectionKey("services"): "c1"}), true, "refused: replication services runs c1 → zippy since a failover"},
		{at(kv{DirectionKey("services"): "c2"}), false, "consul kv hoctl/replication/services/source names c2, which takes no part"},
		{func(context.Context) (KV, error) { return nil, errors.New("no leader") }, false, "no leader"},
	} {
		got, err := Directed(ctx, c.kv, e, c.explicit)
		s := got.SourceHost + "→" + got.TargetHost
		if err != nil {
			s = err.Error()
			if errors.As(err, new(*tasks.RefusedError)) {
				s = "refused: " + s
			}
		}
		if !strings.HasPrefix(s, c.want) {
			t.Errorf("Directed(explicit %v) = %q, want %q", c.explicit, s, c.want)
		}
	}
}

func snap(name, uuid, received string, ro bool) btrfs.Snapshot {
	_, ts, _ := btrfs.ParseSnapshotName(name)
	return btrfs.Snapshot{Subvolume: btrfs.Subvolume{Path: "/persist/" + name, UUID: uuid, ReceivedUUID: received, ReadOnly: ro}, Time: ts}
}

// The snapshots command's columns: what both sides hold (by UUID, on
// this side), the next parent, and retention's verdict with the next
// parent protected and writable garbage left to the next run.
func TestSharedAndVerdicts(t *testing.T) {
	src := &Side{Snapshots: []btrfs.Snapshot{
		snap("services@20261126T080000Z", "s1", "", true),
		snap("services@20261126T081000Z", "s2", "", true),
		snap("services@20261126T082000Z", "s3", "", true),
	}}
	dst := &Side{Snapshots: []btrfs.Snapshot{
		snap("services@20261126T080000Z", "t1", "s1", true),
		snap("services@20261126T081000Z", "t2", "s2", true),
		snap("services@20261126T082000Z", "t3", "s3", false), // an unfinished receive
	}}
	common, next := Shared(src, dst, true)
	if next != "s2" || !common["s1"] || !common["s2"] || common["s3"] {
		t.Fatalf("source side: common %v, next %q", common, next)
	}
	common, next = Shared(dst, src, false)
	if next != "t2" || !common["t1"] || !common["t2"] || common["t3"] {
		t.Fatalf("target side: common %v, next %q", common, next)
	}
	if common, next = Shared(src, nil, true); len(common) != 0 || next != "" {
		t.Fatalf("other side unknown: common %v, next %q", common, next)
	}

	e := Ends{KeepSource: retention.Policy{Count: 1}, KeepTarget: retention.Policy{Count: 1}}
	now := time.Date(2026, 11, 26, 9, 0, 0, 0, time.UTC)
	v := Verdicts(e, false, dst, "t2", now)
	if k := v["services@20261126T080000Z"]; k.Keep {
		t.Errorf("t1, beyond keep 1 and not the next parent: %+v", k)
	}
	if k := v["services@20261126T081000Z"]; !k.Keep || !strings.Contains(k.Reason(), NewestCommon) {
		t.Errorf("t2, the next parent: %+v", k)
	}
	if k := v["services@20261126T082000Z"]; !k.Keep || !strings.HasPrefix(k.Reason(), "writable") {
		t.Errorf("t3, writable: %+v", k)
	}
}

// failingKV is a Consul that answers every read with err, counting them.
type failingKV struct {
	err   error
	reads int
}

func (f *failingKV) Get(context.Context, string) (string, uint64, bool, error) {
	f.reads++
	return "", 0, false, f.err
}

// A Consul that cannot answer is no record: the run keeps the inventory's
// (or the command line's) direction, which the direction files on the
// hosts guard, and says why Consul was not consulted. Consul is asked
// once; a reachable Consul still decides and refuses as before.
func TestConsulDirectionUnreachable(t *testing.T) {
	inv, err := inventory.Parse("i.yaml", []byte(twoReplications))
	if err != nil {
		t.Fatal(err)
	}
	e := EndsOf(inv.Replication["services"])
	ctx := context.Background()

	down := &failingKV{err: errors.New("consul: get hoctl/replication/services/source: connection refused\nmore detail")}
	d := NewConsulDirection(func(context.Context) (KV, error) { return down, nil })
	for _, explicit := range []bool{true, false} {
		got, err := Directed(ctx, d.KV(), e, explicit)
		if err != nil || got.SourceHost != "zippy" || got.TargetHost != "c1" {
			t.Fatalf("Consul down, explicit %v: %s→%s, %v", explicit, got.SourceHost, got.TargetHost, err)
		}
	}
	if down.reads != 1 {
		t.Errorf("Consul read %d times, want once", down.reads)
	}
	if n := d.NotConsulted(); !strings.HasPrefix(n, "Consul was not consulted (unreachable: consul: get hoctl/replication/services/source: connection refused): ") || strings.Contains(n, "more detail") {
		t.Errorf("NotConsulted() = %q", n)
	}

	noClient := NewConsulDirection(func(context.Context) (KV, error) { return nil, errors.New("consul.via c1: no route") })
	if got, err := Directed(ctx, noClient.KV(), e, false); err != nil || got.SourceHost != "zippy" || noClient.Unreachable() == nil {
		t.Fatalf("no Consul client: %s→%s, %v, unreachable %v", got.SourceHost, got.TargetHost, err, noClient.Unreachable())
	}

	// Reachable: the record decides, the old direction is refused.
	up := NewConsulDirection(func(context.Context) (KV, error) { return kv{DirectionKey("services"): "c1"}, nil })
	if _, err := Directed(ctx, up.KV(), e, true); !errors.As(err, new(*tasks.RefusedError)) {
		t.Fatalf("Consul names c1, zippy c1 explicit: %v", err)
	}
	if got, _ := Directed(ctx, up.KV(), e, false); got.SourceHost != "c1" || up.NotConsulted() != "" {
		t.Fatalf("Consul names c1: %s→%s, %q", got.SourceHost, got.TargetHost, up.NotConsulted())
	}

	// No Consul in the inventory: nothing to say.
	if none := NewConsulDirection(nil); none.KV() != nil || none.NotConsulted() != "" {
		t.Fatal("no Consul configured")
	}

	// Interrupted is not unreachable: the run stops.
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	slow := NewConsulDirection(func(context.Context) (KV, error) { return &failingKV{err: context.Canceled}, nil })
	if _, err := Directed(cctx, slow.KV(), e, false); !errors.Is(err, context.Canceled) {
		t.Fatalf("interrupted: %v", err)
	}
}
