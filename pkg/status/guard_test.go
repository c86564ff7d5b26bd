package status

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/hoctl/hoctl/pkg/inventory"
	"github.com/hoctl/hoctl/pkg/sshexec"
)

// guardHost answers systemctl is-active of the guard unit with its state
// (exit 3 unless active, as systemctl does), systemctl show with its
// ExecStart (the inventory's key unless key is set), and cat of its
// state file and /proc/uptime (answered age ago, 3 s unless set). A
// script (the look for old copies failover moved aside) finds none.
type guardHost struct {
	name, state, key string
	age              time.Duration
}

func (f *guardHost) Name() string { return f.name }
func (f *guardHost) Run(_ context.Context, c sshexec.Cmd) (*sshexec.Result, error) {
	res := &sshexec.Result{Host: f.name}
	argv := strings.Join(c.Argv, " ")
	if c.Script != "" {
		return res, nil
	}
	switch argv {
	case "systemctl is-active hoctl-guard-data-services.service":
		res.Stdout = []byte(f.state + "\n")
		if f.state != "active" {
			res.ExitCode = 3
			return res, &sshexec.ExitError{Host: f.name, Code: 3}
		}
	case "systemctl show -p ExecStart --value hoctl-guard-data-services.service":
		key := f.key
		if key == "" {
			key = "hoctl/nfs/data-services/owner"
		}
		res.Stdout = []byte("{ path=/usr/local/bin/hoctl ; argv[]=/usr/local/bin/hoctl guard --consul http://127.0.0.1:8500 --key " + key + " --unit nfs-server.service ; ignore_errors=no ; start_time=[n/a] ; stop_time=[n/a] ; pid=0 ; code=(null) ; status=0/0 }\n")
	case "cat /run/hoctl-guard/hoctl_nfs_data-services_owner.json /proc/uptime":
		age := f.age
		if age == 0 {
			age = 3 * time.Second
		}
		now := 1000 * time.Second
		res.Stdout = []byte(fmt.Sprintf(`{"lease_end_boottime_ns":%d,"confirmed_boottime_ns":0,"modify_index":0,"lease_stopped":false,"consul_index":7,"answered_boottime_ns":%d}%.2f 3000.00`+"\n", now, now-age, now.Seconds()))
	default:
		res.ExitCode = 1
		return res, &sshexec.ExitError{Host: f.name, Code: 1}
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
		key    string        // c1's guard's --key
		age    time.Duration // of c1's guard's newest answer
		want   []string
	}{
		{map[string]string{"zippy": "active", "c1": "active"}, "", 0, []string{"ok nfs data-services: primary zippy (the inventory's; no consul section: owner and health not checked), guard active on zippy, c1"}},
		// Attack F6: a guard of another key, a guard Consul has not answered
		// for a minute (wedged, cut off).
		{map[string]string{"zippy": "active", "c1": "active"}, "hoctl/nfs/other/owner", 0, []string{
			`warn nfs data-services guard c1: hoctl-guard-data-services.service guards --key "hoctl/nfs/other/owner" --unit nfs-server.service, but the inventory's nfs.data-services has owner_key "hoctl/nfs/data-services/owner", unit nfs-server.service: it does not guard this service → hoctl run c1 -- systemctl status hoctl-guard-data-services.service (install: docs/failover.md#self-fencing)`,
			"ok nfs data-services: primary zippy (the inventory's; no consul section: owner and health not checked)"}},
		{map[string]string{"zippy": "active", "c1": "active"}, "", time.Minute, []string{
			"warn nfs data-services guard c1: hoctl-guard-data-services.service is active but Consul last answered it 1m0s ago (more than 30s): it is wedged or cannot reach Consul, and on the owner its lease has run out → hoctl run c1 -- systemctl status hoctl-guard-data-services.service (install: docs/failover.md#self-fencing)",
			"ok nfs data-services: primary zippy (the inventory's; no consul section: owner and health not checked)"}},
		{map[string]string{"zippy": "active", "c1": "inactive"}, "", 0, []string{
			"warn nfs data-services guard c1: hoctl-guard-data-services.service is inactive (or not installed): nothing stops nfs-server.service here if it serves without the owner key (a primary back from a hang) → hoctl run c1 -- systemctl status hoctl-guard-data-services.service (install: docs/failover.md#self-fencing)",
			"ok nfs data-services: primary zippy (the inventory's; no consul section: owner and health not checked)"}},
	} {
		p := &Probes{Inv: inv, Timeout: 2 * time.Second, Connect: func(_ context.Context, h *inventory.Host) (sshexec.Runner, error) {
			g := &guardHost{name: h.Name, state: c.states[h.Name]}
			if h.Name == "c1" {
				g.key, g.age = c.key, c.age
			}
			return g, nil
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
