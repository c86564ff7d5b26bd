package failover

import (
	"context"
	"errors"
	"net"
	"regexp"
	"slices"
	"strings"
	"testing"

	consulapi "github.com/hashicorp/consul/api"
	"github.com/hoctl/hoctl/pkg/exitcode"
	"github.com/hoctl/hoctl/pkg/inventory"
	"github.com/hoctl/hoctl/pkg/tasks"
	"github.com/hoctl/hoctl/pkg/tasks/taskstest"
)

const resolveInv = `hosts: {zippy: {}, c1: {}, c2: {}}
groups: {cattle: [c1, c2]}
consul: {address: "http://127.0.0.1:8500"}
replication:
  services:
    source: {host: zippy, subvolume: /persist/services}
    target: {host: c1, dir: /persist/services-standby}
nfs:
  data-services: {export: /data/services, subvolume: /persist/services, replication: services, primary: zippy, standbys: [c1], clients: cattle}
`

// untimed is a runbook's shape with its UTC timestamps blanked.
func untimed(shape []string) []string {
	out := make([]string, len(shape))
	for i, l := range shape {
		out[i] = stamp.ReplaceAllString(l, "YYYYMMDDTHHMMSSZ")
	}
	return out
}

var stamp = regexp.MustCompile(`\d{8}T\d{6}Z`)

func parseInv(t *testing.T, src string) *inventory.Inventory {
	t.Helper()
	inv, err := inventory.Parse("i.yaml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	return inv
}

// A failover's run is rebuilt from its journal as it was started: the
// old primary is the one it recorded, though the owner key has moved.
func TestFailoverRoundTrips(t *testing.T) {
	inv := parseInv(t, resolveInv)
	for _, down := range []bool{false, true} {
		owner := ownerConsul{"zippy"}
		rb, err := Resolve(context.Background(), inv, func(context.Context) (Consul, error) { return owner, nil },
			Options{To: "c1", PrimaryDown: down, AcceptLag: down})
		if err != nil {
			t.Fatal(err)
		}
		if !rb.Resumable || rb.Kind != KindFailover {
			t.Fatalf("kind %q, resumable %v", rb.Kind, rb.Resumable)
		}
		s := taskstest.Journaled(t, "run-1", rb)
		build, err := tasks.Lookup(s.Kind)
		if err != nil {
			t.Fatal(err)
		}
		// No Consul to ask: the old primary is the one the journal names.
		back, err := build(context.Background(), &tasks.Rebuild{Run: s, Inventory: inv})
		if err != nil {
			t.Fatal(err)
		}
		// Each build names the final sync's snapshot (and the aside) from
		// its own clock: across a second's edge (seen under -race in CI)
		// the names differ, and they are not what is compared here.
		want, got := untimed(taskstest.Shape(t, rb)), untimed(taskstest.Shape(t, back))
		if !slices.Equal(want, got) {
			t.Fatalf("--primary-down=%v: rebuilt failover differs:\n%s\nwant:\n%s", down, strings.Join(got, "\n"), strings.Join(want, "\n"))
		}
		if _, err := build(context.Background(), &tasks.Rebuild{Run: s, Inventory: inv, Limit: "c1"}); !errors.As(err, new(*exitcode.UsageError)) {
			t.Errorf("resume --limit of a failover: %v, want a usage error", err)
		}
	}
}

func TestResolveChecksTheCommandLine(t *testing.T) {
	inv := parseInv(t, resolveInv)
	two := parseInv(t, resolveInv+"  other: {export: /data/other, subvolume: /persist/services, replication: services, primary: zippy, standbys: [c1]}\n")
	none := parseInv(t, "hosts: {zippy: {}, c1: {}}\n")
	consulFn := func(context.Context) (Consul, error) { return ownerConsul{"zippy"}, nil }
	for _, c := range []struct {
		inv  *inventory.Inventory
		o    Options
		want string
		as   any
	}{
		{none, Options{To: "c1"}, "no nfs section", new(*inventory.Error)},
		{two, Options{To: "c1"}, "--service: choose one of the inventory's nfs services (data-services, other)", new(*exitcode.UsageError)},
		{inv, Options{Service: "nope", To: "c1"}, `no nfs service "nope"`, new(*exitcode.UsageError)},
		{inv, Options{To: "cattle"}, `--to "cattle" is not a single host`, new(*exitcode.UsageError)},
		{inv, Options{To: "c9"}, `c9`, new(*inventory.TargetError)},
		{inv, Options{To: "c2"}, "c2 is neither the primary nor a standby", new(*exitcode.UsageError)},
		{inv, Options{To: "zippy"}, "zippy already owns data-services", new(*exitcode.UsageError)},
	} {
		_, err := Resolve(context.Background(), c.inv, consulFn, c.o)
		if err == nil || !strings.Contains(err.Error(), c.want) || !errors.As(err, c.as) {
			t.Errorf("%+v: %v, want %T saying %q", c.o, err, c.as, c.want)
		}
	}
}

// Consul down when the failover is asked for: the owner key cannot be
// read, nothing was changed, so this is a refusal (exit 3), not a failed
// step (exit 1). A dry run still shows its plan.
func TestResolveRefusesWithConsulDown(t *testing.T) {
	inv := parseInv(t, resolveInv)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	_ = l.Close() // nothing listens there now: connection refused
	down := ConsulVia(func(context.Context) (*consulapi.Client, error) {
		return consulapi.NewClient(&consulapi.Config{Address: addr})
	})
	unbuilt := func(context.Context) (Consul, error) { return nil, errors.New("no route to the consul tunnel") }
	for name, fn := range map[string]func(context.Context) (Consul, error){"refused": down, "no client": unbuilt} {
		_, err := Resolve(context.Background(), inv, fn, Options{To: "c1"})
		if code := exitcode.Of(err); code != exitcode.Refused || !strings.Contains(err.Error(), "owner key") {
			t.Errorf("%s: exit %d (%v), want %d naming the owner key", name, code, err, exitcode.Refused)
		}
		if _, err := Resolve(context.Background(), inv, fn, Options{To: "c1", Plan: true}); err != nil {
			t.Errorf("%s: the dry run's plan: %v", name, err)
		}
	}
}
