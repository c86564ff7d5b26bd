package cli

import (
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"

	"github.com/charmbracelet/x/ansi"
	"github.com/hoctl/hoctl/internal/ptytest"
	"github.com/hoctl/hoctl/pkg/iostreams"
	"github.com/hoctl/hoctl/pkg/sshexec"
)

var reSGR = regexp.MustCompile(`\x1b\[[0-9;]*m`)

// onPTY gives the harness's command a real pseudo-terminal for stdin,
// stdout and stderr, with the environment env, and returns it; read what
// was written with Output after the command ran.
func (h *harness) onPTY(t *testing.T, env map[string]string) *ptytest.PTY {
	t.Helper()
	p, err := ptytest.Open(120, 40)
	if err != nil {
		t.Skipf("no pseudo-terminal: %v", err)
	}
	t.Cleanup(func() { _ = p.Close() })
	getenv := h.f.Getenv
	h.f.Getenv = func(k string) string {
		if v, ok := env[k]; ok {
			return v
		}
		return getenv(k)
	}
	h.f.IO = iostreams.FromFiles(p.Slave, p.Slave, p.Slave, h.f.Getenv)
	return p
}

func TestPingColumnsAlignOnAColourTerminal(t *testing.T) {
	h := newHarness(t)
	h.conn.down["c2"] = sshexec.ReasonRefused
	p := h.onPTY(t, map[string]string{"TERM": "xterm-256color"})
	if code := h.runLine("ping", "all"); code != ExitUnreachable {
		t.Fatalf("exit %d", code)
	}
	out := p.Output()
	if !strings.Contains(out, "\x1b[") {
		t.Fatalf("no colour on a terminal:\n%q", out)
	}
	// The second column (hostname, or the reason) starts at one column on
	// every host's line, whatever colour codes precede it.
	want := map[string]string{"zippy": "zippy", "c1": "c1", "c2": "CONNECTION", "fractal": "fractal"}
	col := -1
	for _, l := range strings.Split(out, "\n") {
		f := strings.Fields(ansi.Strip(l))
		if len(f) < 3 {
			continue
		}
		second, ok := want[f[1]]
		if !ok {
			continue
		}
		plain := ansi.Strip(l)
		rest := strings.TrimLeft(plain[strings.Index(plain, f[1])+len(f[1]):], " ")
		at := ansi.StringWidth(plain) - ansi.StringWidth(rest)
		if !strings.HasPrefix(rest, second) {
			t.Fatalf("line %q: second column is not %q", plain, second)
		}
		if col == -1 {
			col = at
		} else if at != col {
			t.Errorf("misaligned: column 2 at %d, want %d:\n%s", at, col, ansi.Strip(out))
		}
	}
	if col == -1 {
		t.Fatalf("no host lines:\n%s", out)
	}
}

func TestHostsBoxOnlyOnATerminalThatDrawsIt(t *testing.T) {
	for _, c := range []struct {
		term string
		box  bool
	}{{"xterm-256color", true}, {"dumb", false}} {
		h := newHarness(t)
		p := h.onPTY(t, map[string]string{"TERM": c.term})
		if code := h.runLine("hosts"); code != 0 {
			t.Fatalf("exit %d", code)
		}
		out := p.Output()
		if strings.ContainsAny(out, "╭│─") != c.box {
			t.Errorf("TERM=%s: box drawing %v wanted:\n%s", c.term, c.box, out)
		}
		if c.term == "dumb" && strings.Contains(out, "\x1b[") {
			t.Errorf("TERM=dumb: escape codes:\n%q", out)
		}
	}
}

func TestMigrateJobsDiffReadableOnATerminal(t *testing.T) {
	h := newHarness(t)
	dir := t.TempDir()
	job := "job \"web\" {\n  group \"g\" {\n    task \"t\" {\n      driver = \"docker\"\n      config {\n\t\timage = \"nginx\"\n        volumes = [\"/data/compute/web:/usr/share/nginx/html\"]\n      }\n    }\n  }\n}\n"
	if err := os.WriteFile(filepath.Join(dir, "web.hcl"), []byte(job), 0o600); err != nil {
		t.Fatal(err)
	}
	p := h.onPTY(t, map[string]string{"TERM": "xterm-256color"})
	if code := h.runLine("migrate-jobs", "--dir", dir, "--from", "/data/compute", "--to", "/data/services"); code != 0 {
		t.Fatalf("exit %d:\n%s", code, p.Output())
	}
	out := p.Output()
	var sawRemoved bool
	for _, l := range strings.Split(out, "\n") {
		plain := ansi.Strip(l)
		if strings.HasPrefix(plain, "-        volumes") {
			sawRemoved = true
			if !strings.HasPrefix(l, "\x1b[") {
				t.Errorf("removed line not coloured: %q", l)
			}
		}
		if strings.HasSuffix(plain, " ") && strings.TrimSpace(plain) != "" {
			t.Errorf("line padded with blanks: %q", plain)
		}
		// Every colour opened on a line is closed on it.
		if seqs := reSGR.FindAllString(l, -1); len(seqs) > 0 && seqs[len(seqs)-1] != "\x1b[0m" {
			t.Errorf("colour spans the newline: %q", l)
		}
	}
	if !sawRemoved {
		t.Fatalf("no diff:\n%s", ansi.Strip(out))
	}
	if !strings.Contains(out, "\t\timage") {
		t.Errorf("tab in the diff turned into spaces:\n%q", out)
	}
}

