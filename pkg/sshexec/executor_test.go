package sshexec

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
)

func TestExecutorRunsCommandsInOneSession(t *testing.T) {
	e := newEnv(t)
	s := e.server()
	p := pool(t)
	tg := e.target("h", s)
	for i := range 20 {
		res, err := run(t, p, tg, Cmd{Script: fmt.Sprintf("echo %d", i)})
		if err != nil || string(res.Stdout) != fmt.Sprintf("%d\n", i) {
			t.Fatalf("command %d: %q %v", i, res.Stdout, err)
		}
	}
	if n := s.Execs.Load(); n != 2 {
		t.Fatalf("20 commands took %d sessions, want 2 (the first command's and the executor)", n)
	}
}

func TestExecutorKeepsCommandsApart(t *testing.T) {
	e := newEnv(t)
	s := e.server()
	p := pool(t)
	tg := e.target("h", s)
	cases := []struct {
		script, stdout, stderr string
		code                   int
	}{
		{"printf 'no newline'", "no newline", "", 0},
		{"printf 'a\\nb'; printf 'e1' >&2; exit 4", "a\nb", "e1", 4},
		{"export LEAK=1; cd /tmp", "", "", 0},
		{"echo \"[$LEAK]\"; pwd | grep -qv '^/tmp$' && echo home", "[]\nhome\n", "", 0},
		{"exec echo replaced", "replaced\n", "", 0},
		{"read x; echo \"read [$x] $?\"", "read [] 1\n", "", 0},
		{"cat <<'EOF'\nline one\n  indented $HOME\nEOF", "line one\n  indented $HOME\n", "", 0},
		{"sleep 5 >/dev/null 2>&1 & echo bg", "bg\n", "", 0},
		{"printf '%s' hoctl-", "hoctl-", "", 0},
	}
	for _, c := range cases {
		res, err := run(t, p, tg, Cmd{Script: c.script})
		var ee *ExitError
		if c.code != 0 && (!errors.As(err, &ee) || ee.Code != c.code) {
			t.Errorf("%q: err %v, want exit %d", c.script, err, c.code)
		}
		if c.code == 0 && err != nil {
			t.Errorf("%q: %v", c.script, err)
			continue
		}
		if string(res.Stdout) != c.stdout || string(res.Stderr) != c.stderr {
			t.Errorf("%q: stdout %q stderr %q, want %q %q", c.script, res.Stdout, res.Stderr, c.stdout, c.stderr)
		}
	}
	if n := s.Execs.Load(); n != 2 {
		t.Errorf("sessions used: %d", n)
	}
}

func TestExecutorReplacedAfterCancel(t *testing.T) {
	e := newEnv(t)
	s := e.server()
	p := pool(t)
	tg := e.target("h", s)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	r, _ := p.Runner(context.Background(), tg)
	if _, err := r.Run(context.Background(), Cmd{Script: "true"}); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Run(ctx, Cmd{Script: "sleep 3"}); !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v", err)
	}
	res, err := r.Run(context.Background(), Cmd{Script: "echo after"})
	if err != nil || string(res.Stdout) != "after\n" {
		t.Fatalf("after a cancelled command: %q %v", res.Stdout, err)
	}
}

// A forced command (authorized_keys command="...") never starts the
// executor: hoctl falls back to a session per command, at once.
func TestForcedCommandFallsBackToSessions(t *testing.T) {
	e := newEnv(t)
	s := e.server()
	s.ForcedCommand.Store("echo forced")
	p := pool(t)
	tg := e.target("h", s)
	for range 3 {
		res, err := run(t, p, tg, Cmd{Script: "echo asked"})
		if err != nil || strings.TrimSpace(string(res.Stdout)) != "forced" {
			t.Fatalf("%q %v", res.Stdout, err)
		}
	}
	if n := s.Execs.Load(); n != 4 {
		t.Fatalf("execs = %d, want a session for the first command, the executor that never starts, then a session per command", n)
	}
}

// An executor that dies between commands (killed on the host, say) must
// not fail the next command or call the host unreachable.
func TestDeadExecutorBetweenCommandsFallsBack(t *testing.T) {
	e := newEnv(t)
	s := e.server()
	p := pool(t)
	tg := e.target("h", s)
	for _, c := range []string{"true", "echo warm"} {
		if _, err := run(t, p, tg, Cmd{Script: c}); err != nil {
			t.Fatal(err)
		}
	}
	// In a subshell $$ is still the executor's shell: this kills it while
	// the command itself completes.
	if _, err := run(t, p, tg, Cmd{Script: "kill -KILL $$"}); err != nil {
		t.Logf("the killing command itself: %v", err)
	}
	res, err := run(t, p, tg, Cmd{Script: "echo still"})
	if err != nil || string(res.Stdout) != "still\n" {
		t.Fatalf("after the executor died: %q %v", res.Stdout, err)
	}
}

func TestEagerPoolUsesExecutorFromFirstCommand(t *testing.T) {
	e := newEnv(t)
	s := e.server()
	p := NewPool(PoolOptions{EagerExecutor: true})
	t.Cleanup(func() { _ = p.Close() })
	tg := e.target("h", s)
	for range 5 {
		if _, err := run(t, p, tg, Cmd{Script: "true"}); err != nil {
			t.Fatal(err)
		}
	}
	if n := s.Execs.Load(); n != 1 {
		t.Fatalf("sessions: %d, want only the executor's", n)
	}
}
