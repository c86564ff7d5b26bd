package sshexec

import (
	"bufio"
	"bytes"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha1" //nolint:gosec // OpenSSH's hashed host names are HMAC-SHA1; this is their format, not our choice
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strings"

	"golang.org/x/crypto/ssh"
)

// The known_hosts database is parsed here rather than by x/crypto's
// knownhosts package because that package skips lines it cannot parse and
// counts @cert-authority lines as pinned keys. Both weaken verification:
// an entry glued onto a pinned line (an append to a file without a final
// newline) silently un-pins the host, so accept-new then takes any key;
// and a host certificate is refused as "changed". Here every line that
// does not parse is kept as a problem, and a problem that may concern the
// host refuses the connection instead of being ignored.

// maxKnownHostsLine bounds one line; a longer one is a problem, not an
// allocation.
const maxKnownHostsLine = 64 << 10

const (
	markerCA      = "@cert-authority"
	markerRevoked = "@revoked"
)

// khAddr is a host as known_hosts matches it: the name or address as
// written in the inventory, and the port.
type khAddr struct{ host, port string }

func parseKHAddr(hostport string) khAddr {
	h, p, err := net.SplitHostPort(hostport)
	if err != nil {
		return khAddr{host: hostport, port: "22"}
	}
	return khAddr{host: h, port: p}
}

// name is the form OpenSSH looks up and writes: the host name lowercased
// (ASCII only, as its lowercase() does), a numeric address in canonical
// form (getnameinfo's NI_NUMERICHOST), and "[host]:port" off port 22.
// A hashed entry is the HMAC of exactly this string, so a name that
// differs in case or spelling never matches it.
func (a khAddr) name() string {
	return bracket(canonicalHost(a.host), a.port)
}

// typed is the host as written, bracketed the same way. hoctl used to
// write entries under this form (a mixed-case name hashed as it was, an
// address as spelt); such an entry still pins its key, so that an entry
// hoctl wrote never stops counting. A negated pattern that matches either
// form excludes the host.
func (a khAddr) typed() string {
	return bracket(a.host, a.port)
}

func bracket(host, port string) string {
	if port == "22" {
		return host
	}
	return "[" + host + "]:" + port
}

// canonicalHost is ssh's host as it reaches known_hosts: a numeric address
// canonicalised (ssh does not lowercase addresses but prints them back
// with getnameinfo), any other name lowercased.
func canonicalHost(h string) string {
	ip, err := netip.ParseAddr(h)
	if err != nil {
		return lowerASCII(h)
	}
	if ip.Is6() && !ip.Is4In6() && ip.Zone() == "" {
		// glibc's inet_ntop writes an IPv4-compatible address (::a.b.c.d,
		// the first 96 bits zero and a.b not zero) in dotted form.
		b := ip.As16()
		if [12]byte(b[:12]) == [12]byte{} && b[12]|b[13] != 0 {
			return "::" + netip.AddrFrom4([4]byte(b[12:])).String()
		}
	}
	return ip.String()
}

// lowerASCII is C's tolower over bytes: OpenSSH leaves non-ASCII bytes as
// they are, so a Unicode case mapping (k for the Kelvin sign) would make
// a pattern match a name that OpenSSH's does not.
func lowerASCII(s string) string {
	for i := 0; i < len(s); i++ {
		if c := s[i]; 'A' <= c && c <= 'Z' {
			b := []byte(s)
			for j := i; j < len(b); j++ {
				if 'A' <= b[j] && b[j] <= 'Z' {
					b[j] += 'a' - 'A'
				}
			}
			return string(b)
		}
	}
	return s
}

// khHosts is a line's host field: a hashed name or a pattern list.
type khHosts struct {
	hashed   bool
	salt     []byte
	hash     []byte
	patterns []khPattern
}

type khPattern struct {
	negate bool
	glob   string // lower case; may hold * and ? wildcards
}

