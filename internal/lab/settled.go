package lab

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
)

// settledTimeout bounds Start's own wait for the cluster it booted.
const settledTimeout = 2 * time.Minute

// WaitSettled waits until a real cluster (Config.Parts) is as Start
// leaves it, or ctx ends; the error then says what was not so yet. Start
// ends with it, and a test that changed the cluster waits with it before
// the next test, so that every test starts from the same cluster:
//
//   - every machine: systemd running, no failed unit, the system
//     profile's generation running;
//   - Consul and Nomad: their autopilots healthy, every server a voter
//     and the failure tolerance a quorum allows;
//   - every Nomad client ready, eligible and not draining, and no job;
//   - NFS: the owner key names the primary, which is the one instance of
//     the service passing its checks, and every client has the share
//     mounted from it.
//
// A namespace lab has none of these: it is settled once started.
func (l *Lab) WaitSettled(ctx context.Context) error {
	if l.Parts == nil {
		return nil
	}
	var last error
	for {
		if last = l.settled(ctx); last == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("the cluster is not as the lab started it: %w (%w)", last, ctx.Err())
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// settled is WaitSettled's one look: nil, or what is not as expected.
func (l *Lab) settled(ctx context.Context) error {
	var primary *Host
	quorum, clients := 0, 0
	for _, h := range l.Hosts {
		if hasRole(h, "nfs-primary") {
			primary = h
		}
		if hasRole(h, "quorum") {
			quorum++
		}
		if runsNomad(h) {
			clients++
		}
	}
	for _, h := range l.Hosts {
		script := `systemctl is-system-running --wait; systemctl --failed --no-legend --plain; test "$(readlink -f /run/current-system)" = "$(readlink -f ` + NixProfile + `)" || echo not running its system profile`
		if runsNFSClient(h) && primary != nil {
			script += "; mountpoint -q " + NFSExport + " && test \"$(cat /run/hoctl-lab/nfs-client/server)\" = " + primary.Addr + " || echo " + NFSMount + " not mounted from " + primary.Name
		}
		out, err := l.run(ctx, h, script)
		if err != nil {
			return fmt.Errorf("%s: %w: %s", h.Name, err, strings.ReplaceAll(out, "\n", "; "))
		}
		if out != "running" {
			return fmt.Errorf("%s: %s", h.Name, strings.ReplaceAll(out, "\n", "; "))
		}
	}
	if quorum == 0 {
		return nil
	}
	consul := l.apiOf(ctx, ConsulPort, "/v1/status/leader")
	nomad := l.apiOf(ctx, NomadPort, "/v1/status/leader")
	for _, a := range []struct{ name, url string }{{"consul", consul}, {"nomad", nomad}} {
		var health struct {
			Healthy          bool
			FailureTolerance int
			Servers          []struct{ Voter bool }
		}
		// Nomad answers 429 while unhealthy: not settled, either way.
		if err := getJSON(ctx, a.url+"/v1/operator/autopilot/health", &health); err != nil {
			return fmt.Errorf("%s autopilot: %w", a.name, err)
		}
		voters := 0
		for _, s := range health.Servers {
			if s.Voter {
				voters++
			}
		}
		if !health.Healthy || voters != quorum || health.FailureTolerance != (quorum-1)/2 {
			return fmt.Errorf("%s autopilot: healthy %v, %d of %d servers voting, failure tolerance %d", a.name, health.Healthy, voters, quorum, health.FailureTolerance)
		}
	}
	var nodes []struct {
		Name, Status, SchedulingEligibility string
		Drain                               bool
	}
	if err := getJSON(ctx, nomad+"/v1/nodes", &nodes); err != nil {
		return fmt.Errorf("nomad nodes: %w", err)
	}
	ok := 0
	for _, n := range nodes {
		if n.Status == "ready" && n.SchedulingEligibility == "eligible" && !n.Drain {
			ok++
		}
	}
	if ok != clients {
		return fmt.Errorf("nomad: %d of %d nodes ready, eligible and not draining", ok, clients)
	}
	var jobs []struct{ ID string }
	if err := getJSON(ctx, nomad+"/v1/jobs", &jobs); err != nil {
		return fmt.Errorf("nomad jobs: %w", err)
	}
	if len(jobs) > 0 {
		return fmt.Errorf("nomad: %d jobs left (%s first)", len(jobs), jobs[0].ID)
	}
	if primary == nil {
		return nil
	}
	var kv []struct{ Value []byte }
	if err := getJSON(ctx, consul+"/v1/kv/"+NFSOwnerKey, &kv); err != nil {
		return fmt.Errorf("consul: %s: %w", NFSOwnerKey, err)
	}
	if len(kv) != 1 || string(kv[0].Value) != primary.Name {
		return fmt.Errorf("consul: %s does not name %s", NFSOwnerKey, primary.Name)
	}
	var passing []struct{ Node struct{ Node string } }
	if err := getJSON(ctx, consul+"/v1/health/service/"+NFSService+"?passing", &passing); err != nil {
		return fmt.Errorf("consul: %s: %w", NFSService, err)
	}
	if len(passing) != 1 || passing[0].Node.Node != primary.Name {
		return fmt.Errorf("consul: %d passing instances of %s, want one, on %s", len(passing), NFSService, primary.Name)
	}
	return nil
}

// apiOf is the URL of the first quorum host whose API on port answers
// path (so that one server stopped does not hide the others' view), or
// the first's.
func (l *Lab) apiOf(ctx context.Context, port int, path string) string {
	servers := l.servers()
	for _, s := range servers {
		url := fmt.Sprintf("http://%s:%d", s, port)
		var leader string
		if getJSON(ctx, url+path, &leader) == nil && leader != "" {
			return url
		}
	}
	return fmt.Sprintf("http://%s:%d", servers[0], port)
}

// getJSON decodes url's 200 answer into v.
func getJSON(ctx context.Context, url string, v any) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer func() { _ = resp.Body.Close() }()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return errors.New(resp.Status + ": " + strings.TrimSpace(string(body)))
	}
	return json.Unmarshal(body, v)
}
