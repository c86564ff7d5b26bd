package sshexec

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha1" //nolint:gosec // OpenSSH's hashed host names are HMAC-SHA1
	"encoding/base64"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/hoctl/hoctl/internal/sshtest"
	"golang.org/x/crypto/ssh"
)

// These tests hold hoctl's known_hosts verdicts against OpenSSH's own:
// the real ssh client (openssh-client) connecting to the same in-process
// server with the same file, and ssh-keygen -F.

func needOpenSSH(t *testing.T) {
	t.Helper()
	for _, p := range []string{"ssh", "ssh-keygen"} {
		if _, err := exec.LookPath(p); err != nil {
			// In CI a missing prerequisite is a failure, never a skip.
			if os.Getenv("CI") == "true" {
				t.Fatalf("%s not installed (Debian: openssh-client): %v", p, err)
			}
			t.Skipf("%s not installed (Debian: openssh-client): %v", p, err)
		}
	}
}

// hashName is an entry's host field as `ssh-keygen -H` and ssh's
// HashKnownHosts write it: |1|salt|HMAC-SHA1(salt, name).
func hashName(name string) string {
	salt := make([]byte, sha1.Size)
	_, _ = rand.Read(salt)
	mac := hmac.New(sha1.New, salt)
	mac.Write([]byte(name))
	return "|1|" + base64.StdEncoding.EncodeToString(salt) + "|" + base64.StdEncoding.EncodeToString(mac.Sum(nil))
}

func keyText(k ssh.PublicKey) string {
	return k.Type() + " " + base64.StdEncoding.EncodeToString(k.Marshal())
}

// opensshVerdict connects with the real ssh client, strict checking, and
// reports whether it accepted the host key. Any failure other than host
// key verification fails the test.
func opensshVerdict(t *testing.T, e *env, host string, port int, knownHosts string) (accepted bool, out string) {
	t.Helper()
	cmd := exec.Command("ssh", "-F", "/dev/null",
		"-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes",
		"-o", "UserKnownHostsFile="+knownHosts, "-o", "GlobalKnownHostsFile=/dev/null",
		"-o", "CheckHostIP=no", "-o", "UpdateHostKeys=no", "-o", "IdentitiesOnly=yes",
		"-o", "ConnectTimeout=10", "-i", e.keyFile, "-p", strconv.Itoa(port), "-l", "root", host, "true")
	cmd.Env = append(os.Environ(), "HOME="+e.dir)
	b, err := cmd.CombinedOutput()
	out = string(b)
	if err == nil {
		return true, out
	}
	if strings.Contains(out, "Host key verification failed") {
		return false, out
	}
	t.Fatalf("ssh %s -p %d: %v: %s", host, port, err, out)
	return false, out
}

var unknownRe = regexp.MustCompile(`host key is known for (\S+) and you have requested strict checking`)

