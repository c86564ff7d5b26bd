package cli

import (
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/hoctl/hoctl/pkg/hostout/hostouttest"
	"github.com/hoctl/hoctl/pkg/sshexec"
	"github.com/spf13/cobra"
)

// hostOutputCase says how one command meets what hosts print. Either it
// prints nothing a host sent (none says why, and the command is not run
// here), or it is run with every host answering every command with
// hostouttest.Hostile on stdout and stderr, and nothing it prints in
// human mode may carry a control sequence raw.
type hostOutputCase struct {
	none string
	// setup runs first (its own output is checked too); then each of
	// runs, each needing the hostile text shown (escaped) in its output,
	// so that a case that never reaches a host's output fails.
	setup func(t *testing.T, h *harness, dir string)
	runs  [][]string
	// handler, when set, answers instead of the hostile default, so that
	// a command gets past its first parse to where it shows host output.
	handler func(host string, c sshexec.Cmd) (string, string, int)
}

const hostileInventory = completionInventory + `deploy:
  command: "cat HOSTILE; cat HOSTILE >&2"
`

func hostile(string, sshexec.Cmd) (string, string, int) {
	return hostouttest.Hostile, hostouttest.Hostile, 0
}

// hostileFailing is hostile, exiting 1.
func hostileFailing(string, sshexec.Cmd) (string, string, int) {
	return hostouttest.Hostile, hostouttest.Hostile, 1
}

// failingStep is hostile; the hostile runbook's command fails (its
// before check passes, so the run is journaled), for history and resume.
func failingStep(host string, c sshexec.Cmd) (string, string, int) {
	if strings.Contains(c.Line(), "cat /x") {
		return hostileFailing(host, c)
	}
	return hostile(host, c)
}

// hostOutputCases has an entry for every command of the tree
// (TestEveryCommandHasAHostOutputCase): a new command must say how it
// shows host output, or that it shows none.
var hostOutputCases = map[string]hostOutputCase{
	"ping": {runs: [][]string{{"ping", "all"}}},
	"run": {runs: [][]string{
		{"run", "all", "--", "x"}, {"run", "--group", "all", "--", "x"},
		{"run", "cattle", "--", "x"}, // the summary of failures
	}},
	// The host's answer to reading DEST is shown (quoted) when it is
	// not what a sha256sum and stat print.
	"copy":      {runs: [][]string{{"--yes", "copy", "c1", "DIR/hostile", "/etc/motd"}, {"--dry-run", "copy", "cattle", "DIR/hostile", "/etc/motd"}}},
	"status":    {runs: [][]string{{"status"}}},
	"replicate": {runs: [][]string{{"--yes", "replicate", "zippy", "c1"}, {"--dry-run", "replicate", "zippy", "c1"}, {"--yes", "replicate"}}},
	"snapshots": {runs: [][]string{{"snapshots", "zippy"}, {"snapshots", "c1"}}},
	"failover": {runs: [][]string{{"--yes", "failover", "--to", "c1"}},
		setup: func(t *testing.T, h *harness, dir string) {
			h.inventory(t, dir, hostileInventory+"consul:\n  address: "+fakeConsul(t)+"\n")
		},
		// Host commands fail, so their output is part of what is shown.
		handler: hostileFailing},
	"deploy": {
		runs: [][]string{{"--yes", "deploy", "c1"}, {"--yes", "deploy", "--rollback", "c1"}},
		handler: func(host string, c sshexec.Cmd) (string, string, int) {
			if strings.Contains(c.Line(), "boot_id") {
				// Facts that parse, so the deploy command runs.
				return "/nix/store/aaaa-nixos-system\n0b6e-boot\n", "", 0
			}
			return hostile(host, c)
		},
	},
	"migrate-jobs": {
		setup: func(t *testing.T, h *harness, dir string) {
			h.inventory(t, dir, strings.Replace(hostileInventory, "    standbys: [c1]\n", "    standbys: [c1]\n    clients: cattle\n", 1))
			job := "job \"web\" {\n  group \"g\" {\n    task \"t\" {\n      driver = \"docker\"\n      config {\n        volumes = [\"/data/compute/web:/srv\"]\n      }\n    }\n  }\n}\n"
			if err := os.WriteFile(filepath.Join(dir, "web.hcl"), []byte(job), 0o600); err != nil {
				t.Fatal(err)
			}
		},
		// The check of the NFS clients before --write runs on a host and
		// quotes the paths it reports missing.
		handler: func(string, sshexec.Cmd) (string, string, int) {
			return "MISSING /data/services/web" + hostouttest.Hostile, hostouttest.Hostile, 0
		},
		runs: [][]string{{"--yes", "migrate-jobs", "--dir", "DIR", "--from", "/data/compute", "--to", "/data/services", "--write"}},
	},
	// plan runs the before checks: one that fails shows what it printed.
	"runbook plan": {runs: [][]string{{"runbook", "plan", "DIR/rb.yaml"}}, setup: writeHostileRunbook, handler: hostileFailing},
	"runbook run":  {runs: [][]string{{"--yes", "runbook", "run", "DIR/rb.yaml"}}, setup: writeHostileRunbook, handler: failingStep},
	"history": {
		setup: func(t *testing.T, h *harness, dir string) {
			writeHostileRunbook(t, h, dir)
			h.conn.handler = failingStep
			h.runLine("--yes", "runbook", "run", filepath.Join(dir, "rb.yaml"))
		},
		// The list shows runs (commands, never output; TestHistoryLimitAndFilters);
		// one run in full replays its journaled output.
		runs: [][]string{{"history", "last"}},
	},
	"resume": {
		setup: func(t *testing.T, h *harness, dir string) {
			writeHostileRunbook(t, h, dir)
			h.conn.handler = failingStep
			h.runLine("--yes", "runbook", "run", filepath.Join(dir, "rb.yaml"))
		},
		runs:    [][]string{{"--yes", "resume", "last"}},
		handler: failingStep,
	},

	"hosts":         {none: "reads the inventory and ~/.ssh/config; connects to no host"},
	"check":         {none: "offline validation: connects to no host (TestCheckListsEveryProblemAndConnectsNothing)"},
	"target-filter": {none: "runs on a replication target as its key's forced command: its output is the replication stream, read by hoctl, not a terminal"},
	"dir-op":        {none: "runs on a replication host, sent by hoctl itself: its output is a listing or a send stream read by hoctl, not a terminal"},
	"guard":         {none: "runs on an NFS host under systemd: its lines go to the journal, not to an operator's terminal"},
	"version":       {none: "prints hoctl's own build"},
	"help":          {none: "prints hoctl's own help and docs"},
	"completion bash": {none: "prints a static script; the completions it asks for list inventory names and journaled commands, sanitised " +
		"(TestCompletionDescriptionsAreDefused)"},
	"completion zsh":        {none: "as completion bash"},
	"completion fish":       {none: "as completion bash"},
	"completion powershell": {none: "as completion bash"},
}

