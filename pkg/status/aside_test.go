package status

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	consulapi "github.com/hashicorp/consul/api"
	"github.com/hoctl/hoctl/pkg/inventory"
	"github.com/hoctl/hoctl/pkg/sshexec"
)

// asideHost runs the look for old copies with sh, on a tree under root
// that stands for its /persist; other commands find nothing.
type asideHost struct {
	name, root string
}

func (f *asideHost) Name() string { return f.name }
func (f *asideHost) Run(ctx context.Context, c sshexec.Cmd) (*sshexec.Result, error) {
	res := &sshexec.Result{Host: f.name}
	if !strings.Contains(c.Script, ".before-failover-") {
		return res, nil
	}
	out, err := exec.CommandContext(ctx, "sh", "-c", strings.ReplaceAll(c.Script, "/persist/", f.root+"/persist/")).Output()
	res.Stdout = []byte(strings.ReplaceAll(string(out), f.root, ""))
	return res, err
}

// After a few failovers zippy held two old copies failover had moved
// aside, c1 one of its own and its stale writable subvolume: whole old
// copies holding space that status never showed. Each is a warning with
// its age and the command that removes it.
func TestOldCopiesFailoverLeftAreShown(t *testing.T) {
	inv, err := inventory.Parse("i.yaml", []byte("hosts: {zippy: {}, c1: {}}\nconsul: {address: http://127.0.0.1:8500}\n"+
		"replication:\n  services:\n    source: {host: zippy, subvolume: /persist/services}\n    target: {host: c1, dir: /persist/standby}\n"+
		"nfs:\n  data-services:\n    export: /data/services\n    subvolume: /persist/services\n    replication: services\n    primary: zippy\n    standbys: [c1]\n"))
	if err != nil {
		t.Fatal(err)
	}
	dirs := map[string][]string{
		"zippy": {"services", "services.before-failover-20261207T134030Z", "services.before-failover-20261207T134617Z", "services@20261207T134617Z", "standby"},
		"c1":    {"services", "services.before-failover-20261207T120000Z", "standby"},
	}
	roots := map[string]string{}
	for host, ds := range dirs {
		roots[host] = t.TempDir()
		for _, d := range ds {
			if err := os.MkdirAll(filepath.Join(roots[host], "persist", d), 0o755); err != nil {
				t.Fatal(err)
			}
		}
	}
	// A file of that name is not a copy.
	if err := os.WriteFile(filepath.Join(roots["c1"], "persist", "services.before-failover-x.txt"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	// Consul: the owner key names zippy, which passes.
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case strings.HasPrefix(r.URL.Path, "/v1/kv/"):
			_, _ = w.Write([]byte(`[{"Key":"hoctl/nfs/data-services/owner","Value":"emlwcHk=","ModifyIndex":5}]`)) // "zippy"
		case strings.HasPrefix(r.URL.Path, "/v1/health/service/"):
			_, _ = w.Write([]byte(`[{"Node":{"Node":"zippy"},"Service":{"Service":"data-services"},"Checks":[{"Status":"passing"}]}]`))
		default:
			_, _ = w.Write([]byte(`[]`))
		}
	}))
	defer srv.Close()
	now := time.Date(2026, 12, 7, 14, 50, 30, 0, time.UTC)
	p := &Probes{Inv: inv, Timeout: 2 * time.Second, Now: func() time.Time { return now },
		Connect: func(_ context.Context, h *inventory.Host) (sshexec.Runner, error) {
			return &asideHost{name: h.Name, root: roots[h.Name]}, nil
		},
		Consul: func(context.Context) (*consulapi.Client, error) {
			return consulapi.NewClient(&consulapi.Config{Address: srv.URL})
		}}
	var got []string
	for _, c := range p.Run(context.Background()) {
		if strings.Contains(c.Name, "old copy") {
			got = append(got, c.Level+" "+c.Area+" "+c.Name+": "+c.Detail+" → "+c.Hint)
		}
	}
	want := []string{
		"warn nfs data-services old copy c1: c1:/persist/services.before-failover-20261207T120000Z, the old /persist/services a failover moved aside 2h51m0s ago: not served, never deleted by hoctl, it holds space on the pool until deleted → check it, then: hoctl run c1 -- btrfs subvolume delete /persist/services.before-failover-20261207T120000Z (docs/failover.md#old-copies)",
		"warn nfs data-services old copy zippy: zippy:/persist/services.before-failover-20261207T134030Z, the old /persist/services a failover moved aside 1h10m0s ago: not served, never deleted by hoctl, it holds space on the pool until deleted → check it, then: hoctl run zippy -- btrfs subvolume delete /persist/services.before-failover-20261207T134030Z (docs/failover.md#old-copies)",
		"warn nfs data-services old copy zippy: zippy:/persist/services.before-failover-20261207T134617Z, the old /persist/services a failover moved aside 1h4m0s ago: not served, never deleted by hoctl, it holds space on the pool until deleted → check it, then: hoctl run zippy -- btrfs subvolume delete /persist/services.before-failover-20261207T134617Z (docs/failover.md#old-copies)",
		"ok nfs data-services old copy c1: c1:/persist/services is what c1 served before zippy took data-services over: not served; a failover back moves it aside (after --primary-down it holds the writes the last replication missed) → ",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}