func TestInterruptedRunSaysSoOnce(t *testing.T) {
	h := newHarness(t)
	dir := t.TempDir()
	rb := filepath.Join(dir, "rb.yaml")
	if err := os.WriteFile(rb, []byte("name: t\nsteps:\n  - title: one\n    hosts: c1\n    run: sleep 1\n  - title: two\n    hosts: c1\n    run: 'true'\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	state := filepath.Join(dir, "state")
	getenv := h.f.Getenv
	h.f.Getenv = func(k string) string {
		if k == "XDG_STATE_HOME" {
			return state
		}
		return getenv(k)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	h.conn.handler = func(host string, c sshexec.Cmd) (string, string, int) {
		if strings.Contains(c.Line(), "sleep") {
			cancel()
		}
		return "", "", 0
	}
	h.f.Yes = true
	code := Run(ctx, h.f, []string{"--yes", "runbook", "run", rb})
	if code != ExitInterrupted {
		t.Fatalf("exit %d:\n%s", code, h.err)
	}
	if n := strings.Count(h.err.String(), "✗ interrupted"); n != 1 {
		t.Errorf("%q said %d times:\n%s", "✗ interrupted", n, h.err)
	}
}

// An inventory without NFS clients: --write refuses before printing the
// diff, and --write --allow-missing writes, with the unchecked paths
// noted in the plan.
func TestMigrateJobsWriteWithoutNFSClients(t *testing.T) {
	dir := t.TempDir()
	job := "job \"web\" {\n  group \"g\" {\n    task \"t\" {\n      driver = \"docker\"\n      config {\n        volumes = [\"/data/compute/web:/srv\"]\n      }\n    }\n  }\n}\n"
	path := filepath.Join(dir, "web.hcl")
	if err := os.WriteFile(path, []byte(job), 0o600); err != nil {
		t.Fatal(err)
	}
	state := t.TempDir()
	h := newHarness(t)
	getenv := h.f.Getenv
	h.f.Getenv = func(k string) string {
		if k == "XDG_STATE_HOME" {
			return state
		}
		return getenv(k)
	}
	args := []string{"--yes", "migrate-jobs", "--dir", dir, "--from", "/data/compute", "--to", "/data/services", "--write"}
	if code := h.runLine(args...); code != ExitUsage {
		t.Fatalf("--write without a client: exit %d\n%s", code, h.err)
	}
	if strings.Contains(h.out.String(), "+++") || !strings.Contains(h.err.String(), "--allow-missing") {
		t.Errorf("refusal after the diff, or without the way out:\nstdout:\n%s\nstderr:\n%s", h.out, h.err)
	}

	h = newHarness(t)
	h.f.Getenv = func(k string) string {
		if k == "XDG_STATE_HOME" {
			return state
		}
		return getenv(k)
	}
	if code := h.runLine(append(args, "--allow-missing")...); code != 0 {
		t.Fatalf("--write --allow-missing: exit %d\n%s", code, h.err)
	}
	got, _ := os.ReadFile(path)
	if !strings.Contains(string(got), "/data/services/web:/srv") {
		t.Fatalf("not written:\n%s", got)
	}
	if !strings.Contains(h.err.String(), "not checked") {
		t.Errorf("the unchecked paths are not said:\n%s", h.err)
	}
}

// status --watch on a terminal draws each frame over the last: the screen
// is cleared once, then every frame goes home, clears each line to its
// end and what is left below; no clear-screen flash per frame.
func TestStatusWatchRedrawsInPlace(t *testing.T) {
	h := newHarness(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var mu sync.Mutex
	rounds := 0
	h.conn.handler = func(host string, _ sshexec.Cmd) (string, string, int) {
		if host == "zippy" {
			mu.Lock()
			rounds++
			if rounds == 3 { // two frames drawn; stop during the third
				cancel()
			}
			mu.Unlock()
		}
		return "", "", 0
	}
	p := h.onPTY(t, map[string]string{"TERM": "xterm-256color"})
	code := Run(ctx, h.f, []string{"status", "--watch", "--interval", "1ms"})
	out := p.Output()
	if code != ExitInterrupted {
		t.Fatalf("exit %d:\n%q", code, out)
	}
	if n := strings.Count(out, "\x1b[2J"); n != 1 {
		t.Errorf("screen cleared %d times, want once:\n%q", n, out)
	}
	frames := strings.Split(out, "\x1b[H")[1:]
	if len(frames) != 2 {
		t.Fatalf("%d frames, want 2:\n%q", len(frames), out)
	}
	for _, fr := range frames {
		fr = strings.SplitN(fr, "\x1b[J", 2)[0]
		for _, l := range strings.Split(strings.TrimSuffix(fr, "\n"), "\n") {
			if !strings.HasSuffix(l, "\x1b[K") {
				t.Errorf("line not cleared to its end: %q", l)
			}
		}
	}
}

// TERM=dumb cannot move the cursor: --watch prints frame after frame.
func TestStatusWatchOnADumbTerminalAppends(t *testing.T) {
	h := newHarness(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var mu sync.Mutex
	rounds := 0
	h.conn.handler = func(host string, _ sshexec.Cmd) (string, string, int) {
		if host == "zippy" {
			mu.Lock()
			if rounds++; rounds == 2 {
				cancel()
			}
			mu.Unlock()
		}
		return "", "", 0
	}
	p := h.onPTY(t, map[string]string{"TERM": "dumb"})
	_ = Run(ctx, h.f, []string{"status", "--watch", "--interval", "1ms"})
	if out := p.Output(); strings.Contains(out, "\x1b[") || !strings.Contains(out, "consul") {
		t.Errorf("escape codes on TERM=dumb, or no status:\n%q", out)
	}
}
