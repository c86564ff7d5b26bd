package cli

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hoctl/hoctl/pkg/consul"
	"github.com/hoctl/hoctl/pkg/replicate"
	"github.com/hoctl/hoctl/pkg/sshexec"
	"github.com/hoctl/hoctl/pkg/tasks"
)

// consulDown is a Consul that cannot answer: an agent cut off from its
// servers (every KV read a 500; not "No cluster leader", which hoctl
// waits ElectionWait through first), or nothing listening at all.
func consulDown(t *testing.T, how string) string {
	t.Helper()
	switch how {
	case "cut off":
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			http.Error(w, "rpc error making call: i/o deadline reached", http.StatusInternalServerError)
		}))
		t.Cleanup(srv.Close)
		return srv.URL
	default: // refused: a port that was just closed
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := ln.Addr().String()
		_ = ln.Close()
		return "http://" + addr
	}
}

// With Consul down, replicate still plans (and a run still goes) on the
// host locks and the direction files alone, and says in the plan, human
// and --json, that Consul was not consulted and why.
func TestReplicatePlansWithConsulDown(t *testing.T) {
	for _, how := range []string{"cut off", "refused"} {
		t.Run(how, func(t *testing.T) {
			h := newHarness(t)
			inv := filepath.Join(t.TempDir(), "inventory.yaml")
			body := completionInventory + "consul: {address: " + consulDown(t, how) + "}\n"
			if err := os.WriteFile(inv, []byte(body), 0o600); err != nil {
				t.Fatal(err)
			}
			state := t.TempDir()
			h.f.Getenv = func(k string) string {
				return map[string]string{"HOCTL_INVENTORY": inv, "XDG_STATE_HOME": state}[k]
			}
			h.conn.handler = func(host string, c sshexec.Cmd) (string, string, int) { return "", "", 0 }

			code := h.runLine("--dry-run", "replicate", "zippy", "c1")
			out, errOut := h.out.String(), h.err.String()
			const want = "Consul was not consulted (unreachable: "
			why := map[string]string{"cut off": "500 (rpc error making call: i/o deadline reached)", "refused": "refused the connection"}[how]
			if !strings.Contains(out, "Plan: replicate services: zippy:/persist/services → c1:/persist/services-standby") || !strings.Contains(out, want) ||
				!strings.Contains(out, why) {
				t.Fatalf("exit %d: no plan, or it does not say Consul was not consulted:\n%s\n%s", code, out, errOut)
			}
			if strings.Contains(out+errOut, "reading the replication's direction") {
				t.Fatalf("the outage is still an error:\n%s%s", out, errOut)
			}

			// The same in --json: the plan event carries the note.
			h.out.Reset()
			h.err.Reset()
			h.runLine("--json", "--dry-run", "replicate", "zippy", "c1")
			found := false
			for _, line := range strings.Split(strings.TrimSpace(h.out.String()), "\n") {
				var ev struct {
					Event string `json:"event"`
					Plan  struct {
						Warnings []string `json:"warnings"`
					} `json:"plan"`
				}
				if err := json.Unmarshal([]byte(line), &ev); err != nil {
					t.Fatalf("not JSON: %q", line)
				}
				for _, w := range ev.Plan.Warnings {
					found = found || ev.Event == "plan" && strings.HasPrefix(w, want) && strings.Contains(w, why)
				}
			}
			if !found {
				t.Fatalf("no plan event saying Consul was not consulted:\n%s\n%s", h.out.String(), h.err.String())
			}
		})
	}
}

// A run that could not read Consul takes no cluster lock (it would fail
// on the same Consul) and journals why; one that could keeps both as
// they were.
func TestWithoutConsulDropsTheClusterLock(t *testing.T) {
	down := replicate.NewConsulDirection(func(context.Context) (replicate.KV, error) {
		return nil, errors.New("Consul API at http://127.0.0.1:8500 refused the connection\nsecond line")
	})
	if _, _, _, err := down.Get(context.Background(), replicate.DirectionKey("services")); err != nil {
		t.Fatal(err)
	}
	rb := &tasks.Runbook{ClusterLock: true, Params: map[string]string{"name": "services"}}
	withoutConsul(rb, down)
	if rb.ClusterLock || rb.Params["consul"] != "not consulted: Consul API at http://127.0.0.1:8500 refused the connection" || len(rb.Warnings) != 1 {
		t.Fatalf("Consul down: cluster lock %v, params %v, warnings %q", rb.ClusterLock, rb.Params, rb.Warnings)
	}

	up := replicate.NewConsulDirection(func(context.Context) (replicate.KV, error) { return nil, nil })
	rb = &tasks.Runbook{ClusterLock: true}
	withoutConsul(rb, up)
	if !rb.ClusterLock || rb.Params != nil || rb.Warnings != nil {
		t.Fatalf("Consul not found down: %+v", rb)
	}
}

// Consul that reads but will not give the cluster lock (its agent's node
// still counted failed, just after a partition healed) does not stop a
// replication: it goes on under the host locks, says so, and journals
// it. Another holder still refuses, and other runbooks are left alone.
func TestClusterLockOrHosts(t *testing.T) {
	refused := errors.New("consul session: Unexpected response code: 500 (rpc error making call: apply failed: Check 'serfHealth' is in critical state)")
	held := &consul.HeldError{Scope: "replicate-services", Holder: "alice pid 1"}
	for _, c := range []struct {
		err      error
		scope    string
		wantErr  error
		wantWarn bool
	}{
		{refused, "replicate-services", nil, true},
		{held, "replicate-services", held, false},
		{nil, "replicate-services", nil, false},
		{refused, "nfs-data-services", refused, false},
	} {
		rb := &tasks.Runbook{Lock: "replicate-services", ClusterLock: true, Params: map[string]string{"name": "services"}}
		eng := &tasks.Engine{ClusterLock: func(context.Context, string, string) (tasks.ClusterLock, error) {
			if c.err != nil {
				return nil, c.err
			}
			return noClusterLock{}, nil
		}}
		var w strings.Builder
		clusterLockOrHosts(eng, &w, rb)
		l, err := eng.ClusterLock(context.Background(), c.scope, "me")
		if !errors.Is(err, c.wantErr) || (err == nil) != (l != nil) {
			t.Errorf("%v on %s: lock %v, error %v", c.err, c.scope, l, err)
		}
		warned := strings.HasPrefix(w.String(), "warning: services: Consul's cluster lock was not taken (consul session: Unexpected response code: 500")
		if warned != c.wantWarn || warned != strings.HasPrefix(rb.Params["consul"], "cluster lock not taken: consul session:") {
			t.Errorf("%v on %s: warning %q, params %v", c.err, c.scope, w.String(), rb.Params)
		}
	}
}
