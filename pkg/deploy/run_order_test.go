package deploy

import (
	"context"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/hoctl/hoctl/pkg/iostreams"
	"github.com/hoctl/hoctl/pkg/sshexec"
	"github.com/hoctl/hoctl/pkg/sshexec/sshexectest"
	"github.com/hoctl/hoctl/pkg/tasks"
)

// rollout is a deploy run on the engine against fake hosts: each host
// answers its facts (a new generation once this machine's deploy command
// ran for it) and its health; the deploy command runs here and prints
// the host's name. timeline is every event in order: "HOST facts",
// "HOST deploy", "HOST health".
type rollout struct {
	mu       sync.Mutex
	timeline []string
	deployed map[string]bool
}

func (ro *rollout) add(ev string) {
	ro.mu.Lock()
	defer ro.mu.Unlock()
	ro.timeline = append(ro.timeline, ev)
}

// Write takes the deploy command's output, "HOST | deployed HOST".
func (ro *rollout) Write(p []byte) (int, error) {
	for _, l := range strings.Split(strings.TrimSpace(string(p)), "\n") {
		if f := strings.Fields(l); len(f) == 4 && f[2] == "deployed" {
			ro.mu.Lock()
			ro.deployed[f[3]] = true
			ro.timeline = append(ro.timeline, f[3]+" deploy")
			ro.mu.Unlock()
		}
	}
	return len(p), nil
}

func (ro *rollout) answer(host string, c sshexec.Cmd) sshexectest.Reply {
	switch {
	case c.Script == factsScript:
		ro.mu.Lock()
		gen := map[bool]string{false: "old", true: "new"}[ro.deployed[host]]
		ro.mu.Unlock()
		ro.add(host + " facts")
		return sshexectest.Reply{Stdout: "/nix/store/" + gen + "-system boot-1\n"}
	case strings.HasPrefix(c.Script, "systemctl is-system-running"):
		ro.add(host + " health")
		return sshexectest.Reply{Stdout: "running\n"}
	}
	return sshexectest.Reply{}
}

// events are host's events in order, repeats of one event in a row
// counted once (a before check runs at plan time and again before the
// step).
func (ro *rollout) events(host string) []string {
	var out []string
	for _, ev := range ro.timeline {
		h, what, _ := strings.Cut(ev, " ")
		if h == host && (len(out) == 0 || out[len(out)-1] != what) {
			out = append(out, what)
		}
	}
	return out
}

// at is the index in the timeline of host's first event what after
// index from.
func (ro *rollout) at(t *testing.T, host, what string, from int) int {
	t.Helper()
	for i := from; i < len(ro.timeline); i++ {
		if ro.timeline[i] == host+" "+what {
			return i
		}
	}
	t.Fatalf("no %q after event %d:\n%s", host+" "+what, from, strings.Join(ro.timeline, "\n"))
	return -1
}

// The rollout as run, not as planned: every host's facts are read before
// its deploy command and its health after it; the hosts outside the
// quorum go first; each quorum member starts only after the one before
// it is healthy again. A change of order fails here in seconds.
func TestDeployRunsInOrderOnTheHosts(t *testing.T) {
	ro := &rollout{deployed: map[string]bool{}}
	inv, rb, _ := orderRunbook(t, `deploy: {command: "echo deployed {{.Host}}", quorum: quorum}
`, Options{Parallel: 2, Output: ro})
	hosts := &sshexectest.Hosts{Answer: ro.answer}
	ios, _, _, _ := iostreams.Test()
	eng := &tasks.Engine{Env: &tasks.Env{Inventory: inv, Connect: hosts.Connect}, Reporter: tasks.NewReporter(ios, nil),
		StateDir: t.TempDir(), Yes: true, Command: "hoctl deploy"}
	if _, err := eng.Run(context.Background(), rb, tasks.RunOptions{}); err != nil {
		t.Fatalf("%v\n%s", err, strings.Join(ro.timeline, "\n"))
	}
	for _, h := range []string{"zippy", "w1", "c1", "c2"} {
		if got := strings.Join(ro.events(h), " "); got != "facts deploy facts health" {
			t.Errorf("%s: %s, want facts deploy facts health", h, got)
		}
	}
	if slices.ContainsFunc(ro.timeline, func(ev string) bool { return strings.HasPrefix(ev, "c3 ") }) {
		t.Errorf("c3 is not a target:\n%s", strings.Join(ro.timeline, "\n"))
	}
	// The others' health before c1's deploy; c1 healthy before c2's
	// deploy (and before c2's before check of its step).
	c1 := ro.at(t, "c1", "deploy", 0)
	for _, h := range []string{"zippy", "w1"} {
		if i := ro.at(t, h, "health", 0); i > c1 {
			t.Errorf("%s's health (event %d) after c1's deploy (event %d)", h, i, c1)
		}
	}
	c1healthy := ro.at(t, "c1", "health", c1)
	if c2 := ro.at(t, "c2", "deploy", 0); c2 < c1healthy {
		t.Errorf("c2 deployed (event %d) before c1 was healthy again (event %d)", c2, c1healthy)
	}
	if c2facts := ro.at(t, "c2", "facts", c1healthy); c2facts > ro.at(t, "c2", "deploy", 0) {
		t.Errorf("c2's before check did not run again after c1's step:\n%s", strings.Join(ro.timeline, "\n"))
	}
	t.Logf("timeline:\n%s", strings.Join(ro.timeline, "\n"))
}
