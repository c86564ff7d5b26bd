package e2e

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// openPTY opens a pseudo-terminal pair with the kernel's own calls
// (posix_openpt, unlockpt, ptsname).
func openPTY(t *testing.T) (master, slave *os.File) {
	t.Helper()
	m, err := os.OpenFile("/dev/ptmx", os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := unix.IoctlSetPointerInt(int(m.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		t.Fatal(err)
	}
	n, err := unix.IoctlGetInt(int(m.Fd()), unix.TIOCGPTN)
	if err != nil {
		t.Fatal(err)
	}
	s, err := os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = m.Close(); _ = s.Close() })
	return m, s
}

// ttyRun is hoctl started with a pseudo-terminal as its controlling
// terminal (its own session) while stdin is /dev/null and stdout and
// stderr are pipes, as in `hoctl … 2>&1 | tee run.log`.
type ttyRun struct {
	cmd    *exec.Cmd
	master *os.File
	out    bytes.Buffer // stdout and stderr, as tee would get them

	mu     sync.Mutex
	screen bytes.Buffer // what the terminal shows
}

func startOnTTY(t *testing.T, env []string, args ...string) *ttyRun {
	t.Helper()
	return startOnTTYIn(t, "", env, args...)
}

// startOnTTYIn is startOnTTY in working directory dir ("": this one).
func startOnTTYIn(t *testing.T, dir string, env []string, args ...string) *ttyRun {
	t.Helper()
	master, slave := openPTY(t)
	r := &ttyRun{master: master}
	r.cmd = exec.Command(hoctlBin, args...)
	r.cmd.Dir = dir
	r.cmd.Env = append(append(os.Environ(), "HOCTL_INVENTORY="+fleet.Inventory, "NO_COLOR=1"), env...)
	r.cmd.Stdout, r.cmd.Stderr = &r.out, &r.out
	r.cmd.ExtraFiles = []*os.File{slave} // fd 3
	r.cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true, Ctty: 3}
	if err := r.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = r.cmd.Process.Kill(); _ = r.cmd.Wait() })
	go func() {
		buf := make([]byte, 4096)
		for {
			n, err := master.Read(buf)
			r.mu.Lock()
			r.screen.Write(buf[:n])
			r.mu.Unlock()
			if err != nil {
				return
			}
		}
	}()
	return r
}

// waitScreen waits until the terminal shows s.
func (r *ttyRun) waitScreen(t *testing.T, s string) {
	t.Helper()
	var got string
	if !waitEvery(t, 20*time.Millisecond, 60*time.Second, fmt.Sprintf("the terminal to show %q", s), func() error {
		r.mu.Lock()
		got = r.screen.String()
		r.mu.Unlock()
		if !strings.Contains(got, s) {
			return errNotYet
		}
		return nil
	}) {
		t.Fatalf("the terminal never showed %q:\n%s\noutput:\n%s", s, got, r.out.String())
	}
}

func (r *ttyRun) exitCode(t *testing.T) int {
	t.Helper()
	err := r.cmd.Wait()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode()
	}
	if err != nil {
		t.Fatal(err)
	}
	return 0
}

// The confirmation is asked and read on the terminal, not on stdin or
// stderr: with both output streams piped (tee) the operator can still
// answer. y runs, n exits 6, Ctrl-C exits 130 at once; none of the last
// two changes anything or journals a run.
func TestConfirmationOnTheTerminal(t *testing.T) {
	marker := t.TempDir() + "/made"
	rb := writeRunbook(t, fmt.Sprintf("name: ask\nsteps:\n  - {title: touch, run: 'touch %s'}\n", marker))
	for _, c := range []struct {
		answer string
		code   int
	}{{"\x03", 130}, {"n\n", 6}, {"y\n", 0}} {
		env := stateEnv(t)
		r := startOnTTY(t, env, "runbook", "run", rb)
		r.waitScreen(t, "Run 1 step(s) on 1 host(s)? [y/N]")
		if _, err := r.master.Write([]byte(c.answer)); err != nil {
			t.Fatal(err)
		}
		if code := r.exitCode(t); code != c.code {
			t.Fatalf("answer %q: exit %d, want %d\n%s", c.answer, code, c.code, r.out.String())
		}
		if strings.Contains(r.out.String(), "[y/N]") {
			t.Fatalf("answer %q: the question went to the piped output:\n%s", c.answer, r.out.String())
		}
		_, err := os.Stat(marker)
		if ran := err == nil; ran != (c.code == 0) {
			t.Fatalf("answer %q: ran = %v\n%s", c.answer, ran, r.out.String())
		}
		h := hoctlEnv(t, fleet.Inventory, env, "--json", "history")
		if journaled := strings.TrimSpace(h.stdout) != ""; journaled != (c.code == 0) {
			t.Fatalf("answer %q: journaled = %v: %s", c.answer, journaled, h.stdout)
		}
	}
}
