package sshexec

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/crypto/ssh"
)

// hostKeys checks presented host keys against known_hosts files. It is
// shared by every connection of a Pool so that a key accepted for one host
// under accept-new is visible to the next connection at once.
type hostKeys struct {
	mu    sync.Mutex
	cache map[string]*knownHostsDB // by joined file list
}

func newHostKeys() *hostKeys {
	return &hostKeys{cache: map[string]*knownHostsDB{}}
}

func (hk *hostKeys) db(files []string) (*knownHostsDB, error) {
	key := strings.Join(files, "\x00")
	hk.mu.Lock()
	defer hk.mu.Unlock()
	if db, ok := hk.cache[key]; ok {
		return db, nil
	}
	db, err := loadKnownHosts(files)
	if err != nil {
		return nil, err
	}
	hk.cache[key] = db
	return db, nil
}

// algorithms returns the host key algorithms to offer for t (see
// lookup.algorithms).
func (hk *hostKeys) algorithms(t *Target) ([]string, error) {
	db, err := hk.db(t.KnownHosts)
	if err != nil {
		return nil, err
	}
	return db.lookup(t.HostPort()).algorithms(), nil
}

// callback verifies the key presented by t, appending unknown keys under
// accept-new and refusing everything else with both fingerprints.
func (hk *hostKeys) callback(t *Target) ssh.HostKeyCallback {
	return func(hostname string, _ net.Addr, key ssh.PublicKey) error {
		db, err := hk.db(t.KnownHosts)
		if err != nil {
			return err
		}
		acceptNew := t.HostKeyPolicy == "accept-new"
		add, err := db.verify(hostname, key, t.KnownHosts, acceptNew)
		if err != nil || !add {
			return err
		}
		return hk.accept(t, hostname, key)
	}
}

// describeKey is a key as the operator compares it: type and SHA256
// fingerprint; for a certificate, also its CA's.
func describeKey(key ssh.PublicKey) string {
	if c, ok := key.(*ssh.Certificate); ok {
		return fmt.Sprintf("%s %s (certificate signed by %s %s)", c.Key.Type(), ssh.FingerprintSHA256(c.Key),
			c.SignatureKey.Type(), ssh.FingerprintSHA256(c.SignatureKey))
	}
	return key.Type() + " " + ssh.FingerprintSHA256(key)
}

func describeEntry(e khEntry) string {
	return fmt.Sprintf("%s %s (%s)", e.key.Type(), ssh.FingerprintSHA256(e.key), e.where())
}

// verify checks key for hostname. add reports an unknown host that
// acceptNew may add; every other outcome is nil (trusted) or an error.
// A known_hosts line that does not parse never makes a key acceptable:
// one that may be about this host refuses the connection, one whose host
// field is unreadable stops accept-new from adding keys, and an unreadable
// @revoked line refuses every host (which key it revokes is unknown).
func (db *knownHostsDB) verify(hostname string, key ssh.PublicKey, files []string, acceptNew bool) (add bool, err error) {
	e := &HostKeyError{Addr: hostname, Presented: describeKey(key), Files: files}
	if r := db.revoked(key); r != nil {
		e.Revoked = r.where()
		return false, e
	}
	l := db.lookup(hostname)
	if len(l.revoking) > 0 {
		p := l.revoking[0]
		e.Problem = fmt.Sprintf("%s does not parse (%s) and is a @revoked line: which key it revokes is unknown, so no host is trusted until it is fixed", p.where(), p.problem)
		return false, e
	}
	if len(l.problems) > 0 {
		p := l.problems[0]
		e.Problem = fmt.Sprintf("%s does not parse (%s) and may be the entry for %s; fix or remove that line (%s) after verifying the host's key", p.where(), p.problem, hostname, e.removeCommand())
		return false, e
	}
	for _, ca := range l.cas {
		e.Expected = append(e.Expected, "a certificate signed by "+describeEntry(ca))
	}
	if cert, ok := key.(*ssh.Certificate); ok {
		if len(l.cas) == 0 {
			e.Cert = "no @cert-authority line in known_hosts covers this host"
			for _, p := range l.pinned {
				e.Expected = append(e.Expected, describeEntry(p))
			}
			return false, e
		}
		checker := &ssh.CertChecker{
			IsHostAuthority: func(auth ssh.PublicKey, _ string) bool {
				for _, ca := range l.cas {
					if bytes.Equal(ca.key.Marshal(), auth.Marshal()) {
						return true
					}
				}
				return false
			},
			IsRevoked: func(c *ssh.Certificate) bool { return db.revoked(c) != nil },
		}
		if err := checker.CheckHostKey(hostname, nil, cert); err != nil {
			e.Cert = strings.TrimPrefix(err.Error(), "ssh: ")
			return false, e
		}
		return false, nil
	}
	for _, p := range l.pinned {
		if bytes.Equal(p.key.Marshal(), key.Marshal()) {
			return false, nil
		}
		e.Expected = append(e.Expected, describeEntry(p))
	}
	if len(l.pinned) > 0 {
		return false, e
	}
	if len(l.cas) > 0 {
		e.Cert = "known_hosts trusts a certificate authority for this host, but it presented a plain key"
		return false, e
	}
	if len(l.unscoped) == 0 && db.pinnedWithoutPort(hostname, key) {
		return false, nil
	}
	if acceptNew {
		if len(l.unscoped) > 0 {
			p := l.unscoped[0]
			e.Problem = fmt.Sprintf("not adding a key for %s: %s does not parse (%s) and may be its entry; fix or remove that line", hostname, p.where(), p.problem)
			return false, e
		}
		return true, nil
	}
	e.Unknown, e.Files = true, files[:1]
	return false, e
}

