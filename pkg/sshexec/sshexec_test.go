package sshexec

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hoctl/hoctl/internal/sshtest"
	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"
	"golang.org/x/crypto/ssh/knownhosts"
)

// env is a client key, a known_hosts file and helpers to build targets.
type env struct {
	t          *testing.T
	dir        string
	clientKey  ssh.Signer
	keyFile    string
	knownHosts string
}

func newEnv(t *testing.T) *env {
	t.Helper()
	dir := t.TempDir()
	signer, keyFile := sshtest.NewKey(t, dir, "id_ed25519")
	return &env{t: t, dir: dir, clientKey: signer, keyFile: keyFile, knownHosts: filepath.Join(dir, "known_hosts")}
}

func hostSigner(t *testing.T) ssh.Signer {
	t.Helper()
	_, priv, _ := ed25519.GenerateKey(nil)
	s, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// server starts a server for this env and records its key in known_hosts.
func (e *env) server() *sshtest.Server {
	e.t.Helper()
	s := sshtest.Start(e.t, hostSigner(e.t), e.clientKey.PublicKey())
	e.trust(s, s.HostKey.PublicKey())
	return s
}

func (e *env) trust(s *sshtest.Server, key ssh.PublicKey) {
	e.t.Helper()
	f, err := os.OpenFile(e.knownHosts, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o600)
	if err != nil {
		e.t.Fatal(err)
	}
	defer func() { _ = f.Close() }()
	fmt.Fprintln(f, knownhosts.Line([]string{knownhosts.Normalize(s.Addr)}, key))
}

func (e *env) target(name string, s *sshtest.Server) *Target {
	return &Target{
		Name: name, Address: s.Host, Port: s.Port, User: "root",
		IdentityFiles:  []string{e.keyFile},
		KnownHosts:     []string{e.knownHosts},
		HostKeyPolicy:  "strict",
		ConnectTimeout: 2 * time.Second,
		CommandTimeout: 30 * time.Second,
		// Generous: a loaded CI machine must not look like a dead host.
		Keepalive: 5 * time.Second,
		Become:    "none",
	}
}

func pool(t *testing.T) *Pool {
	p := NewPool(PoolOptions{})
	t.Cleanup(func() { _ = p.Close() })
	return p
}

func run(t *testing.T, p *Pool, tg *Target, c Cmd) (*Result, error) {
	t.Helper()
	r, err := p.Runner(context.Background(), tg)
	if err != nil {
		return nil, err
	}
	return r.Run(context.Background(), c)
}

func TestRunCapturesOutputAndExitCode(t *testing.T) {
	e := newEnv(t)
	s := e.server()
	p := pool(t)
	tg := e.target("h1", s)
	res, err := run(t, p, tg, Cmd{Script: "echo out; echo err >&2"})
	if err != nil {
		t.Fatal(err)
	}
	if string(res.Stdout) != "out\n" || string(res.Stderr) != "err\n" || res.ExitCode != 0 || res.Host != "h1" {
		t.Fatalf("res = %+v stdout=%q stderr=%q", res, res.Stdout, res.Stderr)
	}
	res, err = run(t, p, tg, Cmd{Script: "echo oops >&2; exit 7"})
	var ee *ExitError
	if !errors.As(err, &ee) || ee.Code != 7 || res.ExitCode != 7 || !strings.Contains(err.Error(), "oops") {
		t.Fatalf("err = %v, res = %+v", err, res)
	}
}

func TestArgvIsQuotedExactly(t *testing.T) {
	e := newEnv(t)
	s := e.server()
	p := pool(t)
	args := []string{"a b", "it's", `$HOME`, "`id`", "x;y", "", "*", "new\nline", `back\slash`}
	res, err := run(t, p, e.target("h", s), Cmd{Argv: append([]string{"printf", "[%s]\\n"}, args...)})
	if err != nil {
		t.Fatal(err)
	}
	var want strings.Builder
	for _, a := range args {
		fmt.Fprintf(&want, "[%s]\n", a)
	}
	if string(res.Stdout) != want.String() {
		t.Fatalf("got %q want %q", res.Stdout, want.String())
	}
}

func TestLargeOutputAndStdin(t *testing.T) {
	e := newEnv(t)
	s := e.server()
	p := pool(t)
	tg := e.target("h", s)
	// 16 MiB on both streams at once must not deadlock; what is kept is
	// bounded.
	res, err := run(t, p, tg, Cmd{Script: "head -c 16777216 /dev/zero; head -c 16777216 /dev/zero >&2"})
	if err != nil {
		t.Fatal(err)
	}
	want := CaptureHead + CaptureTail + len(TruncationMarker(16<<20-CaptureHead-CaptureTail))
	if len(res.Stdout) != want || len(res.Stderr) != want {
		t.Fatalf("stdout %d stderr %d, want %d", len(res.Stdout), len(res.Stderr), want)
	}
	data := make([]byte, 8<<20)
	_, _ = rand.Read(data)
	sum := sha256.Sum256(data)
	res, err = run(t, p, tg, Cmd{Argv: []string{"sha256sum"}, Stdin: bytes.NewReader(data)})
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Fields(string(res.Stdout))[0]; got != hex.EncodeToString(sum[:]) {
		t.Fatalf("sha256 over stdin = %s", got)
	}
}

func TestOneConnectionPerHostAndSessionCap(t *testing.T) {
	e := newEnv(t)
	s := e.server()
	p := pool(t)
	tg := e.target("h", s)
	var wg sync.WaitGroup
	errs := make(chan error, 40)
	for range 40 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r, err := p.Runner(context.Background(), tg)
			if err == nil {
				_, err = r.Run(context.Background(), Cmd{Script: "sleep 0.1"})
			}
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if n := s.Connections.Load(); n != 1 {
		t.Errorf("connections = %d, want 1", n)
	}
	if m := s.MaxConcurrent.Load(); m > MaxSessionsPerHost || m < 2 {
		t.Errorf("max concurrent sessions = %d, want 2..%d", m, MaxSessionsPerHost)
	}
}

func TestAuthFailure(t *testing.T) {
	e := newEnv(t)
	other := sshtest.Start(t, hostSigner(t), hostSigner(t).PublicKey()) // does not know our key
	e.trust(other, other.HostKey.PublicKey())
	_, err := run(t, pool(t), e.target("h", other), Cmd{Script: "true"})
	var ce *ConnError
	if !errors.As(err, &ce) || ce.Reason != ReasonAuth {
		t.Fatalf("err = %v, want auth failed", err)
	}
}

func TestEncryptedKeyWithoutAgentNamesFile(t *testing.T) {
	e := newEnv(t)
	s := e.server()
	_, priv, _ := ed25519.GenerateKey(nil)
	block, err := ssh.MarshalPrivateKeyWithPassphrase(priv, "", []byte("secret"))
	if err != nil {
		t.Fatal(err)
	}
	enc := filepath.Join(e.dir, "id_encrypted")
	if err := os.WriteFile(enc, pem.EncodeToMemory(block), 0o600); err != nil {
		t.Fatal(err)
	}
	tg := e.target("h", s)
	tg.IdentityFiles = []string{enc}
	_, err = run(t, pool(t), tg, Cmd{Script: "true"})
	var ce *ConnError
	if !errors.As(err, &ce) || ce.Reason != ReasonKey || !strings.Contains(err.Error(), enc) || !strings.Contains(err.Error(), "encrypted") {
		t.Fatalf("err = %v", err)
	}
}

func TestAgentIsUsed(t *testing.T) {
	e := newEnv(t)
	s := e.server()
	_, priv, _ := ed25519.GenerateKey(nil)
	kr := agent.NewKeyring()
	if err := kr.Add(agent.AddedKey{PrivateKey: priv}); err != nil {
		t.Fatal(err)
	}
	agentSigner, _ := ssh.NewSignerFromKey(priv)
	// A server that only knows the agent's key.
	s2 := sshtest.Start(t, hostSigner(t), agentSigner.PublicKey())
	e.trust(s2, s2.HostKey.PublicKey())
	sock := filepath.Join(e.dir, "agent.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { _ = agent.ServeAgent(kr, c) }()
		}
	}()
	p := NewPool(PoolOptions{AgentSocket: sock})
	defer func() { _ = p.Close() }()
	tg := e.target("h", s2)
	tg.IdentityFiles = []string{filepath.Join(e.dir, "missing")}
	if _, err := run(t, p, tg, Cmd{Script: "true"}); err != nil {
		t.Fatal(err)
	}
	_ = s
}

