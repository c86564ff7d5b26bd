package status

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	consulapi "github.com/hashicorp/consul/api"
	"github.com/hoctl/hoctl/pkg/inventory"
	"github.com/hoctl/hoctl/pkg/sshexec"
)

type fakeHost struct {
	name, out string
}

func (f *fakeHost) Name() string { return f.name }
func (f *fakeHost) Run(context.Context, sshexec.Cmd) (*sshexec.Result, error) {
	return &sshexec.Result{Host: f.name, Stdout: []byte(f.out)}, nil
}

func TestHostsProblemsFirstWithHints(t *testing.T) {
	inv, err := inventory.Parse("i.yaml", []byte("hosts: {a: {}, b: {}, c: {}}\n"))
	if err != nil {
		t.Fatal(err)
	}
	outs := map[string]string{
		"a": "12345.6 100.0\n0.10 0.20 0.30 1/100 42\n--\n--\n/persist 1000 500 500\n",
		"b": "60.0 1.0\n1.00 0.50 0.25 1/100 42\n--\nbackup.service\n--\n/persist 1000 850 50\n",
	}
	p := &Probes{Inv: inv, Timeout: time.Second, Connect: func(_ context.Context, h *inventory.Host) (sshexec.Runner, error) {
		if h.Name == "c" {
			return nil, errors.New("c (127.0.0.1:22): timed out: no SSH handshake within 1s")
		}
		return &fakeHost{name: h.Name, out: outs[h.Name]}, nil
	}}
	checks := p.Run(context.Background())
	var lines []string
	for _, c := range checks {
		lines = append(lines, c.Level+" "+c.Area+" "+c.Name+": "+c.Detail+" → "+c.Hint)
	}
	got := strings.Join(lines, "\n")
	want := []string{
		"fail host c: c (127.0.0.1:22): timed out: no SSH handshake within 1s → hoctl ping c",
		"warn host b: up 1m0s, load 1.00 0.50 0.25; failed units: backup.service → hoctl run b -- systemctl --failed",
		"warn disk b:/persist: 95% used (50 B free of 1000 B) → hoctl run b -- btrfs filesystem usage /persist",
		"ok host a: up 3h26m0s, load 0.10 0.20 0.30 → ",
		"ok disk a:/persist: 50% used (500 B free of 1000 B) → ",
		"skip consul consul: not configured (no consul section in the inventory): not checked → ",
		"skip nomad nomad: not configured (no nomad section in the inventory): not checked → ",
		"skip nfs nfs: not configured (no nfs section in the inventory): no NFS owner, health or standby lag checked → ",
	}
	if got != strings.Join(want, "\n") {
		t.Fatalf("got\n%s\nwant\n%s", got, strings.Join(want, "\n"))
	}
	if Problems(checks) != 3 {
		t.Fatalf("problems %d", Problems(checks))
	}
}

// A replication whose source holds a nested subvolume is a problem, named
// with the command to look deeper; one left out on purpose is not.
func TestNestedSubvolumeIsAProblem(t *testing.T) {
	const src = "hosts: {zippy: {}, c1: {}}\nreplication:\n  services:\n    source: {host: zippy, subvolume: /persist/services}\n    target: {host: c1, dir: /persist/standby}\n"
	nested := "services\n--\nID 257 gen 7 top level 256 path services/docker\n"
	for _, c := range []struct {
		exclude bool
		want    string
	}{
		{false, "fail replication services: zippy:/persist/services holds nested subvolumes no snapshot contains: docker (replicate refuses; exclude_nested leaves them out on purpose) → hoctl run zippy -- btrfs subvolume list -o /persist/services"},
		{true, "ok replication services: no nested subvolume left out of /persist/services → "},
	} {
		yaml := src
		if c.exclude {
			yaml = strings.Replace(src, "/persist/services}", "/persist/services, exclude_nested: [docker]}", 1)
		}
		inv, err := inventory.Parse("i.yaml", []byte(yaml))
		if err != nil {
			t.Fatal(err)
		}
		p := &Probes{Inv: inv, Timeout: time.Second, Connect: func(_ context.Context, h *inventory.Host) (sshexec.Runner, error) {
			return &fakeHost{name: h.Name, out: nested}, nil
		}}
		var got []string
		for _, ch := range p.Run(context.Background()) {
			if ch.Area == "replication" {
				got = append(got, ch.Level+" "+ch.Area+" "+ch.Name+": "+ch.Detail+" → "+ch.Hint)
			}
		}
		if len(got) != 1 || got[0] != c.want {
			t.Errorf("got %q\nwant %q", got, c.want)
		}
	}
}

