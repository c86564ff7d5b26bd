package lab

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
)

// startServices brings the booted machines' cluster up as an operator
// would after installing it: wait for Consul to elect a leader, write the
// NFS owner key naming the primary, create the service subvolume there and
// start its nfs-server (whose start check reads that key), then wait for
// Nomad's leader and clients.
func (l *Lab) startServices(ctx context.Context) error {
	servers := l.servers()
	if len(servers) == 0 {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()
	consul := fmt.Sprintf("http://%s:%d", servers[0], ConsulPort)
	if err := waitHTTP(ctx, consul+"/v1/status/leader", nonEmptyLeader); err != nil {
		return fmt.Errorf("consul: no leader elected: %w", err)
	}
	l.mark(&l.Boot.ConsulLeader)
	for _, h := range l.Hosts {
		if hasRole(h, "nfs-standby") || hasRole(h, "nfs-primary") {
			// The inventory's replication dirs (writeInventory): each a
			// directory of its own, never the subvolume's parent.
			if out, err := l.run(ctx, h, "mkdir -p /persist/services-standby /persist/services-snapshots"); err != nil {
				return fmt.Errorf("%s: %w: %s", h.Name, err, out)
			}
		}
		if !hasRole(h, "nfs-primary") {
			continue
		}
		if err := httpPut(ctx, consul+"/v1/kv/"+NFSOwnerKey, h.Name); err != nil {
			return fmt.Errorf("consul: writing %s: %w", NFSOwnerKey, err)
		}
		if out, err := l.run(ctx, h, "btrfs subvolume create "+NFSSubvol+" >/dev/null && echo hello from "+h.Name+" > "+NFSSubvol+"/hello && systemctl start nfs-server.service"); err != nil {
			return fmt.Errorf("%s: starting nfs-server: %w: %s", h.Name, err, out)
		}
		l.mark(&l.Boot.NFSServed)
	}
	nomad := fmt.Sprintf("http://%s:%d", servers[0], NomadPort)
	if err := waitHTTP(ctx, nomad+"/v1/status/leader", nonEmptyLeader); err != nil {
		return fmt.Errorf("nomad: no leader elected: %w", err)
	}
	want := 0
	for _, h := range l.Hosts {
		if runsNomad(h) {
			want++
		}
	}
	var ids []string
	if err := waitHTTP(ctx, nomad+"/v1/nodes", readyNodes(want, &ids)); err != nil {
		return fmt.Errorf("nomad: clients not ready: %w", err)
	}
	// A client that started before Consul had a leader has no Consul
	// fingerprint until its next one (Nomad re-fingerprints periodically):
	// until then a job with a Consul service cannot be placed on it
	// ("${attr.consul.version} semver >= 1.7.0 filtered").
	for _, id := range ids {
		if err := waitHTTP(ctx, nomad+"/v1/node/"+id, seesConsul); err != nil {
			return fmt.Errorf("nomad: client %s does not see Consul: %w", id, err)
		}
	}
	l.mark(&l.Boot.NomadReady)
	return l.MountNFSClients(ctx)
}

// MountNFSClients (re)mounts the share on every NFS client (nfsclient.go)
// once Consul has an instance passing its health checks: what a client's
// boot would do.
func (l *Lab) MountNFSClients(ctx context.Context) error {
	var clients []*Host
	for _, h := range l.Hosts {
		if runsNFSClient(h) {
			clients = append(clients, h)
		}
	}
	servers := l.servers()
	if len(clients) == 0 || len(servers) == 0 {
		return nil
	}
	consul := fmt.Sprintf("http://%s:%d", servers[0], ConsulPort)
	if err := waitHTTP(ctx, consul+"/v1/health/service/"+NFSService+"?passing", nonEmptyList); err != nil {
		return fmt.Errorf("consul: no passing %s instance: %w", NFSService, err)
	}
	for _, h := range clients {
		if out, err := l.run(ctx, h, "systemctl restart "+NFSMount); err != nil {
			return fmt.Errorf("%s: mounting %s: %w: %s", h.Name, NFSExport, err, out)
		}
	}
	return nil
}

func nonEmptyList(body []byte) error {
	var list []json.RawMessage
	if err := json.Unmarshal(body, &list); err != nil {
		return err
	}
	if len(list) == 0 {
		return fmt.Errorf("none yet")
	}
	return nil
}

// RunOn runs a shell command on the machine named host, as its root,
// through nsenter (no SSH): for tests that set a machine up or look at it.
func (l *Lab) RunOn(ctx context.Context, host, script string) (string, error) {
	h := l.Host(host)
	if h == nil {
		return "", fmt.Errorf("no lab host %q", host)
	}
	return l.run(ctx, h, script)
}

// run runs a shell command on a machine, as its root, through nsenter.
func (l *Lab) run(ctx context.Context, h *Host, script string) (string, error) {
	cmd, err := l.Command(h.Name, "sh", "-c", script)
	if err != nil {
		return "", err
	}
	done := make(chan struct{})
	defer close(done)
	go func() {
		select {
		case <-ctx.Done():
			if cmd.Process != nil {
				_ = cmd.Process.Kill()
			}
		case <-done:
		}
	}()
	out, err := cmd.CombinedOutput()
	return strings.TrimSpace(string(out)), err
}

func nonEmptyLeader(body []byte) error {
	var leader string
	if err := json.Unmarshal(body, &leader); err != nil {
		return err
	}
	if leader == "" {
		return fmt.Errorf("no leader yet")
	}
	return nil
}

func readyNodes(want int, ids *[]string) func([]byte) error {
	return func(body []byte) error {
		var nodes []struct{ ID, Name, Status string }
		if err := json.Unmarshal(body, &nodes); err != nil {
			return err
		}
		*ids = (*ids)[:0]
		for _, n := range nodes {
			if n.Status == "ready" {
				*ids = append(*ids, n.ID)
			}
		}
		if len(*ids) < want {
			return fmt.Errorf("%d of %d clients ready", len(*ids), want)
		}
		return nil
	}
}

// seesConsul accepts a Nomad node whose attributes include Consul's
// version: its client has fingerprinted the host's Consul agent.
func seesConsul(body []byte) error {
	var node struct{ Attributes map[string]string }
	if err := json.Unmarshal(body, &node); err != nil {
		return err
	}
	if node.Attributes["consul.version"] == "" {
		return fmt.Errorf("no consul.version attribute yet")
	}
	return nil
}

// waitHTTP polls url until ok accepts its 200 body, or ctx ends.
func waitHTTP(ctx context.Context, url string, ok func([]byte) error) error {
	c := &http.Client{Timeout: 2 * time.Second}
	var last error
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return err
		}
		resp, err := c.Do(req)
		if err == nil {
			body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				if err = ok(body); err == nil {
					return nil
				}
			} else {
				err = fmt.Errorf("%s: %s", resp.Status, strings.TrimSpace(string(body)))
			}
		}
		last = err
		select {
		case <-ctx.Done():
			if last == nil {
				return ctx.Err()
			}
			return fmt.Errorf("%w (last: %w)", ctx.Err(), last)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func httpPut(ctx context.Context, url, body string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, url, strings.NewReader(body))
	if err != nil {
		return err
	}
	resp, err := (&http.Client{Timeout: 5 * time.Second}).Do(req)
	if err != nil {
		return err
	}
	defer func() { _ = resp.Body.Close() }()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		return fmt.Errorf("%s: %s", resp.Status, strings.TrimSpace(string(b)))
	}
	return nil
}