// match is OpenSSH's: each pattern, lowercased, is matched against the
// whole stored form of the name ("host", or "[host]:port" off port 22), so
// "*" covers every port and "*.example" only port 22; a hashed name is
// compared with the HMAC of that form.
func (h *khHosts) match(a khAddr) bool {
	name, typed := a.name(), a.typed()
	if h.hashed {
		return h.hashes(name) || (typed != name && h.hashes(typed))
	}
	names := []string{name}
	if lt := lowerASCII(typed); lt != name {
		names = append(names, lt)
	}
	matched := false
	for _, p := range h.patterns {
		for _, n := range names {
			if !wildcardMatch(p.glob, n) {
				continue
			}
			if p.negate {
				return false
			}
			matched = true
		}
	}
	return matched
}

func (h *khHosts) hashes(name string) bool {
	mac := hmac.New(sha1.New, h.salt)
	mac.Write([]byte(name))
	return hmac.Equal(mac.Sum(nil), h.hash)
}

// wildcardMatch is OpenSSH's match_pattern: * and ? with no regard for
// separators.
func wildcardMatch(pat, s string) bool {
	for len(pat) > 0 {
		switch pat[0] {
		case '*':
			for i := 0; i <= len(s); i++ {
				if wildcardMatch(pat[1:], s[i:]) {
					return true
				}
			}
			return false
		case '?':
			if s == "" {
				return false
			}
		default:
			if s == "" || s[0] != pat[0] {
				return false
			}
		}
		pat, s = pat[1:], s[1:]
	}
	return s == ""
}

func parseHashedHost(field string) (*khHosts, error) {
	parts := strings.Split(field, "|")
	if len(parts) != 4 || parts[0] != "" {
		return nil, errors.New("hashed host name is not |1|salt|hash")
	}
	if parts[1] != "1" {
		return nil, fmt.Errorf("hashed host name of unknown type %q", parts[1])
	}
	salt, err := base64.StdEncoding.DecodeString(parts[2])
	if err != nil || len(salt) != sha1.Size {
		return nil, errors.New("hashed host name with a bad salt")
	}
	hash, err := base64.StdEncoding.DecodeString(parts[3])
	if err != nil || len(hash) != sha1.Size {
		return nil, errors.New("hashed host name with a bad hash")
	}
	return &khHosts{hashed: true, salt: salt, hash: hash}, nil
}

func parseHostField(field string) (*khHosts, error) {
	if strings.HasPrefix(field, "|") {
		return parseHashedHost(field)
	}
	h := &khHosts{}
	for _, p := range strings.Split(field, ",") {
		var pat khPattern
		if strings.HasPrefix(p, "!") {
			pat.negate, p = true, p[1:]
		}
		if p == "" {
			return nil, errors.New("empty host pattern")
		}
		if strings.HasPrefix(p, "[") && !strings.Contains(p, "]") {
			return nil, fmt.Errorf("bad host pattern %q", p)
		}
		pat.glob = lowerASCII(p)
		h.patterns = append(h.patterns, pat)
	}
	return h, nil
}

// khEntry is one usable line.
type khEntry struct {
	marker string // "", markerCA or markerRevoked
	hosts  *khHosts
	key    ssh.PublicKey
	file   string
	line   int
}

func (e *khEntry) where() string { return fmt.Sprintf("%s:%d", e.file, e.line) }

// khProblem is a line that could not be used. hosts is its host field when
// that much parsed, so the problem's scope is known.
type khProblem struct {
	file    string
	line    int
	text    string
	problem string
	marker  string
	hosts   *khHosts
}

func (p *khProblem) where() string { return fmt.Sprintf("%s:%d", p.file, p.line) }

