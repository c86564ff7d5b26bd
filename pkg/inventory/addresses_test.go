package inventory

import (
	"strings"
	"testing"
)

// A new-user review gave c3 c2's address: check said ok, and `run c3`
// ran on c2 and printed ✓. Two hosts reaching one sshd are refused,
// naming both; the same address on another port or through another jump
// host is another machine.
func TestTwoHostsOneSshdRefused(t *testing.T) {
	_, err := Parse("i.yaml", []byte("hosts:\n  c2: {address: 10.0.0.2}\n  c3: {address: 10.0.0.2}\n"))
	if err == nil || !strings.Contains(err.Error(), "c3 reaches the same sshd as c2 (10.0.0.2 port 22)") {
		t.Fatalf("err = %v", err)
	}
	if _, err := Parse("i.yaml", []byte("defaults: {port: 2222}\nhosts:\n  c2: {address: c3}\n  c3: {}\n")); err == nil || !strings.Contains(err.Error(), "c3 reaches the same sshd as c2 (c3 port 2222)") {
		t.Fatalf("a host's name as another's address: %v", err)
	}
	for _, ok := range []string{
		"hosts:\n  a: {address: 10.0.0.2}\n  b: {address: 10.0.0.2, port: 2222}\n",
		"hosts:\n  j1: {}\n  j2: {}\n  a: {address: 10.0.0.2, jump: j1}\n  b: {address: 10.0.0.2, jump: j2}\n",
		"hosts:\n  w1: {address: local}\n  w2: {address: local}\n",
	} {
		if _, err := Parse("i.yaml", []byte(ok)); err != nil {
			t.Errorf("%q: %v", ok, err)
		}
	}
}