// pinnedWithoutPort is OpenSSH's second look for a host it does not know
// on a port other than 22: the key is trusted if a well-formed entry for
// the bare name (port 22's) pins exactly it. It only ever trusts that key;
// a different key there changes nothing (the host stays unknown). verify
// skips it while a line whose host field is unreadable could be the
// entry for this port.
func (db *knownHostsDB) pinnedWithoutPort(hostname string, key ssh.PublicKey) bool {
	a := parseKHAddr(hostname)
	if a.port == "22" {
		return false
	}
	l := db.lookup(net.JoinHostPort(a.host, "22"))
	if len(l.problems) > 0 || len(l.revoking) > 0 {
		return false
	}
	for _, p := range l.pinned {
		if bytes.Equal(p.key.Marshal(), key.Marshal()) {
			return true
		}
	}
	return false
}

// accept adds hostname's key to the first known_hosts file. The file is
// rewritten whole under a lock and renamed into place, so a reader never
// sees half a line and an entry is never glued onto a last line that
// lacks its newline (which would un-pin that line's host).
func (hk *hostKeys) accept(t *Target, hostname string, key ssh.PublicKey) error {
	hk.mu.Lock()
	defer hk.mu.Unlock()
	// Every cached view may include this file: drop them all.
	hk.cache = map[string]*knownHostsDB{}
	file := t.KnownHosts[0]
	if real, err := filepath.EvalSymlinks(file); err == nil {
		file = real
	}
	dir := filepath.Dir(file)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("accept-new: %w", err)
	}
	unlock, err := lockDir(dir, 5*time.Second)
	if err != nil {
		return fmt.Errorf("accept-new: %w", err)
	}
	defer unlock()
	// Read again under the lock: another hoctl may have added this host
	// since, with this key or another one.
	db, err := loadKnownHosts(t.KnownHosts)
	if err != nil {
		return err
	}
	add, err := db.verify(hostname, key, t.KnownHosts, true)
	if err != nil || !add {
		return err
	}
	line, err := knownHostsLine(hostname, key, db.hashed)
	if err != nil {
		return fmt.Errorf("accept-new: %w", err)
	}
	if err := appendLineAtomic(file, line); err != nil {
		return fmt.Errorf("accept-new: %w", err)
	}
	return nil
}

// lockDir takes an exclusive flock on dir, so hoctl processes adding
// known_hosts entries at once take turns (a lock on the file itself would
// be lost with the rename).
func lockDir(dir string, wait time.Duration) (func(), error) {
	f, err := os.Open(dir)
	if err != nil {
		return nil, err
	}
	deadline := time.Now().Add(wait)
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			return func() { _ = f.Close() }, nil
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) || time.Now().After(deadline) {
			_ = f.Close()
			return nil, fmt.Errorf("lock %s: %w", dir, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// appendLineAtomic writes file's content plus line to a temporary file
// beside it, with file's mode (and owner, where we may), and renames it
// over file. A last line without a newline gets one first.
func appendLineAtomic(file, line string) error {
	old, err := os.ReadFile(file)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	mode := os.FileMode(0o600)
	var st os.FileInfo
	if st, err = os.Stat(file); err == nil {
		mode = st.Mode().Perm()
	}
	buf := old
	if len(buf) > 0 && buf[len(buf)-1] != '\n' {
		buf = append(buf, '\n')
	}
	buf = append(buf, line...)
	buf = append(buf, '\n')

	dir := filepath.Dir(file)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(file)+".hoctl-*")
	if err != nil {
		return err
	}
	defer func() { _ = os.Remove(tmp.Name()) }()
	if err := tmp.Chmod(mode); err != nil {
		_ = tmp.Close()
		return err
	}
	if st != nil {
		if sys, ok := st.Sys().(*syscall.Stat_t); ok && (int(sys.Uid) != os.Getuid() || int(sys.Gid) != os.Getgid()) {
			// Root editing another user's file keeps it theirs.
			_ = tmp.Chown(int(sys.Uid), int(sys.Gid))
		}
	}
	if _, err := tmp.Write(buf); err != nil {
		_ = tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		_ = tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), file); err != nil {
		return err
	}
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		_ = d.Close()
	}
	return nil
}
