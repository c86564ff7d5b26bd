package sshexec

import (
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hoctl/hoctl/internal/sshtest"
	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

func (e *env) writeKnownHosts(content string, mode os.FileMode) {
	e.t.Helper()
	if err := os.WriteFile(e.knownHosts, []byte(content), mode); err != nil {
		e.t.Fatal(err)
	}
	if err := os.Chmod(e.knownHosts, mode); err != nil {
		e.t.Fatal(err)
	}
}

func (e *env) readKnownHosts() string {
	e.t.Helper()
	b, err := os.ReadFile(e.knownHosts)
	if err != nil {
		e.t.Fatal(err)
	}
	return string(b)
}

func khLineFor(s *sshtest.Server, key ssh.PublicKey) string {
	return knownhosts.Line([]string{knownhosts.Normalize(s.Addr)}, key)
}

func connReason(t *testing.T, err error) Reason {
	t.Helper()
	var ce *ConnError
	if !errors.As(err, &ce) {
		if err == nil {
			return ""
		}
		t.Fatalf("not a ConnError: %v", err)
	}
	return ce.Reason
}

// The review's attack: a pinned line without its final newline. accept-new
// for another host used to append onto it, gluing the two entries into one
// unparseable line; the pinned host then counted as unknown and accept-new
// took whatever key it presented next.
func TestAcceptNewDoesNotUnpinLastLine(t *testing.T) {
	e := newEnv(t)
	pinned := sshtest.Start(t, hostSigner(t), e.clientKey.PublicKey()) // presents an impostor key
	fresh := sshtest.Start(t, hostSigner(t), e.clientKey.PublicKey())
	genuine := hostSigner(t).PublicKey()
	e.writeKnownHosts("# pinned by hand\n"+khLineFor(pinned, genuine), 0o600) // no final newline

	tf := e.target("fresh", fresh)
	tf.HostKeyPolicy = "accept-new"
	if _, err := run(t, pool(t), tf, Cmd{Script: "true"}); err != nil {
		t.Fatalf("accept-new of a new host: %v", err)
	}
	want := "# pinned by hand\n" + khLineFor(pinned, genuine) + "\n" + khLineFor(fresh, fresh.HostKey.PublicKey()) + "\n"
	if got := e.readKnownHosts(); got != want {
		t.Fatalf("known_hosts =\n%q\nwant\n%q", got, want)
	}
	tp := e.target("pinned", pinned)
	tp.HostKeyPolicy = "accept-new"
	_, err := run(t, pool(t), tp, Cmd{Script: "true"})
	if r := connReason(t, err); r != ReasonHostKeyChanged {
		t.Fatalf("pinned host presenting another key: reason %q, err %v", r, err)
	}
}

// A line that does not parse must never make a host look unknown: if it
// may be the host's entry, the connection is refused under either policy
// and known_hosts is left alone.
func TestMalformedLineAboutHostRefuses(t *testing.T) {
	e := newEnv(t)
	s := sshtest.Start(t, hostSigner(t), e.clientKey.PublicKey())
	other := sshtest.Start(t, hostSigner(t), e.clientKey.PublicKey())
	name := knownhosts.Normalize(s.Addr)
	good := khLineFor(other, other.HostKey.PublicKey())
	goodBlob := strings.Fields(good)[2]
	hashed := knownhosts.HashHostname(name)
	cases := map[string]string{
		"bad base64":             name + " ssh-ed25519 AAAA!!!!",
		"truncated key":          name + " ssh-ed25519 " + goodBlob[:20],
		"type mismatch":          name + " ssh-rsa " + goodBlob,
		"missing key":            name + " ssh-ed25519",
		"glued after another":    good + name + " ssh-ed25519 " + goodBlob,
		"glued hashed":           good + hashed + " ssh-ed25519 " + goodBlob,
		"hashed, key cut":        hashed + " ssh-ed25519 " + goodBlob[:30],
		"in a list":              "zzz," + name + " ssh-ed25519 " + goodBlob[:30],
		"unknown marker":         "@trusted " + name + " ssh-ed25519 " + goodBlob,
		"corrupt @revoked (any)": "@revoked * ssh-ed25519 " + goodBlob[:30],
	}
	for label, bad := range cases {
		for _, policy := range []string{"strict", "accept-new"} {
			content := "# hand edited\n" + bad + "\n"
			e.writeKnownHosts(content, 0o600)
			tg := e.target("h", s)
			tg.HostKeyPolicy = policy
			_, err := run(t, pool(t), tg, Cmd{Script: "true"})
			if r := connReason(t, err); r != ReasonKnownHosts {
				t.Errorf("%s, %s: reason %q, err %v", label, policy, r, err)
				continue
			}
			if !strings.Contains(err.Error(), e.knownHosts+":2") {
				t.Errorf("%s, %s: error does not name the line: %v", label, policy, err)
			}
			if got := e.readKnownHosts(); got != content {
				t.Errorf("%s, %s: known_hosts changed to %q", label, policy, got)
			}
		}
	}
}

// A line whose host field is unreadable could be anyone's entry: accept-new
// does not add keys while it is there; lines about other hosts do not
// matter.
func TestUnreadableHostFieldStopsAcceptNew(t *testing.T) {
	e := newEnv(t)
	s := sshtest.Start(t, hostSigner(t), e.clientKey.PublicKey())
	content := "|1|notbase64|x ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIB\n"
	e.writeKnownHosts(content, 0o600)
	tg := e.target("h", s)
	tg.HostKeyPolicy = "accept-new"
	_, err := run(t, pool(t), tg, Cmd{Script: "true"})
	if r := connReason(t, err); r != ReasonKnownHosts || !strings.Contains(err.Error(), "not adding") {
		t.Fatalf("reason %q, err %v", r, err)
	}
	if e.readKnownHosts() != content {
		t.Fatal("known_hosts changed")
	}

	// A bad line scoped to another host is no obstacle.
	e.writeKnownHosts("other.example ssh-ed25519 AAAA!!!!\n", 0o600)
	if _, err := run(t, pool(t), tg, Cmd{Script: "true"}); err != nil {
		t.Fatalf("bad line about another host: %v", err)
	}
}

func TestAcceptNewKeepsModeAndHashing(t *testing.T) {
	for _, hashedFile := range []bool{false, true} {
		e := newEnv(t)
		other := sshtest.Start(t, hostSigner(t), e.clientKey.PublicKey())
		s := sshtest.Start(t, hostSigner(t), e.clientKey.PublicKey())
		first := khLineFor(other, other.HostKey.PublicKey())
		if hashedFile {
			first = knownhosts.HashHostname(knownhosts.Normalize(other.Addr)) + " " + strings.SplitN(first, " ", 2)[1]
		}
		e.writeKnownHosts(first+"\n", 0o644)
		tg := e.target("h", s)
		tg.HostKeyPolicy = "accept-new"
		if _, err := run(t, pool(t), tg, Cmd{Script: "true"}); err != nil {
			t.Fatal(err)
		}
		st, _ := os.Stat(e.knownHosts)
		if st.Mode().Perm() != 0o644 {
			t.Errorf("hashed=%v: mode %v, want 0644", hashedFile, st.Mode().Perm())
		}
		lines := strings.Split(strings.TrimSpace(e.readKnownHosts()), "\n")
		if len(lines) != 2 {
			t.Fatalf("hashed=%v: %q", hashedFile, lines)
		}
		added := lines[1]
		if hashedFile != strings.HasPrefix(added, "|1|") || strings.Contains(added, "127.0.0.1") == hashedFile {
			t.Errorf("hashed=%v: added %q", hashedFile, added)
		}
		// What was written verifies under strict, with a fresh pool.
		tg.HostKeyPolicy = "strict"
		if _, err := run(t, pool(t), tg, Cmd{Script: "true"}); err != nil {
			t.Errorf("hashed=%v: strict after accept-new: %v", hashedFile, err)
		}
		// No temporary file is left beside it.
		ents, _ := os.ReadDir(e.dir)
		for _, de := range ents {
			if strings.Contains(de.Name(), ".hoctl-") {
				t.Errorf("left behind: %s", de.Name())
			}
		}
	}
}

// Several processes accepting new hosts at once each read-modify-write
// the file; the lock and the re-read under it keep every entry.
func TestConcurrentAcceptNewKeepsEveryEntry(t *testing.T) {
	e := newEnv(t)
	const n = 8
	var servers []*sshtest.Server
	for range n {
		servers = append(servers, sshtest.Start(t, hostSigner(t), e.clientKey.PublicKey()))
	}
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i, s := range servers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			tg := e.target(fmt.Sprintf("h%d", i), s)
			tg.HostKeyPolicy = "accept-new"
			// A pool each: separate processes share nothing in memory.
			_, err := run(t, pool(t), tg, Cmd{Script: "true"})
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
	content := e.readKnownHosts()
	for _, s := range servers {
		if !strings.Contains(content, khLineFor(s, s.HostKey.PublicKey())+"\n") {
			t.Errorf("entry for %s lost:\n%s", s.Addr, content)
		}
	}
}

func TestRevokedKeyIsReportedAsRevoked(t *testing.T) {
	e := newEnv(t)
	s := sshtest.Start(t, hostSigner(t), e.clientKey.PublicKey())
	key := s.HostKey.PublicKey()
	e.writeKnownHosts(khLineFor(s, key)+"\n@revoked * "+strings.SplitN(khLineFor(s, key), " ", 2)[1]+"\n", 0o600)
	for _, policy := range []string{"strict", "accept-new"} {
		tg := e.target("h", s)
		tg.HostKeyPolicy = policy
		_, err := run(t, pool(t), tg, Cmd{Script: "true"})
		if r := connReason(t, err); r != ReasonHostKeyRevoked {
			t.Fatalf("%s: reason %q, err %v", policy, r, err)
		}
		if !strings.Contains(err.Error(), "@revoked ("+e.knownHosts+":2)") || !strings.Contains(err.Error(), ssh.FingerprintSHA256(key)) {
			t.Fatalf("%s: message: %v", policy, err)
		}
	}
}

// certServer starts a server presenting a host certificate for
// principals, signed by ca.
func certServer(t *testing.T, e *env, ca ssh.Signer, principals []string, validBefore uint64) *sshtest.Server {
	t.Helper()
	host := hostSigner(t)
	cert := &ssh.Certificate{
		Key:             host.PublicKey(),
		Serial:          1,
		CertType:        ssh.HostCert,
		KeyId:           "test host",
		ValidPrincipals: principals,
		ValidAfter:      uint64(time.Now().Add(-time.Hour).Unix()),
		ValidBefore:     validBefore,
	}
	if err := cert.SignCert(rand.Reader, ca); err != nil {
		t.Fatal(err)
	}
	cs, err := ssh.NewCertSigner(cert, host)
	if err != nil {
		t.Fatal(err)
	}
	return sshtest.Start(t, cs, e.clientKey.PublicKey())
}

func TestHostCertificates(t *testing.T) {
	ca := hostSigner(t)
	otherCA := hostSigner(t)
	caLine := func(pattern string, k ssh.PublicKey) string {
		return "@cert-authority " + pattern + " " + strings.SplitN(knownhosts.Line([]string{"x"}, k), " ", 2)[1] + "\n"
	}
	later := uint64(time.Now().Add(time.Hour).Unix())
	type tc struct {
		name       string
		signer     ssh.Signer
		principals []string
		before     uint64
		known      func(s *sshtest.Server) string
		want       Reason
		msg        string
	}
	cases := []tc{
		{"trusted CA", ca, []string{"127.0.0.1"}, later, func(*sshtest.Server) string { return caLine("127.0.0.1,*", ca.PublicKey()) }, "", ""},
		{"CA for this port", ca, []string{"127.0.0.1"}, later, func(s *sshtest.Server) string { return caLine(knownhosts.Normalize(s.Addr), ca.PublicKey()) }, "", ""},
		{"unknown CA", otherCA, []string{"127.0.0.1"}, later, func(*sshtest.Server) string { return caLine("*", ca.PublicKey()) }, ReasonHostCert, "no authorities"},
		{"wrong principal", ca, []string{"elsewhere.example"}, later, func(*sshtest.Server) string { return caLine("*", ca.PublicKey()) }, ReasonHostCert, "principal"},
		{"expired", ca, []string{"127.0.0.1"}, uint64(time.Now().Add(-time.Minute).Unix()), func(*sshtest.Server) string { return caLine("*", ca.PublicKey()) }, ReasonHostCert, "expired"},
		{"CA revoked", ca, []string{"127.0.0.1"}, later, func(*sshtest.Server) string {
			return caLine("*", ca.PublicKey()) + "@revoked * " + strings.SplitN(knownhosts.Line([]string{"x"}, ca.PublicKey()), " ", 2)[1] + "\n"
		}, ReasonHostKeyRevoked, "@revoked"},
	}
	for _, c := range cases {
		for _, policy := range []string{"strict", "accept-new"} {
			e := newEnv(t)
			s := certServer(t, e, c.signer, c.principals, c.before)
			content := c.known(s)
			e.writeKnownHosts(content, 0o600)
			tg := e.target("h", s)
			tg.HostKeyPolicy = policy
			_, err := run(t, pool(t), tg, Cmd{Script: "true"})
			if r := connReason(t, err); r != c.want || (c.msg != "" && !strings.Contains(err.Error(), c.msg)) {
				t.Errorf("%s, %s: reason %q, err %v", c.name, policy, r, err)
			}
			if e.readKnownHosts() != content {
				t.Errorf("%s, %s: known_hosts changed", c.name, policy)
			}
		}
	}

	// A CA line alone, and a host without a certificate: refused with a
	// message about certificates, not "changed", and nothing is added.
	e := newEnv(t)
	s := sshtest.Start(t, hostSigner(t), e.clientKey.PublicKey())
	content := caLine("*", ca.PublicKey())
	e.writeKnownHosts(content, 0o600)
	tg := e.target("h", s)
	tg.HostKeyPolicy = "accept-new"
	_, err := run(t, pool(t), tg, Cmd{Script: "true"})
	if r := connReason(t, err); r != ReasonHostCert || !strings.Contains(err.Error(), "certificate") {
		t.Errorf("plain host under a CA: reason %q, err %v", r, err)
	}
	if e.readKnownHosts() != content {
		t.Error("known_hosts changed")
	}
}

func TestWildcardMatch(t *testing.T) {
	for _, c := range []struct {
		pat, s string
		want   bool
	}{
		{"*", "", true}, {"*", "abc", true}, {"a*c", "abbbc", true}, {"a?c", "abc", true},
		{"a?c", "ac", false}, {"*.example", "c1.example", true}, {"*.example", "c1.example.org", false},
		{"127.0.0.*", "127.0.0.12", true}, {"c1", "c12", false},
	} {
		if got := wildcardMatch(c.pat, c.s); got != c.want {
			t.Errorf("wildcardMatch(%q, %q) = %v", c.pat, c.s, got)
		}
	}
}

func FuzzKnownHostsLine(f *testing.F) {
	pub, _, _ := ed25519.GenerateKey(nil)
	k, _ := ssh.NewPublicKey(pub)
	line := knownhosts.Line([]string{"[127.0.0.1]:2222"}, k)
	keyText := strings.SplitN(line, " ", 2)[1]
	for _, seed := range []string{line, "@revoked " + line, "@cert-authority *.example " + keyText,
		"|1|abc|def ssh-ed25519 AAAA", line + line, "!a,b,[c]:22 x y",
		// Mixed case, hashed (of the lowercased and of the typed name),
		// port 22's entry, negations and a hashed name glued on a line.
		"[Zippy.Home.ARPA]:2222 " + keyText, hashName("[zippy.home.arpa]:2222") + " " + keyText,
		hashName("[Zippy.Home.ARPA]:2222") + " " + keyText, "ZIPPY.home.arpa " + keyText,
		"*,![zippy.HOME.arpa]:2222 " + keyText, "!zippy.home.arpa,* " + keyText,
		line + hashName("[zippy.home.arpa]:2222") + " " + keyText, "[::FFFF:127.0.0.1]:2222 " + keyText} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, s string) {
		db := &knownHostsDB{}
		db.read([]byte(s), "known_hosts")
		for _, host := range []string{"127.0.0.1", "Zippy.Home.ARPA", "zippy.home.arpa", "::ffff:127.0.0.1"} {
			hostport := joinHostPort(host, 2222)
			l := db.lookup(hostport)
			_ = l.algorithms()
			add, err := db.verify(hostport, k, []string{"known_hosts"}, true)
			// A key is trusted only when a well-formed line pins it, for
			// this port or (OpenSSH's second look) for port 22.
			if err == nil && !add {
				ok := false
				for _, e := range append(l.pinned, db.lookup(joinHostPort(host, 22)).pinned...) {
					if string(e.key.Marshal()) == string(k.Marshal()) {
						ok = true
					}
				}
				if !ok {
					t.Fatalf("%s trusted without a pinned line: %q", host, s)
				}
			}
			if add && (len(l.problems) > 0 || len(l.unscoped) > 0 || len(l.revoking) > 0 || len(l.pinned) > 0 || len(l.cas) > 0) {
				t.Fatalf("%s: would add despite %q", host, s)
			}
		}
	})
}
