package sshexec

import (
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/hoctl/hoctl/pkg/trace"
	"golang.org/x/crypto/ssh"
)

// traceRun writes a command's -v lines: what is sent, then how it ended
// and how long it took. Only the command line is shown, never its input
// (which is where secrets travel).
func traceRun(l *trace.Log, t *Target, cmd Cmd) func(*Result, error) {
	if !l.Enabled(trace.Verbose) {
		return func(*Result, error) {}
	}
	var notes []string
	if t.IsLocal() {
		notes = append(notes, "on this machine")
	}
	if t.Become != "" && t.Become != "none" {
		notes = append(notes, "become "+t.Become)
	}
	if cmd.Stdin != nil {
		notes = append(notes, "with input")
	}
	note := ""
	if len(notes) > 0 {
		note = " (" + strings.Join(notes, ", ") + ")"
	}
	l.Printf(trace.Verbose, "%s: run%s: %s", t.Name, note, cmd.Line())
	start := time.Now()
	return func(res *Result, err error) {
		switch {
		case err == nil:
			l.Printf(trace.Verbose, "%s: exit 0 in %s", t.Name, trace.Since(start))
		case res != nil && res.ExitCode > 0:
			l.Printf(trace.Verbose, "%s: exit %d in %s", t.Name, res.ExitCode, trace.Since(start))
		default:
			l.Printf(trace.Verbose, "%s: failed after %s: %s", t.Name, trace.Since(start), strings.TrimPrefix(HostError(t.Name, err), t.Name+": "))
		}
	}
}

func fingerprint(k ssh.PublicKey) string {
	if k == nil {
		return "?"
	}
	return k.Type() + " " + ssh.FingerprintSHA256(k)
}

// traceConnected writes what a new connection settled on: host key,
// account and key, and at -vv the negotiated algorithms.
func traceConnected(l *trace.Log, t *Target, c ssh.Conn, hostKey, authKey ssh.PublicKey, took string) {
	if !l.Enabled(trace.Verbose) {
		return
	}
	hkAlgo := ""
	if am, ok := c.(ssh.AlgorithmsConnMetadata); ok {
		hkAlgo = am.Algorithms().HostKey
	}
	with := ""
	if authKey != nil {
		with = " with " + fingerprint(authKey)
	}
	l.Printf(trace.Verbose, "%s: connected in %s: host key %s (algorithm %s) verified; logged in as %s%s", t.Name, took, fingerprint(hostKey), hkAlgo, t.User, with)
	if am, ok := c.(ssh.AlgorithmsConnMetadata); ok && l.Enabled(trace.Debug) {
		a := am.Algorithms()
		l.Printf(trace.Debug, "%s: server %q, kex %s, cipher %s, mac %s", t.Name, c.ServerVersion(), a.KeyExchange, a.Write.Cipher, macOf(a.Write.MAC))
	}
}

func macOf(m string) string {
	if m == "" {
		return "(implied by the cipher)"
	}
	return m
}

// tracedSigner reports the key the server accepted: x/crypto signs only
// after the server said it would take the key. The wrappers keep the
// signer's algorithm interfaces, so RSA keys still sign with SHA-2.
type tracedSigner struct {
	ssh.Signer
	used func(ssh.PublicKey)
}

func (s *tracedSigner) Sign(rand io.Reader, data []byte) (*ssh.Signature, error) {
	s.used(s.PublicKey())
	return s.Signer.Sign(rand, data)
}

type tracedAlgoSigner struct {
	ssh.AlgorithmSigner
	used func(ssh.PublicKey)
}

func (s *tracedAlgoSigner) SignWithAlgorithm(rand io.Reader, data []byte, algo string) (*ssh.Signature, error) {
	s.used(s.PublicKey())
	return s.AlgorithmSigner.SignWithAlgorithm(rand, data, algo)
}

func (s *tracedAlgoSigner) Sign(rand io.Reader, data []byte) (*ssh.Signature, error) {
	s.used(s.PublicKey())
	return s.AlgorithmSigner.Sign(rand, data)
}

type tracedMultiSigner struct {
	ssh.MultiAlgorithmSigner
	used func(ssh.PublicKey)
}

func (s *tracedMultiSigner) SignWithAlgorithm(rand io.Reader, data []byte, algo string) (*ssh.Signature, error) {
	s.used(s.PublicKey())
	return s.MultiAlgorithmSigner.SignWithAlgorithm(rand, data, algo)
}

func (s *tracedMultiSigner) Sign(rand io.Reader, data []byte) (*ssh.Signature, error) {
	s.used(s.PublicKey())
	return s.MultiAlgorithmSigner.Sign(rand, data)
}

func traceSigner(s ssh.Signer, used func(ssh.PublicKey)) ssh.Signer {
	switch v := s.(type) {
	case ssh.MultiAlgorithmSigner:
		return &tracedMultiSigner{MultiAlgorithmSigner: v, used: used}
	case ssh.AlgorithmSigner:
		return &tracedAlgoSigner{AlgorithmSigner: v, used: used}
	}
	return &tracedSigner{Signer: s, used: used}
}

// describeKeys is what will be offered to t, for -v.
func (k *keyring) describeKeys(t *Target) string {
	var parts []string
	if ag := k.agentClient(); ag != nil {
		if keys, err := ag.List(); err == nil {
			parts = append(parts, fmt.Sprintf("ssh-agent (%d keys)", len(keys)))
		}
	}
	for _, f := range t.IdentityFiles {
		fk := k.file(f)
		switch {
		case fk.signer != nil:
			parts = append(parts, f+" ("+fingerprint(fk.signer.PublicKey())+")")
		case fk.encrypted:
			parts = append(parts, f+" (encrypted: only through the agent)")
		}
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, ", ")
}