func writeHostileRunbook(t *testing.T, _ *harness, dir string) {
	t.Helper()
	rb := "name: hostile\nsteps:\n  - title: look\n    hosts: cattle\n    before: 'test -e /x'\n    run: 'cat /x'\n    after: 'test -e /y'\n"
	if err := os.WriteFile(filepath.Join(dir, "rb.yaml"), []byte(rb), 0o600); err != nil {
		t.Fatal(err)
	}
}

// inventory points the harness at an inventory with body, in dir, with
// its own state directory. HOSTILE in body is a
// file holding hostouttest.Hostile, for commands run on this machine.
func (h *harness) inventory(t *testing.T, dir, body string) {
	t.Helper()
	hostileFile := filepath.Join(dir, "hostile")
	if err := os.WriteFile(hostileFile, []byte(hostouttest.Hostile+"no newline \x1b[2J"), 0o600); err != nil {
		t.Fatal(err)
	}
	inv := filepath.Join(dir, "inventory.yaml")
	if err := os.WriteFile(inv, []byte(strings.ReplaceAll(body, "HOSTILE", hostileFile)), 0o600); err != nil {
		t.Fatal(err)
	}
	state := filepath.Join(dir, "state")
	h.f.Getenv = func(k string) string {
		return map[string]string{"HOCTL_INVENTORY": inv, "XDG_STATE_HOME": state}[k]
	}
}

// leafCommands is every runnable command of the tree, by its path under
// hoctl ("runbook run").
func leafCommands(c *cobra.Command, prefix string, out map[string]bool) {
	for _, sub := range c.Commands() {
		name := strings.TrimSpace(prefix + " " + sub.Name())
		if sub.HasSubCommands() {
			leafCommands(sub, name, out)
			continue
		}
		if sub.Runnable() {
			out[name] = true
		}
	}
}

func TestEveryCommandHasAHostOutputCase(t *testing.T) {
	h := newHarness(t)
	leaves := map[string]bool{}
	leafCommands(NewRootCmd(h.f), "", leaves)
	var missing, stale []string
	for name := range leaves {
		if _, ok := hostOutputCases[name]; !ok {
			missing = append(missing, name)
		}
	}
	for name := range hostOutputCases {
		if !leaves[name] {
			stale = append(stale, name)
		}
	}
	sort.Strings(missing)
	sort.Strings(stale)
	if len(missing) > 0 {
		t.Errorf("commands without an entry in hostOutputCases (say how they show host output, or that they show none): %q", missing)
	}
	if len(stale) > 0 {
		t.Errorf("hostOutputCases names commands the tree does not have: %q", stale)
	}
}