// Consul down: the nfs check says the owner is unknown and what to try,
// and the standby's lag, read over SSH, is still there.
func TestConsulDownStillShowsReplicationLag(t *testing.T) {
	const y = `hosts: {zippy: {}, c1: {}}
consul: {address: "http://127.0.0.1:1", via: c1}
replication:
  services:
    source: {host: zippy, subvolume: /persist/services}
    target: {host: c1, dir: /persist/standby}
nfs:
  data-services: {export: /data/services, subvolume: /persist/services, replication: services, primary: zippy, standbys: [c1]}
`
	inv, err := inventory.Parse("i.yaml", []byte(y))
	if err != nil {
		t.Fatal(err)
	}
	p := &Probes{Inv: inv, Timeout: 2 * time.Second,
		Connect: func(_ context.Context, h *inventory.Host) (sshexec.Runner, error) {
			return &fakeHost{name: h.Name}, nil
		},
		// A client whose every call is refused: Consul is down.
		Consul: func(context.Context) (*consulapi.Client, error) {
			return consulapi.NewClient(&consulapi.Config{Address: "127.0.0.1:1"})
		},
	}
	byName := map[string]Check{}
	for _, c := range p.Run(context.Background()) {
		byName[c.Area+" "+c.Name] = c
	}
	nfs, ok := byName["nfs data-services"]
	if !ok || nfs.Level != Warn || !strings.Contains(nfs.Detail, "owner and health unknown") || strings.Contains(nfs.Detail, "NOT SERVED") {
		t.Errorf("nfs check: %+v", nfs)
	}
	if _, ok := byName["nfs data-services standby c1"]; !ok {
		t.Errorf("no lag check for the standby with Consul down: %v", byName)
	}
	for _, name := range []string{"consul consul", "nfs data-services"} {
		if h := byName[name].Hint; !strings.Contains(h, "hoctl run c1 --") || !strings.Contains(h, "http://127.0.0.1:1/v1/status/leader") {
			t.Errorf("%s hint %q does not help with an API that is down", name, h)
		}
	}
	if c := byName["nomad nomad"]; c.Level != Skip || !strings.Contains(c.Detail, "not configured") {
		t.Errorf("nomad: %+v", c)
	}
}

// ctxHost answers at once unless the caller's time is up.
type ctxHost struct{ name string }

func (f *ctxHost) Name() string { return f.name }
func (f *ctxHost) Run(ctx context.Context, _ sshexec.Cmd) (*sshexec.Result, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return &sshexec.Result{Host: f.name}, nil
}

// A Consul that never answers within the probe's bound must not cost the
// standby's lag, which is read over SSH alone.
func TestHungConsulStillShowsLag(t *testing.T) {
	inv, err := inventory.Parse("i.yaml", []byte("hosts: {zippy: {}, c1: {}}\nconsul: {address: http://127.0.0.1:8500}\n"+
		"replication:\n  services:\n    source: {host: zippy, subvolume: /persist/services}\n    target: {host: c1, dir: /persist/standby}\n"+
		"nfs:\n  data:\n    export: /data/services\n    subvolume: /persist/services\n    replication: services\n    primary: zippy\n    standbys: [c1]\n"))
	if err != nil {
		t.Fatal(err)
	}
	p := &Probes{Inv: inv, Timeout: 200 * time.Millisecond,
		Connect: func(_ context.Context, h *inventory.Host) (sshexec.Runner, error) { return &ctxHost{name: h.Name}, nil },
		Consul: func(ctx context.Context) (*consulapi.Client, error) {
			<-ctx.Done() // hung until the probe's bound
			return nil, fmt.Errorf("Consul API did not answer: %w", ctx.Err())
		}}
	var lag string
	for _, c := range p.Run(context.Background()) {
		if c.Name == "data standby c1" {
			lag = c.Detail
		}
		if strings.Contains(c.Detail, "context deadline exceeded") {
			t.Errorf("Go's wording in %s: %q", c.Name, c.Detail)
		}
	}
	if lag == "" || strings.Contains(lag, "unknown") {
		t.Fatalf("lag of c1: %q", lag)
	}
}

// A pool that refuses writes ("no space left on device") showed "89%
// used", OK: used/size, while df said 100% (btrfs keeps space that is
// neither used nor available). Full is df's used/(used+avail).
func TestDiskFullAsDfSaysIt(t *testing.T) {
	inv, err := inventory.Parse("i.yaml", []byte("hosts: {zippy: {}}\n"))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ df, want string }{
		{"/persist 2147483648 1932735283 0", "fail disk zippy:/persist: 100% used (0 B free of 2.0 GiB): full, writes fail (replication too)"},
		{"/persist 2147483648 1782579200 113246208", "warn disk zippy:/persist: 95% used (108.0 MiB free of 2.0 GiB)"},
	} {
		p := &Probes{Inv: inv, Timeout: time.Second, Connect: func(context.Context, *inventory.Host) (sshexec.Runner, error) {
			return &fakeHost{name: "zippy", out: "60.0 1.0\n0.10 0.20 0.30 1/100 42\n--\n--\n" + c.df + "\n"}, nil
		}}
		var got []string
		for _, ch := range p.Run(context.Background()) {
			if ch.Area == "disk" {
				got = append(got, ch.Level+" "+ch.Area+" "+ch.Name+": "+ch.Detail)
			}
		}
		if len(got) != 1 || got[0] != c.want {
			t.Errorf("df %q: %q, want %q", c.df, got, c.want)
		}
	}
}
