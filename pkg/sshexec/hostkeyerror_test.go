package sshexec

import (
	"strings"
	"testing"
)

// The hint must work as printed: ssh-keygen looks in ~/.ssh/known_hosts
// and by the bare host unless told the file and the [addr]:port form.
func TestHostKeyChangedNamesTheEntryAndFile(t *testing.T) {
	for addr, name := range map[string]string{"127.0.0.1:2222": "'[127.0.0.1]:2222'", "zippy.home.arpa:22": "zippy.home.arpa"} {
		e := &HostKeyError{Addr: addr, Presented: "ssh-ed25519 SHA256:new", Expected: []string{"ssh-ed25519 SHA256:old (/etc/hoctl/known_hosts:3)"},
			Files: []string{"/etc/hoctl/known_hosts"}}
		want := "remove the old entry (ssh-keygen -R " + name + " -f /etc/hoctl/known_hosts)"
		if !strings.Contains(e.Error(), want) {
			t.Errorf("%s: %q lacks %q", addr, e.Error(), want)
		}
	}
}
