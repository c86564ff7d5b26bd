package sshexec

import (
	"crypto/ed25519"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

// hostKeys checks presented host keys against known_hosts files. It is
// shared by every connection of a Pool so that a key accepted for one host
// under accept-new is visible to the next connection at once.
type hostKeys struct {
	mu    sync.Mutex
	cache map[string]ssh.HostKeyCallback // by joined file list
	probe ssh.PublicKey
}

func newHostKeys() *hostKeys {
	// A throwaway key never on file: presenting it to the known_hosts
	// callback makes it list every key it holds for a host.
	pub, _, _ := ed25519.GenerateKey(nil)
	probe, _ := ssh.NewPublicKey(pub)
	return &hostKeys{cache: map[string]ssh.HostKeyCallback{}, probe: probe}
}

func (hk *hostKeys) db(files []string) (ssh.HostKeyCallback, error) {
	key := strings.Join(files, "\x00")
	hk.mu.Lock()
	defer hk.mu.Unlock()
	if cb, ok := hk.cache[key]; ok {
		return cb, nil
	}
	var existing []string
	for _, f := range files {
		if _, err := os.Stat(f); err == nil {
			existing = append(existing, f)
		}
	}
	var cb ssh.HostKeyCallback
	if len(existing) == 0 {
		cb = func(string, net.Addr, ssh.PublicKey) error { return &knownhosts.KeyError{} }
	} else {
		var err error
		cb, err = knownhosts.New(existing...)
		if err != nil {
			return nil, fmt.Errorf("known_hosts: %w", err)
		}
	}
	hk.cache[key] = cb
	return cb, nil
}

// algorithms returns the host key algorithms to offer for addr: exactly the
// key types known_hosts holds for it, so the server presents a key we can
// check (Go's client otherwise prefers a type OpenSSH may not have stored,
// and a valid host looks "changed"). Nil means no preference (unknown host).
func (hk *hostKeys) algorithms(t *Target) ([]string, error) {
	cb, err := hk.db(t.KnownHosts)
	if err != nil {
		return nil, err
	}
	remote := &net.TCPAddr{IP: net.ParseIP(t.Address), Port: t.Port}
	if remote.IP == nil {
		remote.IP = net.IPv4zero
	}
	err = cb(t.HostPort(), remote, hk.probe)
	var ke *knownhosts.KeyError
	if !errors.As(err, &ke) || len(ke.Want) == 0 {
		return nil, nil
	}
	seen := map[string]bool{}
	var algos []string
	add := func(a ...string) {
		for _, x := range a {
			if !seen[x] {
				seen[x] = true
				algos = append(algos, x)
			}
		}
	}
	for _, w := range ke.Want {
		switch typ := w.Key.Type(); typ {
		case ssh.KeyAlgoRSA:
			add(ssh.KeyAlgoRSASHA512, ssh.KeyAlgoRSASHA256, ssh.KeyAlgoRSA)
		default:
			add(typ)
		}
	}
	return algos, nil
}

// callback verifies the key presented by t, appending unknown keys under
// accept-new and refusing everything else with both fingerprints.
func (hk *hostKeys) callback(t *Target) ssh.HostKeyCallback {
	return func(hostname string, remote net.Addr, key ssh.PublicKey) error {
		cb, err := hk.db(t.KnownHosts)
		if err != nil {
			return err
		}
		err = cb(hostname, remote, key)
		if err == nil {
			return nil
		}
		presented := key.Type() + " " + ssh.FingerprintSHA256(key)
		var ke *knownhosts.KeyError
		if errors.As(err, &ke) {
			if len(ke.Want) > 0 {
				e := &HostKeyError{Addr: hostname, Presented: presented}
				for _, w := range ke.Want {
					e.Expected = append(e.Expected, fmt.Sprintf("%s %s (%s:%d)", w.Key.Type(), ssh.FingerprintSHA256(w.Key), w.Filename, w.Line))
				}
				return e
			}
			if t.HostKeyPolicy == "accept-new" {
				return hk.append(t, hostname, key)
			}
			return &HostKeyError{Addr: hostname, Presented: presented, Unknown: true, Files: t.KnownHosts[:1]}
		}
		var re *knownhosts.RevokedError
		if errors.As(err, &re) {
			return fmt.Errorf("host key %s for %s is revoked (%s:%d)", presented, hostname, re.Revoked.Filename, re.Revoked.Line)
		}
		return err
	}
}

func (hk *hostKeys) append(t *Target, hostname string, key ssh.PublicKey) error {
	file := t.KnownHosts[0]
	hk.mu.Lock()
	defer hk.mu.Unlock()
	if err := os.MkdirAll(filepath.Dir(file), 0o700); err != nil {
		return err
	}
	f, err := os.OpenFile(file, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("accept-new: %w", err)
	}
	line := knownhosts.Line([]string{knownhosts.Normalize(hostname)}, key) + "\n"
	_, werr := f.WriteString(line)
	cerr := f.Close()
	if werr != nil {
		return fmt.Errorf("accept-new: %w", werr)
	}
	if cerr != nil {
		return fmt.Errorf("accept-new: %w", cerr)
	}
	// Every cached view may include this file: drop them all.
	hk.cache = map[string]ssh.HostKeyCallback{}
	return nil
}
