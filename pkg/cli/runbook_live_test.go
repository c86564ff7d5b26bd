package cli

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/charmbracelet/x/ansi"
	"github.com/hoctl/hoctl/pkg/hostout/hostouttest"
	"github.com/hoctl/hoctl/pkg/inventory"
	"github.com/hoctl/hoctl/pkg/sshexec"
	"github.com/hoctl/hoctl/pkg/sshexec/sshexectest"
)

// talkingHosts run every command by printing out on its stdout and then
// waiting for release: a long step, caught while it runs.
type talkingHosts struct {
	out     string
	release chan struct{}
}

func (talkingHosts) Close() error { return nil }
func (c talkingHosts) Runner(_ context.Context, h *inventory.Host) (sshexec.Runner, error) {
	return &sshexectest.Func{Host: h.Name, Fn: func(ctx context.Context, cmd sshexec.Cmd) (*sshexec.Result, error) {
		_, _ = io.WriteString(cmd.Stdout, c.out)
		select {
		case <-c.release:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		return &sshexec.Result{Host: h.Name}, nil
	}}, nil
}

// On a terminal, a runbook step's row shows the last line the host's
// command printed while it runs, made safe; the terminal gets no control
// sequence but the view's own. Before, the row said "run…" until the
// command ended.
func TestRunbookStepShowsHostsLastLineOnATerminal(t *testing.T) {
	h := newHarness(t)
	dir := t.TempDir()
	rb := filepath.Join(dir, "rb.yaml")
	if err := os.WriteFile(rb, []byte("name: t\nsteps:\n  - title: upgrade\n    hosts: c1\n    run: apt-get -y upgrade\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	getenv := h.f.Getenv
	h.f.Getenv = func(k string) string {
		if k == "XDG_STATE_HOME" {
			return filepath.Join(dir, "state")
		}
		return getenv(k)
	}
	release := make(chan struct{})
	var once sync.Once
	free := func() { once.Do(func() { close(release) }) }
	defer free()
	h.f.Connect = func(*inventory.Inventory) (Connector, error) {
		return talkingHosts{out: "Reading package lists\n" + hostouttest.Hostile + "Unpacking nginx (1.26)\n", release: release}, nil
	}
	p := h.onPTY(t, map[string]string{"TERM": "xterm-256color"})
	done := make(chan int, 1)
	go func() { done <- h.runLine("--yes", "runbook", "run", rb) }()
	re := regexp.MustCompile(`c1\S* \S*run…\S* \S*Unpacking nginx \(1\.26\)`)
	deadline := time.Now().Add(20 * time.Second)
	for !re.MatchString(p.Screen()) {
		if time.Now().After(deadline) {
			t.Fatalf("the terminal never showed c1's last line while it ran:\n%q", p.Screen())
		}
		time.Sleep(10 * time.Millisecond)
	}
	free()
	if code := <-done; code != 0 {
		t.Fatalf("exit %d:\n%s", code, p.Output())
	}
	out := p.Output()
	own := regexp.MustCompile(`\x1b\[[0-9;]*[AKm]`)
	if u := hostouttest.FirstUnsafe(strings.ReplaceAll(own.ReplaceAllString(out, ""), "\r", "")); u != "" {
		t.Errorf("%s reached the terminal:\n%q", u, out)
	}
	if !strings.Contains(ansi.Strip(out), "✓ [1/1] upgrade") {
		t.Errorf("no step line:\n%s", out)
	}
}
