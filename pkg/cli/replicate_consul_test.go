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
