package sshexec

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hoctl/hoctl/internal/sshtest"
	"github.com/hoctl/hoctl/pkg/trace"
	"golang.org/x/crypto/ssh"
)

// -v says how each host is reached (address, user, keys, host key and
// its algorithm, the jump host), what is sent and how long it took; -vv
// adds protocol detail. Registered secrets never appear.
func TestTraceShowsHowHostsAreReached(t *testing.T) {
	for _, level := range []int{trace.Verbose, trace.Debug} {
		e := newEnv(t)
		bastion := e.server()
		inner := e.server()
		var buf bytes.Buffer
		tr := trace.New(&buf, level)
		tr.Secret("s3cr3t-value")
		p := NewPool(PoolOptions{Trace: tr})
		t.Cleanup(func() { _ = p.Close() })
		tg := e.target("inner", inner)
		tg.Jump = e.target("bastion", bastion)
		r, err := p.Runner(context.Background(), tg)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := r.Run(context.Background(), Cmd{Script: "echo s3cr3t-value >/dev/null; exit 3"}); err == nil {
			t.Fatal("exit 3 was not an error")
		}
		out := buf.String()
		client := ssh.FingerprintSHA256(e.clientKey.PublicKey())
		for _, want := range []string{
			"bastion: connecting to root@" + bastion.Addr + " (connect_timeout 2s, host_key_policy strict, known_hosts " + e.knownHosts + ")",
			"inner: connecting to root@" + inner.Addr + " through jump host bastion",
			"inner: keys to offer: " + e.keyFile + " (ssh-ed25519 " + client + ")",
			"inner: connected in ",
			": host key ssh-ed25519 " + ssh.FingerprintSHA256(inner.HostKey.PublicKey()) + " (algorithm ssh-ed25519) verified; logged in as root with ssh-ed25519 " + client,
			"inner: run: echo *** >/dev/null; exit 3",
			"inner: exit 3 in ",
		} {
			if !strings.Contains(out, want) {
				t.Errorf("-v level %d lacks %q:\n%s", level, want, out)
			}
		}
		if strings.Contains(out, "s3cr3t") {
			t.Errorf("a secret reached the trace:\n%s", out)
		}
		if debug := strings.Contains(out, "kex "); debug != (level >= trace.Debug) {
			t.Errorf("level %d: protocol detail shown = %v:\n%s", level, debug, out)
		}
	}
}

// Without -v nothing is written, and a nil Log is safe everywhere.
func TestNoTraceWithoutVerbose(t *testing.T) {
	e := newEnv(t)
	s := e.server()
	if tr := trace.New(&bytes.Buffer{}, 0); tr != nil {
		t.Fatal("level 0 must give a nil Log")
	}
	if _, err := run(t, pool(t), e.target("h", s), Cmd{Script: "true"}); err != nil {
		t.Fatal(err)
	}
}

// The signer wrappers that report the accepted key keep RSA keys signing
// with SHA-2 (a plain wrapper would fall back to ssh-rsa, which servers
// refuse).
func TestTraceKeepsRSASigning(t *testing.T) {
	e := newEnv(t)
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	block, err := ssh.MarshalPrivateKey(rsaKey, "")
	if err != nil {
		t.Fatal(err)
	}
	keyFile := filepath.Join(e.dir, "id_rsa")
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(block), 0o600); err != nil {
		t.Fatal(err)
	}
	signer, _ := ssh.NewSignerFromKey(rsaKey)
	s := sshtest.Start(t, hostSigner(t), signer.PublicKey())
	e.trust(s, s.HostKey.PublicKey())
	var buf bytes.Buffer
	p := NewPool(PoolOptions{Trace: trace.New(&buf, trace.Verbose)})
	t.Cleanup(func() { _ = p.Close() })
	tg := e.target("h", s)
	tg.IdentityFiles = []string{keyFile}
	r, err := p.Runner(context.Background(), tg)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.Run(context.Background(), Cmd{Script: "true"}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(buf.String(), "logged in as root with ssh-rsa "+ssh.FingerprintSHA256(signer.PublicKey())) {
		t.Fatalf("trace:\n%s", buf.String())
	}
}