func TestHostKeyUnknownStrictRefusesAcceptNewAppends(t *testing.T) {
	e := newEnv(t)
	s := sshtest.Start(t, hostSigner(t), e.clientKey.PublicKey())
	tg := e.target("h", s)
	_, err := run(t, pool(t), tg, Cmd{Script: "true"})
	var ce *ConnError
	if !errors.As(err, &ce) || ce.Reason != ReasonHostKeyUnknown {
		t.Fatalf("strict, unknown host: err = %v", err)
	}
	tg.HostKeyPolicy = "accept-new"
	if _, err := run(t, pool(t), tg, Cmd{Script: "true"}); err != nil {
		t.Fatalf("accept-new: %v", err)
	}
	data, _ := os.ReadFile(e.knownHosts)
	if !strings.Contains(string(data), knownhosts.Normalize(s.Addr)) {
		t.Fatalf("known_hosts not appended: %q", data)
	}
	tg.HostKeyPolicy = "strict"
	if _, err := run(t, pool(t), tg, Cmd{Script: "true"}); err != nil {
		t.Fatalf("strict after accept-new: %v", err)
	}
}

func TestHostKeyChangedShowsBothFingerprints(t *testing.T) {
	e := newEnv(t)
	s := sshtest.Start(t, hostSigner(t), e.clientKey.PublicKey())
	old := hostSigner(t).PublicKey()
	e.trust(s, old)
	for _, policy := range []string{"strict", "accept-new"} {
		tg := e.target("h", s)
		tg.HostKeyPolicy = policy
		_, err := run(t, pool(t), tg, Cmd{Script: "true"})
		var ce *ConnError
		if !errors.As(err, &ce) || ce.Reason != ReasonHostKeyChanged {
			t.Fatalf("%s: err = %v", policy, err)
		}
		msg := err.Error()
		if !strings.Contains(msg, ssh.FingerprintSHA256(old)) || !strings.Contains(msg, ssh.FingerprintSHA256(s.HostKey.PublicKey())) {
			t.Fatalf("%s: message lacks a fingerprint: %s", policy, msg)
		}
	}
}