// opensshName is the name ssh looks up in known_hosts for host: it says
// so when the file is empty.
func opensshName(t *testing.T, e *env, host string, port int) string {
	t.Helper()
	empty := filepath.Join(e.dir, "empty_known_hosts")
	if err := os.WriteFile(empty, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	ok, out := opensshVerdict(t, e, host, port, empty)
	m := unknownRe.FindStringSubmatch(out)
	if ok || m == nil {
		t.Fatalf("ssh with an empty known_hosts: %s", out)
	}
	return m[1]
}

func keygenFinds(t *testing.T, name, file string) bool {
	t.Helper()
	out, err := exec.Command("ssh-keygen", "-F", name, "-f", file).CombinedOutput()
	if err != nil && len(out) > 0 {
		t.Fatalf("ssh-keygen -F %s: %v: %s", name, err, out)
	}
	return err == nil && strings.Contains(string(out), "found: line")
}

// The name ssh looks up for an address, as ssh itself prints it, is the
// one hoctl matches and writes: names lowercased, addresses canonical,
// [host]:port off port 22.
func TestKnownHostsNameIsOpenSSHs(t *testing.T) {
	needOpenSSH(t)
	e := newEnv(t)
	s4 := sshtest.Start(t, hostSigner(t), e.clientKey.PublicKey())
	s6 := sshtest.StartOn(t, "[::1]:0", []ssh.Signer{hostSigner(t)}, e.clientKey.PublicKey())
	for _, c := range []struct {
		host string
		s    *sshtest.Server
	}{
		{"127.0.0.1", s4}, {"localhost", s4}, {"LocalHost", s4}, {"LOCALHOST", s4},
		{"::1", s6}, {"0:0:0:0:0:0:0:1", s6}, {"::FFFF:127.0.0.1", s4}, {"0:0:0:0:0:ffff:7f00:1", s4},
	} {
		want := opensshName(t, e, c.host, c.s.Port)
		if got := parseKHAddr(joinHostPort(c.host, c.s.Port)).name(); got != want {
			t.Errorf("%s: hoctl looks up %q, ssh %q", c.host, got, want)
		}
	}
}

// One table, two judges: for each known_hosts line and each address as
// the inventory may spell it, hoctl (strict) and ssh (StrictHostKeyChecking
// yes) accept or refuse the same host key.
func TestKnownHostsVerdictsAgreeWithOpenSSH(t *testing.T) {
	needOpenSSH(t)
	e := newEnv(t)
	s4 := sshtest.Start(t, hostSigner(t), e.clientKey.PublicKey())
	s6 := sshtest.StartOn(t, "[::1]:0", []ssh.Signer{hostSigner(t)}, e.clientKey.PublicKey())
	ca := hostSigner(t)
	type row struct {
		host string
		s    *sshtest.Server
		line func(port string, key string) string
		// want is both verdicts; hoctlOnly marks the one deliberate
		// difference (see khAddr.typed).
		want, hoctlOnly bool
	}
	p := func(s string) func(string, string) string {
		return func(port, key string) string { return strings.ReplaceAll(s, "PORT", port) + " " + key }
	}
	hashed := func(name string) func(string, string) string {
		return func(port, key string) string { return hashName(strings.ReplaceAll(name, "PORT", port)) + " " + key }
	}
	rows := []row{
		{"localhost", s4, p("[localhost]:PORT"), true, false},
		{"LocalHost", s4, p("[localhost]:PORT"), true, false},
		{"localhost", s4, p("[LocalHost]:PORT"), true, false},
		{"LOCALHOST", s4, p("[LocalHost]:PORT"), true, false},
		{"LocalHost", s4, p("localhost"), true, false}, // port 22's entry: ssh's second look
		{"LocalHost", s4, p("other.example"), false, false},
		{"LocalHost", s4, p("[LOCAL*]:*"), true, false},
		{"LocalHost", s4, p("[l?calhost]:PORT"), true, false},
		{"LocalHost", s4, p("other.example,[LOCALHOST]:PORT"), true, false},
		{"LocalHost", s4, p("!localhost,*"), true, false},
		{"LocalHost", s4, p("*,![LOCALHOST]:PORT"), true, false}, // excluded, then found without the port
		{"LocalHost", s4, p("*,![LOCALHOST]:PORT,!LocalHost"), false, false},
		{"LocalHost", s4, p("[*]:PORT,!localhost"), true, false},
		{"LocalHost", s4, hashed("[localhost]:PORT"), true, false}, // what ssh and ssh-keygen -H write
		{"localhost", s4, hashed("[localhost]:PORT"), true, false},
		{"LocalHost", s4, hashed("[LocalHost]:PORT"), false, true}, // what hoctl wrote before
		{"localhost", s4, hashed("[LocalHost]:PORT"), false, false},
		{"LocalHost", s4, hashed("localhost"), true, false},
		{"LocalHost", s4, hashed("LocalHost"), false, true},
		{"127.0.0.1", s4, p("[127.0.0.1]:PORT"), true, false},
		{"127.0.0.1", s4, hashed("[127.0.0.1]:PORT"), true, false},
		{"::1", s6, p("[::1]:PORT"), true, false},
		{"::1", s6, hashed("[::1]:PORT"), true, false},
		{"0:0:0:0:0:0:0:1", s6, hashed("[::1]:PORT"), true, false},
		{"0:0:0:0:0:0:0:1", s6, p("[::1]:PORT"), true, false},
		{"::1", s6, p("::1"), true, false},
		{"::1", s6, p("[::2]:PORT,::2"), false, false},
		{"::FFFF:127.0.0.1", s4, hashed("[::ffff:127.0.0.1]:PORT"), true, false},
		{"::FFFF:127.0.0.1", s4, p("[::FFFF:127.0.0.1]:PORT"), true, false},
		{"::FFFF:127.0.0.1", s4, hashed("[127.0.0.1]:PORT"), false, false},
		{"::FFFF:127.0.0.1", s4, hashed("[::FFFF:127.0.0.1]:PORT"), false, true}, // hoctl's old spelling
	}
	for i, r := range rows {
		port := strconv.Itoa(r.s.Port)
		content := r.line(port, keyText(r.s.HostKey.PublicKey())) + "\n"
		file := filepath.Join(e.dir, fmt.Sprintf("known_hosts.%d", i))
		if err := os.WriteFile(file, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		label := fmt.Sprintf("%s vs %q", r.host, strings.Fields(content)[0])
		ossh, out := opensshVerdict(t, e, r.host, r.s.Port, file)
		tg := e.target("h", r.s)
		tg.Address, tg.KnownHosts = r.host, []string{file}
		_, err := run(t, pool(t), tg, Cmd{Script: "true"})
		hoctl := err == nil
		if ossh != (r.want && !r.hoctlOnly) {
			t.Errorf("%s: OpenSSH accepted=%v, the table says %v: %s", label, ossh, r.want && !r.hoctlOnly, out)
		}
		if hoctl != (r.want || r.hoctlOnly) {
			t.Errorf("%s: hoctl accepted=%v (OpenSSH %v): %v", label, hoctl, ossh, err)
		}
	}

	// The same key under markers: @revoked refuses, @cert-authority does
	// not pin a plain key; several keys, the right one anywhere, accepts.
	other := keyText(hostSigner(t).PublicKey())
	for _, c := range []struct {
		content string
		want    bool
	}{
		{"[LocalHost]:{PORT} {KEY}\n@revoked * {KEY}\n", false},
		{"@cert-authority [LocalHost]:{PORT} {CA}\n", false},
		{"[localhost]:{PORT} {OTHER}\n[LOCALHOST]:{PORT} {KEY}\n", true},
		{hashName(fmt.Sprintf("[localhost]:%d", s4.Port)) + " {OTHER}\n", false},
		{"[localhost]:{PORT} {OTHER}\nlocalhost {KEY}\n", false}, // known on this port: no second look
		{"localhost {OTHER}\n", false},
	} {
		content := strings.NewReplacer("{PORT}", strconv.Itoa(s4.Port), "{KEY}", keyText(s4.HostKey.PublicKey()),
			"{OTHER}", other, "{CA}", keyText(ca.PublicKey())).Replace(c.content)
		file := filepath.Join(e.dir, "known_hosts.markers")
		if err := os.WriteFile(file, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		ossh, out := opensshVerdict(t, e, "LocalHost", s4.Port, file)
		tg := e.target("h", s4)
		tg.Address, tg.KnownHosts = "LocalHost", []string{file}
		_, err := run(t, pool(t), tg, Cmd{Script: "true"})
		if ossh != c.want || (err == nil) != c.want {
			t.Errorf("%q: OpenSSH accepted=%v, hoctl err %v, want accepted=%v: %s", content, ossh, err, c.want, out)
		}
	}
}

// What accept-new writes, OpenSSH finds: ssh accepts the host with strict
// checking and ssh-keygen -F finds the entry under ssh's own name, in a
// plain file and in a hashed one.
func TestAcceptNewEntriesAreFoundByOpenSSH(t *testing.T) {
	needOpenSSH(t)
	e := newEnv(t)
	s4 := sshtest.Start(t, hostSigner(t), e.clientKey.PublicKey())
	s6 := sshtest.StartOn(t, "[::1]:0", []ssh.Signer{hostSigner(t)}, e.clientKey.PublicKey())
	for _, hashedFile := range []bool{false, true} {
		for _, c := range []struct {
			host string
			s    *sshtest.Server
		}{{"LocalHost", s4}, {"127.0.0.1", s4}, {"::FFFF:127.0.0.1", s4}, {"0:0::1", s6}} {
			label := fmt.Sprintf("%s, hashed=%v", c.host, hashedFile)
			file := filepath.Join(e.dir, "known_hosts.accept")
			first := "other.example " + keyText(hostSigner(t).PublicKey()) + "\n"
			if hashedFile {
				first = hashName("other.example") + " " + keyText(hostSigner(t).PublicKey()) + "\n"
			}
			if err := os.WriteFile(file, []byte(first), 0o600); err != nil {
				t.Fatal(err)
			}
			tg := e.target("h", c.s)
			tg.Address, tg.KnownHosts, tg.HostKeyPolicy = c.host, []string{file}, "accept-new"
			if _, err := run(t, pool(t), tg, Cmd{Script: "true"}); err != nil {
				t.Fatalf("%s: accept-new: %v", label, err)
			}
			b, _ := os.ReadFile(file)
			added := strings.TrimPrefix(string(b), first)
			if strings.HasPrefix(added, "|1|") != hashedFile {
				t.Errorf("%s: added %q", label, added)
			}
			name := opensshName(t, e, c.host, c.s.Port)
			if !hashedFile && !strings.HasPrefix(added, name+" ") {
				t.Errorf("%s: added %q, ssh looks up %s", label, added, name)
			}
			if !keygenFinds(t, name, file) {
				t.Errorf("%s: ssh-keygen -F %s does not find what accept-new wrote: %q", label, name, added)
			}
			if ok, out := opensshVerdict(t, e, c.host, c.s.Port, file); !ok {
				t.Errorf("%s: ssh refuses what accept-new wrote (%q): %s", label, added, out)
			}
		}
	}
}

// The review's attack: known_hosts holds the host's key hashed as OpenSSH
// hashes it (lowercased); the inventory spells the name in mixed case; an
// impostor answers. OpenSSH refuses ("REMOTE HOST IDENTIFICATION HAS
// CHANGED"); hoctl under accept-new used to miss the entry, take the
// impostor's key and append it.
func TestImpostorBehindMixedCaseNameIsRefused(t *testing.T) {
	e := newEnv(t)
	impostor := sshtest.Start(t, hostSigner(t), e.clientKey.PublicKey())
	genuine := hostSigner(t).PublicKey()
	content := hashName("[localhost]:"+strconv.Itoa(impostor.Port)) + " " + keyText(genuine) + "\n"
	for _, policy := range []string{"accept-new", "strict"} {
		e.writeKnownHosts(content, 0o600)
		tg := e.target("h", impostor)
		tg.Address, tg.HostKeyPolicy = "LocalHost", policy
		_, err := run(t, pool(t), tg, Cmd{Script: "true"})
		if r := connReason(t, err); r != ReasonHostKeyChanged {
			t.Errorf("%s: reason %q, err %v", policy, r, err)
		}
		if got := e.readKnownHosts(); got != content {
			t.Errorf("%s: known_hosts changed to %q", policy, got)
		}
	}
	if _, err := exec.LookPath("ssh"); err != nil {
		return
	}
	if ok, out := opensshVerdict(t, e, "LocalHost", impostor.Port, e.knownHosts); ok || !strings.Contains(out, "IDENTIFICATION HAS CHANGED") {
		t.Errorf("OpenSSH's verdict on the impostor: accepted=%v: %s", ok, out)
	}
	// The removal the error suggests (once the new key is verified)
	// finds the hashed entry.
	tg := e.target("h", impostor)
	tg.Address = "LocalHost"
	_, err := run(t, pool(t), tg, Cmd{Script: "true"})
	m := regexp.MustCompile(`\((ssh-keygen -R [^)]*)\)`).FindStringSubmatch(err.Error())
	if m == nil {
		t.Fatalf("no removal command in %v", err)
	}
	if out, err := exec.Command("sh", "-c", m[1]).CombinedOutput(); err != nil {
		t.Fatalf("%s: %v: %s", m[1], err, out)
	}
	if got := e.readKnownHosts(); got != "" {
		t.Errorf("%s left %q", m[1], got)
	}
}

func TestCanonicalHost(t *testing.T) {
	for in, want := range map[string]string{
		"Zippy.Home.ARPA": "zippy.home.arpa", "127.0.0.1": "127.0.0.1", "::1": "::1",
		"FE80::AB": "fe80::ab", "0:0::1": "::1", "::FFFF:127.0.0.1": "::ffff:127.0.0.1",
		"::7f00:1": "::127.0.0.1", "\u212Aey": "\u212Aey", "fe80::1%Eth0": "fe80::1%Eth0",
	} {
		if got := canonicalHost(in); got != want {
			t.Errorf("canonicalHost(%q) = %q, want %q", in, got, want)
		}
	}
}

// OpenSSH's second look (the bare name's entry for a host unknown on its
// port) trusts only the exact key on file, and not while an unreadable
// line could be this port's entry.
func TestSecondLookWithoutPort(t *testing.T) {
	e := newEnv(t)
	s := sshtest.Start(t, hostSigner(t), e.clientKey.PublicKey())
	key := keyText(s.HostKey.PublicKey())
	for _, c := range []struct {
		content string
		want    Reason
	}{
		{"127.0.0.1 " + key + "\n", ""},
		{"127.0.0.1 " + keyText(hostSigner(t).PublicKey()) + "\n", ReasonHostKeyUnknown},
		{"127.0.0.1 " + key + "\n|1|notbase64|x " + key + "\n", ReasonHostKeyUnknown},
		{"127.0.0.1 " + key + "\n127.0.0.1 ssh-ed25519 AAAA!!!!\n", ReasonHostKeyUnknown},
	} {
		e.writeKnownHosts(c.content, 0o600)
		_, err := run(t, pool(t), e.target("h", s), Cmd{Script: "true"})
		if r := connReason(t, err); r != c.want {
			t.Errorf("%q: reason %q, want %q (%v)", c.content, r, c.want, err)
		}
	}
}
