package cli

import (
	"crypto/ed25519"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hoctl/hoctl/internal/sshtest"
	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

func newSigner(t *testing.T) ssh.Signer {
	t.Helper()
	_, priv, _ := ed25519.GenerateKey(nil)
	s, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// --accept-new takes and records an unknown host's key for one run (the
// next run verifies it strictly), and never a changed key.
func TestAcceptNewFlagTakesNewKeysNeverChangedOnes(t *testing.T) {
	dir := t.TempDir()
	client, keyFile := sshtest.NewKey(t, dir, "id_ed25519")
	hostKey := newSigner(t)
	s := sshtest.Start(t, hostKey, client.PublicKey())
	kh := filepath.Join(dir, "known_hosts")
	if err := os.WriteFile(kh, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	h := newHarness(t)
	h.inventory(t, dir, fmt.Sprintf("hosts:\n  h1: {address: %s, port: %d, user: root, identity_files: [%s], known_hosts: %s, connect_timeout: 5s}\n", s.Host, s.Port, keyFile, kh))
	h.f.Connect = nil // the real SSH client

	if code := h.runLine("ping", "h1"); code != ExitUnreachable || !strings.Contains(h.out.String()+h.err.String(), "HOST KEY UNKNOWN") {
		t.Fatalf("strict, unknown host: exit %d\n%s%s", code, h.out, h.err)
	}
	h.reset()
	if code := h.runLine("--accept-new", "ping", "h1"); code != 0 {
		t.Fatalf("--accept-new: exit %d\n%s%s", code, h.out, h.err)
	}
	b, _ := os.ReadFile(kh)
	if !strings.Contains(string(b), strings.TrimSpace(string(ssh.MarshalAuthorizedKey(hostKey.PublicKey())))) {
		t.Fatalf("key not recorded: %q", b)
	}
	h.reset()
	if code := h.runLine("ping", "h1"); code != 0 {
		t.Fatalf("strict, after the key was recorded: exit %d\n%s%s", code, h.out, h.err)
	}

	// Another key on file for that address: a changed key.
	other := knownhosts.Line([]string{knownhosts.Normalize(s.Addr)}, newSigner(t).PublicKey()) + "\n"
	if err := os.WriteFile(kh, []byte(other), 0o600); err != nil {
		t.Fatal(err)
	}
	h.reset()
	if code := h.runLine("--accept-new", "ping", "h1"); code != ExitUnreachable || !strings.Contains(h.out.String()+h.err.String(), "HOST KEY CHANGED") {
		t.Fatalf("--accept-new, changed key: exit %d\n%s%s", code, h.out, h.err)
	}
	if b, _ := os.ReadFile(kh); string(b) != other {
		t.Fatalf("known_hosts changed: %q", b)
	}
}