// mentions reports whether the bad line may be about a: its host field
// matches, or a word of it holds a's name, or a hashed name that matches a
// is glued into it (an entry appended onto a line without a newline).
func (p *khProblem) mentions(a khAddr) bool {
	if p.hosts != nil && p.hosts.match(a) {
		return true
	}
	norm, typed := a.name(), lowerASCII(a.typed())
	host, typedHost := "["+canonicalHost(a.host)+"]", "["+lowerASCII(a.host)+"]"
	for _, w := range strings.FieldsFunc(p.text, func(r rune) bool { return r == ' ' || r == '\t' || r == ',' }) {
		lw := lowerASCII(strings.TrimPrefix(w, "!"))
		if lw == norm || strings.HasSuffix(lw, norm) || lw == typed || strings.HasSuffix(lw, typed) ||
			strings.Contains(lw, host) || strings.Contains(lw, typedHost) {
			return true
		}
	}
	for i := strings.Index(p.text, "|1|"); i >= 0; {
		rest := p.text[i:]
		// |1|<28 base64>|<28 base64>
		if len(rest) >= 3+28+1+28 {
			if h, err := parseHashedHost(rest[:3+28+1+28]); err == nil && h.match(a) {
				return true
			}
		}
		j := strings.Index(p.text[i+1:], "|1|")
		if j < 0 {
			break
		}
		i += 1 + j
	}
	return false
}

// knownHostsDB is every entry of a target's known_hosts files.
type knownHostsDB struct {
	entries  []khEntry
	problems []khProblem
	// hashed: the first file (the one accept-new writes) holds hashed
	// names, so new entries are hashed too.
	hashed bool
}

func loadKnownHosts(files []string) (*knownHostsDB, error) {
	db := &knownHostsDB{}
	for i, f := range files {
		data, err := os.ReadFile(f)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("known_hosts: %w", err)
		}
		hashed := db.read(data, f)
		if i == 0 {
			db.hashed = hashed
		}
	}
	return db, nil
}

// read parses one file's content and reports whether it uses hashed host
// names.
func (db *knownHostsDB) read(data []byte, file string) (hashed bool) {
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 4096), maxKnownHostsLine)
	n := 0
	for sc.Scan() {
		n++
		line := strings.Trim(sc.Text(), " \t\r")
		if line == "" || line[0] == '#' {
			continue
		}
		e, prob := parseKHLine(line)
		if prob != nil {
			prob.file, prob.line, prob.text = file, n, line
			db.problems = append(db.problems, *prob)
			continue
		}
		e.file, e.line = file, n
		if e.hosts.hashed && e.marker == "" {
			hashed = true
		}
		db.entries = append(db.entries, *e)
	}
	if sc.Err() != nil {
		// A line too long to read: everything after it is unknown, so
		// the rest of the file counts as one problem of unknown scope.
		db.problems = append(db.problems, khProblem{file: file, line: n + 1, problem: "line longer than 64 KiB"})
	}
	return hashed
}

func parseKHLine(line string) (*khEntry, *khProblem) {
	// Fields are separated by spaces and tabs only, as OpenSSH does.
	words := strings.FieldsFunc(line, func(r rune) bool { return r == ' ' || r == '\t' })
	if len(words) == 0 {
		return nil, &khProblem{problem: "no fields"}
	}
	e := &khEntry{}
	if strings.HasPrefix(words[0], "@") {
		switch words[0] {
		case markerCA, markerRevoked:
			e.marker = words[0]
			words = words[1:]
		default:
			return nil, &khProblem{problem: fmt.Sprintf("unknown marker %q", words[0]), marker: "unknown"}
		}
	}
	if len(words) == 0 {
		return nil, &khProblem{problem: "marker without host and key", marker: e.marker}
	}
	hosts, err := parseHostField(words[0])
	if err != nil {
		return nil, &khProblem{problem: err.Error(), marker: e.marker}
	}
	prob := func(msg string) *khProblem { return &khProblem{problem: msg, marker: e.marker, hosts: hosts} }
	if len(words) < 3 {
		return nil, prob("missing key type or key")
	}
	blob, err := base64.StdEncoding.DecodeString(words[2])
	if err != nil {
		return nil, prob("key is not valid base64")
	}
	key, err := ssh.ParsePublicKey(blob)
	if err != nil {
		return nil, prob("key does not parse: " + err.Error())
	}
	if key.Type() != words[1] {
		return nil, prob(fmt.Sprintf("key type %s does not match %s", key.Type(), words[1]))
	}
	if _, ok := key.(*ssh.Certificate); ok {
		return nil, prob("a certificate is not a host key (use @cert-authority with the CA's key)")
	}
	e.hosts, e.key = hosts, key
	return e, nil
}

