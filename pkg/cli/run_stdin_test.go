package cli

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hoctl/hoctl/internal/sshtest"
	"github.com/hoctl/hoctl/pkg/iostreams"
	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

// sshHarness is the real command tree over real SSH: an in-process SSH
// server per host (c1, c2), hoctl's own connector, no fakes.
type sshHarness struct {
	f        *Factory
	in       *bytes.Buffer
	out, err *strings.Builder
	servers  map[string]*sshtest.Server
}

func newSSHHarness(t *testing.T, hosts ...string) *sshHarness {
	t.Helper()
	return newSSHHarnessWith(t, "connect_timeout: 5s", hosts...)
}

// newSSHHarnessWith is newSSHHarness with more inventory defaults (YAML
// flow fields, "connect_timeout: 1s, keepalive: 10s").
func newSSHHarnessWith(t *testing.T, defaults string, hosts ...string) *sshHarness {
	t.Helper()
	dir := t.TempDir()
	client, keyFile := sshtest.NewKey(t, dir, "id_ed25519")
	kh := filepath.Join(dir, "known_hosts")
	var inv, khLines strings.Builder
	fmt.Fprintf(&inv, "defaults: {identity_files: [%s], known_hosts: %s, host_key_policy: strict, %s}\nhosts:\n", keyFile, kh, defaults)
	servers := map[string]*sshtest.Server{}
	for _, h := range hosts {
		_, priv, _ := ed25519.GenerateKey(nil)
		hostKey, err := ssh.NewSignerFromKey(priv)
		if err != nil {
			t.Fatal(err)
		}
		s := sshtest.Start(t, hostKey, client.PublicKey())
		servers[h] = s
		fmt.Fprintf(&inv, "  %s: {address: %s, port: %d}\n", h, s.Host, s.Port)
		fmt.Fprintln(&khLines, knownhosts.Line([]string{knownhosts.Normalize(s.Addr)}, hostKey.PublicKey()))
	}
	if err := os.WriteFile(kh, []byte(khLines.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "inventory.yaml")
	if err := os.WriteFile(path, []byte(inv.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	ios, in, _, _ := iostreams.Test()
	out, errOut := &strings.Builder{}, &strings.Builder{}
	ios.Out, ios.ErrOut = &syncWriter{w: out}, &syncWriter{w: errOut}
	env := map[string]string{"HOCTL_INVENTORY": path}
	f := &Factory{IO: ios, Version: "test", Getenv: func(k string) string { return env[k] }}
	return &sshHarness{f: f, in: in, out: out, err: errOut, servers: servers}
}

// exec runs a command line as Main does, error printing included.
func (h *sshHarness) exec(args ...string) int {
	return Run(context.Background(), h.f, args)
}

// `hoctl run c1,c2 -- sh -s < fix.sh` runs fix.sh on both hosts, as ssh
// and clush do; before, stdin was dropped, nothing ran, and the summary
// said every host exited 0.
func TestRunSendsStdinToEveryHost(t *testing.T) {
	h := newSSHHarness(t, "c1", "c2")
	// The hosts' temporary directory: the input is staged there.
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp)
	h.in.WriteString("echo fixed-by-script\nexit 7\n")
	if code := h.exec("run", "c1,c2", "--", "sh", "-s"); code != ExitFailed {
		t.Fatalf("exit %d, want 1 (the script exits 7)\nstdout:\n%s\nstderr:\n%s", code, h.out, h.err)
	}
	for _, host := range []string{"c1", "c2"} {
		if !strings.Contains(h.out.String(), host+" | fixed-by-script\n") {
			t.Errorf("%s did not run the script from stdin:\n%s", host, h.out)
		}
	}
	if !strings.Contains(h.err.String(), "0/2 hosts exited 0 (given 28 B of stdin); 2 failed") {
		t.Errorf("summary:\n%s", h.err)
	}
	if left, _ := os.ReadDir(tmp); len(left) != 0 {
		t.Errorf("staged input left on the host: %v", left)
	}
}

// Input much larger than an SSH channel's window reaches every host
// whole, in order.
func TestRunStdinLargeArrivesWhole(t *testing.T) {
	h := newSSHHarness(t, "c1", "c2")
	data := bytes.Repeat([]byte("0123456789abcdef"), 1<<16) // 1 MiB
	h.in.Write(data)
	if code := h.exec("--json", "run", "c1,c2", "--", "sha256sum"); code != 0 {
		t.Fatalf("exit %d\n%s\n%s", code, h.out, h.err)
	}
	want := fmt.Sprintf("%x", sha256Sum(data))
	if n := strings.Count(h.out.String(), want); n != 2 {
		t.Fatalf("%d hosts got the input whole, want 2:\n%s", n, h.out)
	}
}

// -n sends nothing: the command reads /dev/null, as with ssh -n.
func TestRunNoStdin(t *testing.T) {
	for _, flag := range []string{"-n", "--no-stdin"} {
		h := newSSHHarness(t, "c1")
		h.in.WriteString("must not arrive\n")
		if code := h.exec("run", flag, "c1", "--", "sh", "-c", "cat; echo end"); code != 0 {
			t.Fatalf("%s: exit %d\n%s", flag, code, h.err)
		}
		if got := h.out.String(); got != "c1 | end\n" {
			t.Fatalf("%s: %q", flag, got)
		}
		if strings.Contains(h.err.String(), "stdin") {
			t.Fatalf("%s: summary mentions stdin: %s", flag, h.err)
		}
	}
}

// A terminal on stdin is not read: nothing blocks waiting for typing that
// no host would see (ssh -n semantics).
func TestRunDoesNotReadATerminal(t *testing.T) {
	h := newSSHHarness(t, "c1")
	h.f.IO.In = failReader{t}
	h.f.IO.SetTTY(true, false, false)
	if code := h.exec("run", "c1", "--", "sh", "-c", "cat; echo end"); code != 0 {
		t.Fatalf("exit %d\n%s", code, h.err)
	}
	if got := h.out.String(); got != "c1 | end\n" {
		t.Fatalf("%q", got)
	}
}

type failReader struct{ t *testing.T }

func (r failReader) Read([]byte) (int, error) {
	r.t.Error("stdin read while it is a terminal")
	return 0, io.EOF
}

// More than RunStdinMax is refused before anything runs: a script cut
// short must never run.
func TestRunStdinTooLargeRunsNothing(t *testing.T) {
	h := newSSHHarness(t, "c1")
	h.in.Write(make([]byte, RunStdinMax+1))
	if code := h.exec("run", "c1", "--", "sh", "-s"); code != ExitUsage {
		t.Fatalf("exit %d, want 2\n%s", code, h.err)
	}
	if !strings.Contains(h.err.String(), "standard input is larger than 16.0 MiB") || !strings.Contains(h.err.String(), "nothing was run") {
		t.Fatalf("stderr:\n%s", h.err)
	}
	if n := h.servers["c1"].Execs.Load(); n != 0 {
		t.Fatalf("%d commands ran", n)
	}
}

// A pipe that does not end yet: hoctl says what it waits for, and sends
// what came once it ends.
func TestRunSaysItWaitsForStdin(t *testing.T) {
	h := newSSHHarness(t, "c1")
	pr, pw := io.Pipe()
	h.f.IO.In = pr
	done := make(chan int, 1)
	go func() { done <- h.exec("run", "c1", "--", "cat") }()
	errOut := h.f.IO.ErrOut.(*syncWriter) // the command writes it meanwhile
	waitFor(t, func() bool { return strings.Contains(errOut.String(), "reading standard input to send to every host") })
	_, _ = io.WriteString(pw, "late line\n")
	_ = pw.Close()
	if code := <-done; code != 0 {
		t.Fatalf("exit %d\n%s", code, h.err)
	}
	if got := h.out.String(); got != "c1 | late line\n" {
		t.Fatalf("%q", got)
	}
}

// The dry run says how much input each host would get.
func TestRunDryRunShowsStdin(t *testing.T) {
	h := newSSHHarness(t, "c1")
	h.in.WriteString("echo hi\n")
	if code := h.exec("run", "--dry-run", "c1", "--", "sh", "-s"); code != 0 {
		t.Fatalf("exit %d\n%s", code, h.err)
	}
	if !strings.Contains(h.out.String(), "stdin   8 B, the same to every host") {
		t.Fatalf("%s", h.out)
	}
	if n := h.servers["c1"].Execs.Load(); n != 0 {
		t.Fatalf("%d commands ran", n)
	}
}

func sha256Sum(b []byte) [32]byte { return sha256.Sum256(b) }

// waitFor polls cond until it holds, failing the test after a minute.
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition never held")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// A host the input cannot be staged on runs nothing and says why.
func TestRunStdinNotStagedRunsNothing(t *testing.T) {
	h := newSSHHarness(t, "c1")
	t.Setenv("TMPDIR", filepath.Join(t.TempDir(), "missing"))
	ran := filepath.Join(t.TempDir(), "ran")
	h.in.WriteString("touch " + ran + "\n")
	if code := h.exec("run", "c1", "--", "sh", "-s"); code != ExitFailed {
		t.Fatalf("exit %d\n%s", code, h.err)
	}
	if !strings.Contains(h.err.String(), "\n  c1: standard input not sent, the command did not run: command exited 1: mktemp: ") {
		t.Fatalf("stderr:\n%s", h.err)
	}
	if _, err := os.Stat(ran); err == nil {
		t.Fatal("the command ran")
	}
}
