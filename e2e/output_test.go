package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hoctl/hoctl/internal/lab"
)

// becomeInventory is the fleet's inventory with become: sudo.
func becomeInventory(t *testing.T) string {
	t.Helper()
	if _, err := lab.FindTool("sudo"); err != nil {
		t.Fatal("sudo is not installed (make deps installs it)")
	}
	data, err := os.ReadFile(fleet.Inventory)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "inventory.yaml")
	if err := os.WriteFile(p, bytes.Replace(data, []byte("become: none"), []byte("become: sudo"), 1), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// A secret reaches the command intact, and while the command runs no
// process on the host (sshd, the shell, sudo, the command) carries it in
// its argv; nor does the journal, history or --json, even when it was
// given with --var and when the command prints it.
func TestSecretsNeverInArgvJournalOrHistory(t *testing.T) {
	tag := fmt.Sprintf("%d", time.Now().UnixNano())
	token := "T0K" + tag // what any quoting of the secret still shows
	secret := "pa$$w0rd;`touch /tmp/pwned-" + tag + "` '\"" + token
	out := "/data/secret-" + tag
	rb := writeRunbook(t, fmt.Sprintf(`
name: secrets
secrets: {pw: HOCTL_E2E_PW}
steps:
  - {title: use it, hosts: h05, run: 'printf "%%s\n" {{.Vars.pw}} > %[1]s; sleep 2'}
  - {title: use it here, run: 'printf "%%s\n" {{.Vars.pw}} > %[1]s.local; sleep 2'}
  - {title: print it, hosts: h05, run: 'echo "got: "{{.Vars.pw}}; exit 3'}
`, out))
	defer func() { _ = os.Remove(out + ".local") }()
	for _, c := range []struct {
		name   string
		inv    string
		viaVar bool
	}{{"plain", fleet.Inventory, false}, {"sudo", becomeInventory(t), false}, {"var", fleet.Inventory, true}} {
		env := stateEnv(t)
		args := []string{"--yes", "runbook", "run", rb}
		if c.viaVar {
			args = append(args, "--var", "pw="+secret)
		} else {
			env = append(env, "HOCTL_E2E_PW="+secret)
		}
		cmd := exec.Command(hoctlBin, args...)
		cmd.Env = append(append(os.Environ(), "HOCTL_INVENTORY="+c.inv, "NO_COLOR=1", "SSH_AUTH_SOCK="), env...)
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		seen, polls := "", 0
		for running := true; running; {
			select {
			case err := <-done:
				var ee *exec.ExitError
				if err != nil && !errors.As(err, &ee) {
					t.Fatal(err)
				}
				running = false
			case <-time.After(50 * time.Millisecond):
				ps, _ := lab.ToolCmd(context.Background(), "ps", "-eo", "pid,args").Output()
				polls++
				for _, l := range strings.Split(string(ps), "\n") {
					// hoctl's own argv holds it with --var: the operator's
					// choice, on the workstation; the hosts' processes never.
					if strings.Contains(l, token) && !strings.Contains(l, fmt.Sprintf(" %d ", cmd.Process.Pid)) && !strings.HasPrefix(strings.TrimSpace(l), fmt.Sprint(cmd.Process.Pid)+" ") {
						seen = l
					}
				}
			}
		}
		if seen != "" {
			t.Fatalf("%s: the secret is in a process's argv: %s", c.name, seen)
		}
		if cmd.ProcessState.ExitCode() != 1 || polls < 3 {
			t.Fatalf("%s: exit %d after %d polls\n%s%s", c.name, cmd.ProcessState.ExitCode(), polls, stdout.String(), stderr.String())
		}
		if got := onHosts(t, "h05", "cat "+out); got != "h05 | "+secret+"\n" {
			t.Fatalf("%s: the command got %q, want %q", c.name, got, secret)
		}
		if got, _ := os.ReadFile(out + ".local"); string(got) != secret+"\n" {
			t.Fatalf("%s: the local command got %q", c.name, got)
		}
		if _, err := os.Stat("/tmp/pwned-" + tag); err == nil {
			t.Fatalf("%s: the secret's backquotes ran a command", c.name)
		}
		views := stdout.String() + stderr.String()
		journals, _ := filepath.Glob(filepath.Join(strings.TrimPrefix(env[0], "XDG_STATE_HOME="), "hoctl", "runs", "*.jsonl"))
		if len(journals) != 1 {
			t.Fatalf("%s: journals %v", c.name, journals)
		}
		j, _ := os.ReadFile(journals[0])
		id := strings.TrimSuffix(filepath.Base(journals[0]), ".jsonl")
		views += string(j)
		for _, a := range [][]string{{"history"}, {"history", id}, {"--json", "history"}, {"--json", "history", id}} {
			r := hoctlEnv(t, c.inv, env, a...)
			views += r.stdout + r.stderr
		}
		if strings.Contains(views, "T0K") || strings.Contains(views, "w0rd") {
			t.Fatalf("%s: the secret leaked:\n%s", c.name, views)
		}
		if !strings.Contains(string(j), `got: ***`) || !strings.Contains(string(j), `$HOCTL_SECRET_pw`) {
			t.Fatalf("%s: the journal lacks the reference or the redacted output:\n%s", c.name, j)
		}
	}
	onHosts(t, "h05", "rm -f "+out)
}

// A host printing far more than is kept costs hoctl bounded memory, and
// the journal and --json keep the head and tail with a marker saying how
// much was dropped. Memory is read from the kernel (peak RSS), not time.
func TestHugeOutputIsBoundedInJournalAndJSON(t *testing.T) {
	const size = 300 << 20
	env := stateEnv(t)
	rb := writeRunbook(t, fmt.Sprintf("name: big\nsteps:\n  - {title: flood, hosts: h06, run: 'echo FIRST-LINE; head -c %d /dev/zero | tr \"\\\\0\" x; echo; echo LAST-LINE; exit 4'}\n", size))
	r := hoctlEnv(t, fleet.Inventory, env, "--yes", "runbook", "run", rb)
	if r.code != 1 {
		t.Fatalf("exit %d\n%s", r.code, r.stderr)
	}
	journals, _ := filepath.Glob(filepath.Join(strings.TrimPrefix(env[0], "XDG_STATE_HOME="), "hoctl", "runs", "*.jsonl"))
	if len(journals) != 1 {
		t.Fatalf("journals %v", journals)
	}
	j, _ := os.ReadFile(journals[0])
	if len(j) > 100<<10 {
		t.Fatalf("journal is %d bytes", len(j))
	}
	var action struct {
		Output string `json:"output"`
	}
	for _, l := range strings.Split(string(j), "\n") {
		if strings.Contains(l, `"event":"action"`) {
			_ = json.Unmarshal([]byte(l), &action)
		}
	}
	if !strings.HasPrefix(action.Output, "FIRST-LINE") || !strings.HasSuffix(action.Output, "LAST-LINE") || !strings.Contains(action.Output, "bytes of output dropped here") {
		t.Fatalf("journal output: %.300q … %.300q", action.Output, action.Output[max(0, len(action.Output)-300):])
	}

	cmd := exec.Command(hoctlBin, "--json", "run", "h06", "--", fmt.Sprintf("echo FIRST; head -c %d /dev/zero | tr '\\0' y; echo; echo LAST", size))
	cmd.Env = append(os.Environ(), "HOCTL_INVENTORY="+fleet.Inventory, "NO_COLOR=1", "SSH_AUTH_SOCK=")
	var stdout bytes.Buffer
	cmd.Stdout = &stdout
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	var ev struct {
		Stdout string `json:"stdout"`
	}
	if err := json.Unmarshal(stdout.Bytes(), &ev); err != nil {
		t.Fatal(err)
	}
	if len(ev.Stdout) > 1<<20 || !strings.HasPrefix(ev.Stdout, "FIRST\n") || !strings.HasSuffix(ev.Stdout, "\nLAST\n") ||
		!strings.Contains(ev.Stdout, fmt.Sprintf("[hoctl: %d bytes of output dropped here]", size+len("FIRST\n\nLAST\n")-(256<<10))) {
		t.Fatalf("--json stdout: %d bytes, %.200q", len(ev.Stdout), ev.Stdout)
	}
	if rss := cmd.ProcessState.SysUsage().(*syscall.Rusage).Maxrss; rss > 100<<10 { // KiB
		t.Fatalf("peak RSS %d KiB while a host printed %d MiB", rss, size>>20)
	}
}

// Terminal control sequences in hosts' output are shown as text on the
// screen (run, a runbook's failure view, history) and kept as bytes in
// --json.
func TestTerminalSequencesFromHostsAreDefused(t *testing.T) {
	seq := `printf 'A\033]0;TITLE\007B\033]52;c;Zm9v\007C\033[2JD\302\233E\n'`
	for _, group := range []bool{false, true} {
		args := []string{"run", "h07", "--", seq}
		if group {
			args = []string{"run", "--group", "h07", "--", seq}
		}
		r := hoctl(t, fleet.Inventory, args...)
		if r.code != 0 || strings.ContainsAny(r.stdout+r.stderr, "\x1b\x07") || strings.Contains(r.stdout, "\u009b") ||
			!strings.Contains(r.stdout, `A\x1b]0;TITLE\x07B\x1b]52;c;Zm9v\x07C\x1b[2JD\u009bE`) {
			t.Fatalf("group=%v: exit %d %q %q", group, r.code, r.stdout, r.stderr)
		}
	}
	r := hoctl(t, fleet.Inventory, "--json", "run", "h07", "--", seq)
	if !strings.Contains(r.stdout, `A\u001b]0;TITLE\u0007B\u001b]52;c;Zm9v\u0007C\u001b[2JD`) {
		t.Fatalf("--json: %q", r.stdout)
	}
	env := stateEnv(t)
	rb := writeRunbook(t, "name: esc\nsteps:\n  - {title: t, hosts: h07, run: \""+strings.ReplaceAll(seq, `\`, `\\`)+"; exit 1\"}\n")
	r = hoctlEnv(t, fleet.Inventory, env, "--yes", "runbook", "run", rb)
	if r.code != 1 || strings.ContainsAny(r.stdout+r.stderr, "\x1b\x07") || !strings.Contains(r.stderr, `\x1b]0;TITLE`) {
		t.Fatalf("runbook: exit %d %q %q", r.code, r.stdout, r.stderr)
	}
	journals, _ := filepath.Glob(filepath.Join(strings.TrimPrefix(env[0], "XDG_STATE_HOME="), "hoctl", "runs", "*.jsonl"))
	if len(journals) != 1 {
		t.Fatalf("journals %v", journals)
	}
	id := strings.TrimSuffix(filepath.Base(journals[0]), ".jsonl")
	h := hoctlEnv(t, fleet.Inventory, env, "history", id)
	if strings.ContainsAny(h.stdout, "\x1b\x07") || !strings.Contains(h.stdout, `\x1b]52;c;Zm9v`) {
		t.Fatalf("history: %q", h.stdout)
	}
	if j := hoctlEnv(t, fleet.Inventory, env, "--json", "history", id); !strings.Contains(j.stdout, `\u001b]52;c;Zm9v`) {
		t.Fatalf("--json history: %q", j.stdout)
	}
}
