package status

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/hoctl/hoctl/pkg/inventory"
	"github.com/hoctl/hoctl/pkg/sshexec"
)

// guardHost answers systemctl is-active of the guard unit with its state
// (exit 3 unless active, as systemctl does), and nothing else.
type guardHost struct{ name, state string }

func (f *guardHost) Name() string { return f.name }
func (f *guardHost) Run(_ context.Context, c sshexec.Cmd) (*sshexec.Result, error) {
	res := &sshexec.Result{Host: f.name}
	if len(c.Argv) == 3 && c.Argv[1] == "is-active" && c.Argv[2] == "hoctl-guard-data-services.service" {
		res.Stdout = []byte(f.state + "\n")
		if f.state != "active" {
			res.ExitCode = 3
			return res, &sshexec.ExitError{Host: f.name, Code: 3}
		}
	}
	return res, nil
}

// Each NFS host's guard: all active is said on the service's line; a
// host without one is a problem of its own, with where to look.
func TestNFSGuardMissingIsAProblem(t *testing.T) {
	inv, err := inventory.Parse("i.yaml", []byte("hosts: {zippy: {}, c1: {}}\n"+
		"nfs:\n  data-services:\n    export: /data/services\n    subvolume: /persist/services\n    primary: zippy\n    standbys: [c1]\n"))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		states map[string]string
		want   []string
	}{
		{map[string]string{"zippy": "active", "c1": "active"}, []string{"ok nfs data-services: primary zippy (the inventory's; no consul section: owner and health not checked), guard active on zippy, c1"}},
		{map[string]string{"zippy": "active", "c1": "inactive"}, []string{
			"warn nfs data-services guard c1: hoctl-guard-data-services.service is inactive (or not installed): nothing stops nfs-server.service here if it serves without the owner key (a primary back from a hang) → hoctl run c1 -- systemctl status hoctl-guard-data-services.service (install: docs/failover.md#self-fencing)",
			"ok nfs data-services: primary zippy (the inventory's; no consul section: owner and health not checked)"}},
	} {
		p := &Probes{Inv: inv, Timeout: 2 * time.Second, Connect: func(_ context.Context, h *inventory.Host) (sshexec.Runner, error) {
			return &guardHost{name: h.Name, state: c.states[h.Name]}, nil
		}}
		var got []string
		for _, ch := range p.Run(context.Background()) {
			if ch.Area == "nfs" {
				got = append(got, ch.Level+" "+ch.Area+" "+ch.Name+": "+ch.Detail+map[bool]string{true: " → " + ch.Hint}[ch.Level != OK])
			}
		}
		if strings.Join(got, "\n") != strings.Join(c.want, "\n") {
			t.Errorf("states %v: got\n%s\nwant\n%s", c.states, strings.Join(got, "\n"), strings.Join(c.want, "\n"))
		}
	}
}
