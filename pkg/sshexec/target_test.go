package sshexec

import (
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/hoctl/hoctl/pkg/inventory"
)

func TestResolveInventoryWinsOverSSHConfig(t *testing.T) {
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "config")
	err := os.WriteFile(cfgPath, []byte(`
Host c1
  HostName 10.1.1.1
  User admin
  Port 2201
  IdentityFile ~/.ssh/c1_key
  ProxyJump gate

Host c2
  HostName 10.1.1.2
  User admin
  ProxyJump ops@bastion.example:2222,gate

Host gate
  HostName 10.9.9.9
  User jumper
`), 0o600)
	if err != nil {
		t.Fatal(err)
	}
	sc, err := LoadSSHConfig(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	inv, err := inventory.Parse("inv.yaml", []byte(`
defaults: {connect_timeout: 3s}
hosts:
  c1: {}
  c2: {port: 22, user: root}
  gate: {address: 10.0.0.254}
  me: {address: local}
`))
	if err != nil {
		t.Fatal(err)
	}
	r := &Resolver{Inventory: inv, SSHConfig: sc, Home: "/home/op"}

	c1, err := r.Resolve(inv.Host("c1"))
	if err != nil {
		t.Fatal(err)
	}
	if c1.Address != "10.1.1.1" || c1.User != "admin" || c1.Port != 2201 || c1.ConnectTimeout != 3*time.Second {
		t.Errorf("c1 from ssh_config: %+v", c1)
	}
	if !reflect.DeepEqual(c1.IdentityFiles, []string{"/home/op/.ssh/c1_key"}) {
		t.Errorf("c1 identity files %v", c1.IdentityFiles)
	}
	// ProxyJump names an inventory host: the inventory's address wins.
	if c1.Jump == nil || c1.Jump.Name != "gate" || c1.Jump.Address != "10.0.0.254" || c1.Jump.User != "jumper" {
		t.Errorf("c1 jump: %+v", c1.Jump)
	}

	c2, err := r.Resolve(inv.Host("c2"))
	if err != nil {
		t.Fatal(err)
	}
	if c2.User != "root" || c2.Port != 22 || c2.Address != "10.1.1.2" {
		t.Errorf("c2: inventory must win: %+v", c2)
	}
	// Two hops: bastion.example first, then gate, then c2.
	if c2.Jump == nil || c2.Jump.Name != "gate" || c2.Jump.Jump == nil || c2.Jump.Jump.Address != "bastion.example" ||
		c2.Jump.Jump.Port != 2222 || c2.Jump.Jump.User != "ops" {
		t.Errorf("c2 jump chain: %+v / %+v", c2.Jump, c2.Jump.Jump)
	}

	me, _ := r.Resolve(inv.Host("me"))
	if !me.IsLocal() || me.Jump != nil {
		t.Errorf("me: %+v", me)
	}
	if c1.HostKeyPolicy != "strict" || c1.KnownHosts[0] != "/home/op/.ssh/known_hosts" || c1.Keepalive != DefaultKeepalive {
		t.Errorf("defaults: %+v", c1)
	}
}