// A server with RSA and ed25519 host keys, known_hosts holding only the
// ed25519 one (what OpenSSH stores by default). Go's client prefers RSA
// when left alone, sees a key that is not on file and calls it changed;
// hoctl must ask for the stored type instead. Both directions are checked.
func TestNegotiatesStoredHostKeyType(t *testing.T) {
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	rsaSigner, _ := ssh.NewSignerFromKey(rsaKey)
	edSigner := hostSigner(t)
	for name, stored := range map[string]ssh.Signer{"ed25519 on file": edSigner, "rsa on file": rsaSigner} {
		e := newEnv(t)
		s := sshtest.StartWithHostKeys(t, []ssh.Signer{rsaSigner, edSigner}, e.clientKey.PublicKey())
		e.trust(s, stored.PublicKey())
		if _, err := run(t, pool(t), e.target("h", s), Cmd{Script: "true"}); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
	}
}

func TestJumpHostVerifiedAtEveryHop(t *testing.T) {
	e := newEnv(t)
	bastion := e.server()
	inner := e.server()
	tg := e.target("inner", inner)
	tg.Jump = e.target("bastion", bastion)
	res, err := run(t, pool(t), tg, Cmd{Script: "echo via"})
	if err != nil || string(res.Stdout) != "via\n" {
		t.Fatalf("res=%v err=%v", res, err)
	}
	if got, _ := bastion.ForwardedTo.Load().(string); got != inner.Addr {
		t.Fatalf("bastion forwarded to %q, want %q", got, inner.Addr)
	}
	// The inner host's key is checked too, though it is reached through
	// a trusted bastion.
	e2 := newEnv(t)
	e2.clientKey, e2.keyFile = e.clientKey, e.keyFile
	e2.trust(bastion, bastion.HostKey.PublicKey())
	e2.trust(inner, hostSigner(t).PublicKey())
	tg2 := e2.target("inner", inner)
	tg2.Jump = e2.target("bastion", bastion)
	_, err = run(t, pool(t), tg2, Cmd{Script: "true"})
	var ce *ConnError
	if !errors.As(err, &ce) || ce.Reason != ReasonHostKeyChanged || ce.Host != "inner" {
		t.Fatalf("inner key mismatch through bastion: err = %v", err)
	}
}

