package cli

import (
	"encoding/json"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hoctl/hoctl/pkg/sshexec"
)

// stdout and stderr are what the command wrote so far, read under the
// writers' locks while it runs.
func (h *harness) stdout() string { return h.f.IO.Out.(*syncWriter).String() }
func (h *harness) stderr() string { return h.f.IO.ErrOut.(*syncWriter).String() }

// waitOut waits until stdout holds want, failing with what it holds
// when it does not within a generous time.
func (h *harness) waitOut(t *testing.T, want string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !strings.Contains(h.stdout(), want) {
		if time.Now().After(deadline) {
			t.Fatalf("stdout never showed %q; it shows:\n%s", want, h.stdout())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// ping prints each host's line as the host answers: a slow host holds
// back no other host's line, and its own comes when it answers, before
// the summary. Before, nothing was printed until the slowest host
// answered.
func TestPingPrintsEachHostAsItAnswers(t *testing.T) {
	for _, mode := range []string{"text", "json"} {
		t.Run(mode, func(t *testing.T) {
			h := newHarness(t)
			release := make(chan struct{})
			var once sync.Once
			free := func() { once.Do(func() { close(release) }) }
			defer free() // a failing test leaves no host hanging
			h.conn.handler = func(host string, c sshexec.Cmd) (string, string, int) {
				if host == "c2" {
					<-release
				}
				return host + "\n", "", 0
			}
			args := []string{"ping", "c1,c2,zippy"}
			if mode == "json" {
				args = append([]string{"--json"}, args...)
			}
			done := make(chan int, 1)
			go func() { done <- h.runLine(args...) }()
			first, later := "✓ c1", "✓ c2"
			if mode == "json" {
				first, later = `"host":"c1"`, `"host":"c2"`
			}
			h.waitOut(t, first)
			h.waitOut(t, strings.Replace(first, "c1", "zippy", 1))
			if strings.Contains(h.stdout(), later) || h.stderr() != "" {
				t.Fatalf("c2 printed before it answered:\n%s%s", h.stdout(), h.stderr())
			}
			free()
			if code := <-done; code != 0 {
				t.Fatalf("exit %d:\n%s", code, h.err)
			}
			out := h.out.String()
			if mode == "json" {
				// One event per host, in the order they answered.
				var hosts []string
				for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
					var ev struct{ Event, Host string }
					if err := json.Unmarshal([]byte(l), &ev); err != nil || ev.Event != "ping" {
						t.Fatalf("%q: %v", l, err)
					}
					hosts = append(hosts, ev.Host)
				}
				if len(hosts) != 3 || hosts[2] != "c2" {
					t.Fatalf("events for %v", hosts)
				}
				return
			}
			// In the columns of the lines printed before it.
			if !strings.Contains(out, "\n✓ c2     c2     rtt ") {
				t.Fatalf("stdout:\n%s", out)
			}
			if strings.Index(out, "✓ c2") < strings.Index(out, "✓ zippy") {
				t.Errorf("c2, the last to answer, printed first:\n%s", out)
			}
			if h.err.String() != "✓ 3/3 hosts answered\n" {
				t.Errorf("summary %q", h.err)
			}
		})
	}
}

// Hosts that answer together are printed in inventory order, aligned as
// a table, the same every time.
func TestPingHostsAnsweringTogetherKeepInventoryOrder(t *testing.T) {
	h := newHarness(t)
	h.conn.down["c2"] = sshexec.ReasonRefused
	if code := h.runLine("ping", "all"); code != ExitUnreachable {
		t.Fatalf("exit %d", code)
	}
	want := "✓ zippy    zippy               rtt <1ms  connect <1ms\n" +
		"✓ c1       c1                  rtt <1ms  connect <1ms\n" +
		"✗ c2       CONNECTION REFUSED  dial tcp: connection refused\n" +
		"✓ fractal  fractal             rtt <1ms  connect <1ms\n"
	if h.out.String() != want {
		t.Errorf("got\n%s\nwant\n%s", h.out, want)
	}
}