// Every command that prints what hosts send, fed a hostile host (screen
// clear, OSC 52 clipboard write, OSC 8, a title, CR, BEL, C1, bidi,
// invalid UTF-8), shows it escaped and never lets a byte of it reach the
// terminal raw.
func TestNoCommandPrintsHostOutputRaw(t *testing.T) {
	names := make([]string, 0, len(hostOutputCases))
	for name := range hostOutputCases {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		c := hostOutputCases[name]
		if c.none != "" {
			continue
		}
		t.Run(strings.ReplaceAll(name, " ", "_"), func(t *testing.T) {
			for _, args := range c.runs {
				h := newHarness(t)
				dir := t.TempDir()
				h.inventory(t, dir, hostileInventory)
				h.conn.handler = hostile
				if c.setup != nil {
					c.setup(t, h, dir)
					h.assertNoRawHostOutput(t, "setup")
				}
				h.out.Reset()
				h.err.Reset()
				if c.handler != nil {
					h.conn.handler = c.handler
				} else {
					h.conn.handler = hostile
				}
				args = slices.Clone(args)
				for i, a := range args {
					args[i] = strings.ReplaceAll(a, "DIR", dir)
				}
				code := h.runLine(args...)
				label := strings.Join(args, " ")
				h.assertNoRawHostOutput(t, label)
				all := h.out.String() + h.err.String()
				if !strings.Contains(all, hostouttest.Shown) {
					t.Errorf("%s (exit %d): the host's output is not shown, so this case proves nothing:\n%s", label, code, all)
				}
			}
		})
	}
}

func (h *harness) assertNoRawHostOutput(t *testing.T, label string) {
	t.Helper()
	for stream, s := range map[string]string{"stdout": h.out.String(), "stderr": h.err.String()} {
		if u := hostouttest.FirstUnsafe(s); u != "" {
			t.Errorf("%s: %s on %s:\n%q", label, u, stream, s)
		}
	}
}

// fakeConsul answers the Consul API as a cluster whose data-services
// runs on zippy, with its sessions and lock writes succeeding: enough for
// failover to reach its hosts. It logs what else it is asked (a key
// never set is a 404, as in Consul).
func fakeConsul(t *testing.T) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.URL.Path == "/v1/status/leader":
			_, _ = io.WriteString(w, `"127.0.0.1:8300"`)
		case strings.HasPrefix(r.URL.Path, "/v1/health/service/"):
			_, _ = io.WriteString(w, `[{"Node":{"Node":"zippy","Address":"10.0.0.1"},"Service":{"ID":"data-services","Service":"data-services"},"Checks":[{"Status":"passing","ServiceName":"data-services"}]}]`)
		case r.URL.Path == "/v1/session/create":
			_, _ = io.WriteString(w, `{"ID":"3f4a9c2e-0000-4000-8000-000000000001"}`)
		case strings.HasPrefix(r.URL.Path, "/v1/session/renew/"):
			_, _ = io.WriteString(w, `[{"ID":"3f4a9c2e-0000-4000-8000-000000000001"}]`)
		case strings.HasPrefix(r.URL.Path, "/v1/session/destroy/"), r.Method == http.MethodPut && strings.HasPrefix(r.URL.Path, "/v1/kv/"):
			_, _ = io.WriteString(w, `true`)
		case r.Method == http.MethodGet && strings.HasPrefix(r.URL.Path, "/v1/kv/hoctl/locks/"):
			// Held by the session above; a blocking query waits.
			if r.URL.Query().Get("index") != "" {
				select {
				case <-r.Context().Done():
				case <-time.After(time.Second):
				}
			}
			w.Header().Set("X-Consul-Index", "7")
			_, _ = io.WriteString(w, `[{"Key":"`+strings.TrimPrefix(r.URL.Path, "/v1/kv/")+`","Session":"3f4a9c2e-0000-4000-8000-000000000001","LockIndex":1,"ModifyIndex":7,"Value":""}]`)
		case r.URL.Path == "/v1/agent/members":
			_, _ = io.WriteString(w, `[{"Name":"zippy","Status":1},{"Name":"c1","Status":1},{"Name":"c2","Status":1}]`)
		default:
			t.Logf("fake Consul: %s %s: 404", r.Method, r.URL)
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}