func TestHungHostTimesOut(t *testing.T) {
	e := newEnv(t)
	s := e.server()
	s.Hang.Store(true)
	tg := e.target("h", s)
	tg.ConnectTimeout = 500 * time.Millisecond
	start := time.Now()
	_, err := run(t, pool(t), tg, Cmd{Script: "true"})
	var ce *ConnError
	if !errors.As(err, &ce) || ce.Reason != ReasonTimeout {
		t.Fatalf("err = %v", err)
	}
	// Generous bound: the point is "not forever", not a benchmark.
	if d := time.Since(start); d > 10*time.Second {
		t.Fatalf("took %s", d)
	}
}

func TestRefused(t *testing.T) {
	e := newEnv(t)
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	port := ln.Addr().(*net.TCPAddr).Port
	_ = ln.Close()
	tg := &Target{Name: "gone", Address: "127.0.0.1", Port: port, User: "root", IdentityFiles: []string{e.keyFile},
		KnownHosts: []string{e.knownHosts}, HostKeyPolicy: "strict", ConnectTimeout: time.Second, CommandTimeout: time.Second, Keepalive: time.Second}
	_, err := run(t, pool(t), tg, Cmd{Script: "true"})
	var ce *ConnError
	if !errors.As(err, &ce) || ce.Reason != ReasonRefused {
		t.Fatalf("err = %v", err)
	}
	// One statement: host and reason once, no Go "dial tcp …" repeat.
	if want := fmt.Sprintf("gone (127.0.0.1:%d): connection refused", port); err.Error() != want || HostError("gone", err) != want {
		t.Fatalf("message %q, want %q", err, want)
	}
	// Through a jump host that is itself refused.
	tg2 := *tg
	tg2.Name, tg2.Jump = "inner", tg
	_, err = run(t, pool(t), &tg2, Cmd{Script: "true"})
	if want := fmt.Sprintf("inner (127.0.0.1:%d): unreachable: via jump host: gone (127.0.0.1:%d): connection refused", port, port); err == nil || err.Error() != want {
		t.Fatalf("message %q, want %q", err, want)
	}
}

func TestHostFreezingMidCommandFailsWithinKeepalive(t *testing.T) {
	e := newEnv(t)
	s := e.server()
	p := pool(t)
	tg := e.target("h", s)
	tg.Keepalive = 600 * time.Millisecond
	r, err := p.Runner(context.Background(), tg)
	if err != nil {
		t.Fatal(err)
	}
	go func() { time.Sleep(300 * time.Millisecond); s.Mute.Store(true) }()
	start := time.Now()
	_, err = r.Run(context.Background(), Cmd{Script: "sleep 20"})
	var ce *ConnError
	if !errors.As(err, &ce) || ce.Reason != ReasonLost {
		t.Fatalf("err = %v", err)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Fatalf("noticed after %s", d)
	}
}

func processAlive(t *testing.T, marker string) bool {
	t.Helper()
	out, _ := exec.Command("pgrep", "-f", marker).Output()
	return len(bytes.TrimSpace(out)) > 0
}