// lookup is what the files say about one host.
type lookup struct {
	pinned   []khEntry
	cas      []khEntry
	problems []khProblem // lines that may be about this host
	unscoped []khProblem // lines whose host field did not parse
	revoking []khProblem // bad @revoked lines: which key they revoke is unknown
}

func (db *knownHostsDB) lookup(hostport string) lookup {
	a := parseKHAddr(hostport)
	var l lookup
	for _, e := range db.entries {
		if e.marker == markerRevoked || !e.hosts.match(a) {
			continue
		}
		if e.marker == markerCA {
			l.cas = append(l.cas, e)
		} else {
			l.pinned = append(l.pinned, e)
		}
	}
	for _, p := range db.problems {
		switch {
		case p.marker == markerRevoked || strings.Contains(p.text, markerRevoked):
			l.revoking = append(l.revoking, p)
		case p.mentions(a):
			l.problems = append(l.problems, p)
		case p.hosts == nil:
			l.unscoped = append(l.unscoped, p)
		}
	}
	return l
}

// revoked returns the @revoked entry for key (or, for a certificate, its
// key or signing CA).
func (db *knownHostsDB) revoked(key ssh.PublicKey) *khEntry {
	blobs := [][]byte{key.Marshal()}
	if c, ok := key.(*ssh.Certificate); ok {
		blobs = [][]byte{c.Key.Marshal(), c.SignatureKey.Marshal()}
	}
	for i := range db.entries {
		e := &db.entries[i]
		if e.marker != markerRevoked {
			continue
		}
		for _, b := range blobs {
			if bytes.Equal(e.key.Marshal(), b) {
				return e
			}
		}
	}
	return nil
}

// algorithms returns the host key algorithms to ask the server for: host
// certificates first where a CA is trusted for the host, then exactly the
// key types pinned for it, so the server presents a key we can check (Go's
// client otherwise prefers a type OpenSSH may not have stored, and a valid
// host looks "changed"). Nil means no preference (unknown host).
func (l lookup) algorithms() []string {
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
	if len(l.cas) > 0 {
		add(ssh.CertAlgoED25519v01, ssh.CertAlgoECDSA256v01, ssh.CertAlgoECDSA384v01, ssh.CertAlgoECDSA521v01,
			ssh.CertAlgoRSASHA512v01, ssh.CertAlgoRSASHA256v01)
	}
	for _, e := range l.pinned {
		switch typ := e.key.Type(); typ {
		case ssh.KeyAlgoRSA:
			add(ssh.KeyAlgoRSASHA512, ssh.KeyAlgoRSASHA256, ssh.KeyAlgoRSA)
		default:
			add(typ)
		}
	}
	return algos
}

// knownHostsLine renders an entry for hostport as accept-new writes it,
// under the name OpenSSH looks up (lowercased, canonical): hashed when the
// file already hashes its names.
func knownHostsLine(hostport string, key ssh.PublicKey, hashed bool) (string, error) {
	name := parseKHAddr(hostport).name()
	if hashed {
		salt := make([]byte, sha1.Size)
		if _, err := rand.Read(salt); err != nil {
			return "", err
		}
		mac := hmac.New(sha1.New, salt)
		mac.Write([]byte(name))
		name = "|1|" + base64.StdEncoding.EncodeToString(salt) + "|" + base64.StdEncoding.EncodeToString(mac.Sum(nil))
	}
	return name + " " + key.Type() + " " + base64.StdEncoding.EncodeToString(key.Marshal()), nil
}
