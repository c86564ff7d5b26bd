package sshexec

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hoctl/hoctl/pkg/inventory"
)

// Each value comes from the most specific place that sets it, and Explain
// names that place: host entry, defaults, ~/.ssh/config, built in.
func TestExplainNamesWhereEachValueComesFrom(t *testing.T) {
	inv, err := inventory.Parse("inv.yaml", []byte(`
defaults: {user: admin, connect_timeout: 3s}
hosts:
  bastion: {address: 10.0.0.1, port: 2200}
  a: {address: 10.0.0.2, user: root, jump: bastion, become: sudo}
  b: {}
  me: {address: local}
`))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	cfg := filepath.Join(dir, "config")
	if err := os.WriteFile(cfg, []byte("Host b\n  HostName b.example\n  Port 2222\n  IdentityFile ~/.ssh/b_key\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	sc, err := LoadSSHConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	r := &Resolver{Inventory: inv, SSHConfig: sc, Home: "/home/op"}
	want := map[string]map[string]Setting{
		"a": {
			"address":         {"address", "10.0.0.2", OriginHost},
			"user":            {"user", "root", OriginHost},
			"port":            {"port", "22", OriginBuiltin},
			"connect_timeout": {"connect_timeout", "3s", OriginDefaults},
			"command_timeout": {"command_timeout", "10m", OriginBuiltin},
			"become":          {"become", "sudo", OriginHost},
			"host_key_policy": {"host_key_policy", "strict", OriginBuiltin},
			"jump":            {"jump", "bastion (admin@10.0.0.1:2200)", OriginHost},
			"identity_files":  {"identity_files", "/home/op/.ssh/id_ed25519, /home/op/.ssh/id_ecdsa, /home/op/.ssh/id_rsa", OriginBuiltin},
		},
		"b": {
			"address":        {"address", "b.example", OriginSSHConfig},
			"port":           {"port", "2222", OriginSSHConfig},
			"user":           {"user", "admin", OriginDefaults},
			"identity_files": {"identity_files", "/home/op/.ssh/b_key", OriginSSHConfig},
			"jump":           {"jump", "none", OriginBuiltin},
		},
		"me": {
			"address": {"address", "local", OriginHost},
			"become":  {"become", "none", OriginBuiltin},
		},
	}
	for host, settings := range want {
		tgt, got, err := r.Explain(inv.Host(host))
		if err != nil {
			t.Fatal(err)
		}
		byName := map[string]Setting{}
		for _, s := range got {
			byName[s.Name] = s
		}
		for name, w := range settings {
			if byName[name] != w {
				t.Errorf("%s %s = %+v, want %+v", host, name, byName[name], w)
			}
		}
		// The values are the Target's: Explain cannot tell a story that
		// Resolve does not follow.
		if host == "b" && (tgt.Port != 2222 || tgt.Address != "b.example") {
			t.Errorf("target %+v", tgt)
		}
		if host == "me" && len(got) != 3 {
			t.Errorf("a local host has no SSH settings to show: %v", got)
		}
	}
	if got := JumpChain(&Target{Jump: &Target{Name: "j2", Address: "10.0.0.3", Port: 22, User: "u", Jump: &Target{Name: "u@j1:22", Address: "j1", Port: 22, User: "u"}}}); strings.Join(got, " -> ") != "u@j1:22 -> j2 (u@10.0.0.3:22)" {
		t.Errorf("chain = %v", got)
	}
}