func TestCancelStopsRemoteProcessTree(t *testing.T) {
	// Cold: the connection's first command runs in a session of its own;
	// warm: later ones go through the executor.
	for _, warm := range []bool{false, true} {
		e := newEnv(t)
		s := e.server()
		p := pool(t)
		r, err := p.Runner(context.Background(), e.target("h", s))
		if err != nil {
			t.Fatal(err)
		}
		if warm {
			if _, err := r.Run(context.Background(), Cmd{Script: "true"}); err != nil {
				t.Fatal(err)
			}
		}
		marker := fmt.Sprintf("%d.%d", 300+time.Now().Nanosecond()%600, os.Getpid()%1000)
		ctx, cancel := context.WithCancel(context.Background())
		go func() { time.Sleep(300 * time.Millisecond); cancel() }()
		// Two commands so the shell forks rather than execs: the child must
		// die too, not just the shell.
		_, err = r.Run(ctx, Cmd{Script: "sleep " + marker + "; echo never"})
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("warm=%v: err = %v", warm, err)
		}
		deadline := time.Now().Add(5 * time.Second)
		for processAlive(t, "sleep "+marker) {
			if time.Now().After(deadline) {
				t.Fatalf("warm=%v: remote sleep still running after cancel", warm)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
}

func TestCommandTimeout(t *testing.T) {
	e := newEnv(t)
	s := e.server()
	_, err := run(t, pool(t), e.target("h", s), Cmd{Script: "sleep 10", Timeout: 300 * time.Millisecond})
	if !errors.Is(err, ErrTimeout) {
		t.Fatalf("err = %v", err)
	}
	if got := HostError("h", err); got != "h: command timed out after 300ms" {
		t.Fatalf("message %q", got)
	}
}

func TestPipeCopiesBytesExactly(t *testing.T) {
	src, dst := twoHosts(t)
	data := make([]byte, 12<<20+7)
	_, _ = rand.Read(data)
	file := filepath.Join(t.TempDir(), "blob")
	if err := os.WriteFile(file, data, 0o600); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(data)
	var n atomic.Int64
	res, err := Pipe(context.Background(), src, Cmd{Argv: []string{"cat", file}}, dst, Cmd{Argv: []string{"sha256sum"}}, &n)
	if err != nil {
		t.Fatal(err)
	}
	if res.Bytes != int64(len(data)) || n.Load() != int64(len(data)) {
		t.Fatalf("bytes = %d, want %d", res.Bytes, len(data))
	}
	if got := strings.Fields(string(res.Receiver.Stdout))[0]; got != hex.EncodeToString(sum[:]) {
		t.Fatalf("receiver saw different bytes")
	}
}

func TestPipeBlamesSenderFirst(t *testing.T) {
	src, dst := twoHosts(t)
	_, err := Pipe(context.Background(), src, Cmd{Script: "printf partial; echo 'cannot find parent' >&2; exit 3"},
		dst, Cmd{Script: "cat >/dev/null; echo 'ERROR: empty stream' >&2; exit 1"}, nil)
	var pe *PipeError
	if !errors.As(err, &pe) || pe.Side != "sender" || !strings.Contains(err.Error(), "cannot find parent") {
		t.Fatalf("err = %v", err)
	}
	var ee *ExitError
	if !errors.As(err, &ee) || ee.Host != "a" {
		t.Fatalf("first error is not the sender's exit: %v", err)
	}
}

func TestPipeReceiverFailureStopsSender(t *testing.T) {
	src, dst := twoHosts(t)
	start := time.Now()
	_, err := Pipe(context.Background(), src, Cmd{Script: "yes"},
		dst, Cmd{Script: "head -c 1000 >/dev/null; echo 'No space left on device' >&2; exit 1"}, nil)
	var pe *PipeError
	if !errors.As(err, &pe) || pe.Side != "receiver" || !strings.Contains(err.Error(), "No space left") {
		t.Fatalf("err = %v", err)
	}
	if d := time.Since(start); d > 15*time.Second {
		t.Fatalf("sender not stopped: took %s", d)
	}
}

func TestLocalRunner(t *testing.T) {
	l := NewLocal(&Target{Name: "me", Address: "local", CommandTimeout: time.Minute})
	res, err := l.Run(context.Background(), Cmd{Argv: []string{"echo", "a b"}})
	if err != nil || string(res.Stdout) != "a b\n" {
		t.Fatalf("res=%v err=%v", res, err)
	}
	_, err = l.Run(context.Background(), Cmd{Script: "exit 4"})
	var ee *ExitError
	if !errors.As(err, &ee) || ee.Code != 4 {
		t.Fatalf("err = %v", err)
	}
	marker := fmt.Sprintf("%d.%d", 100+time.Now().Nanosecond()%800, os.Getpid()%1000+1)
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	_, err = l.Run(ctx, Cmd{Script: "sleep " + marker + "; echo never"})
	if !errors.Is(err, context.DeadlineExceeded) || err.Error() != "me: timed out (the caller's time limit passed)" {
		t.Fatalf("err = %v", err)
	}
	time.Sleep(100 * time.Millisecond)
	if processAlive(t, "sleep "+marker) {
		t.Fatal("local sleep survived cancellation")
	}
}

func TestQuoteRoundTripsThroughShell(t *testing.T) {
	words := []string{"plain", "with space", "it's", `"dq"`, "$x", "a\tb", "", "ü", "-n", "--", "a'b'c"}
	out, err := exec.Command("sh", "-c", "printf '%s\\0' "+QuoteArgv(words)).Output()
	if err != nil {
		t.Fatal(err)
	}
	got := strings.Split(strings.TrimSuffix(string(out), "\x00"), "\x00")
	if len(got) != len(words) {
		t.Fatalf("got %q", got)
	}
	for i := range words {
		if got[i] != words[i] {
			t.Errorf("word %d: got %q want %q", i, got[i], words[i])
		}
	}
	if withBecome("id -u", "sudo", nil) != "sudo -n -- sh -c 'id -u'" {
		t.Errorf("become: %q", withBecome("id -u", "sudo", nil))
	}
}

func TestForEachBoundsConcurrency(t *testing.T) {
	var cur, peak atomic.Int64
	items := make([]int, 50)
	var mu sync.Mutex
	seen := map[int]bool{}
	ForEach(context.Background(), 7, items, func(_ context.Context, i int, _ int) {
		n := cur.Add(1)
		for {
			p := peak.Load()
			if n <= p || peak.CompareAndSwap(p, n) {
				break
			}
		}
		time.Sleep(5 * time.Millisecond)
		cur.Add(-1)
		mu.Lock()
		seen[i] = true
		mu.Unlock()
	})
	if peak.Load() > 7 || len(seen) != 50 {
		t.Fatalf("peak %d, seen %d", peak.Load(), len(seen))
	}
}

// When the client disappears (hoctl killed, network gone) the remote
// command must not run on: the session's stdin reaches EOF and the
// watcher kills the process group.
func TestConnectionLossStopsRemoteCommand(t *testing.T) {
	for _, warm := range []bool{false, true} {
		e := newEnv(t)
		s := e.server()
		p := NewPool(PoolOptions{})
		r, err := p.Runner(context.Background(), e.target("h", s))
		if err != nil {
			t.Fatal(err)
		}
		if warm {
			if _, err := r.Run(context.Background(), Cmd{Script: "true"}); err != nil {
				t.Fatal(err)
			}
		}
		marker := fmt.Sprintf("%d.%d", 200+time.Now().Nanosecond()%700, os.Getpid()%1000+3)
		go func() { _, _ = r.Run(context.Background(), Cmd{Script: "sleep " + marker + "; echo never"}) }()
		deadline := time.Now().Add(5 * time.Second)
		for !processAlive(t, "sleep "+marker) {
			if time.Now().After(deadline) {
				t.Fatal("remote sleep never started")
			}
			time.Sleep(20 * time.Millisecond)
		}
		_ = p.Close()
		deadline = time.Now().Add(5 * time.Second)
		for processAlive(t, "sleep "+marker) {
			if time.Now().After(deadline) {
				t.Fatalf("warm=%v: remote sleep survived the connection", warm)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
}

// twoHosts returns runners on two test servers, named a and b.
func twoHosts(t *testing.T) (Runner, Runner) {
	t.Helper()
	e := newEnv(t)
	a, b := e.server(), e.server()
	p := pool(t)
	src, err := p.Runner(context.Background(), e.target("a", a))
	if err != nil {
		t.Fatal(err)
	}
	dst, err := p.Runner(context.Background(), e.target("b", b))
	if err != nil {
		t.Fatal(err)
	}
	return src, dst
}
