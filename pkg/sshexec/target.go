package sshexec

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/hoctl/hoctl/pkg/inventory"
	"github.com/kevinburke/ssh_config"
)

// Built-in connection defaults, used where neither the inventory nor
// ~/.ssh/config says anything.
const (
	DefaultUser           = "root"
	DefaultPort           = 22
	DefaultConnectTimeout = 10 * time.Second
	DefaultCommandTimeout = 10 * time.Minute
	DefaultKeepalive      = 5 * time.Second
)

// Target is everything needed to reach one host, fully resolved.
type Target struct {
	Name           string
	Address        string // host name or IP, or "local"
	Port           int
	User           string
	IdentityFiles  []string
	KnownHosts     []string // the first is written to by accept-new
	HostKeyPolicy  string
	ConnectTimeout time.Duration
	CommandTimeout time.Duration
	Keepalive      time.Duration
	Become         string
	Jump           *Target
}

// IsLocal reports whether the target runs on this machine without SSH.
func (t *Target) IsLocal() bool { return t.Address == inventory.LocalAddress }

// HostPort is the dial address.
func (t *Target) HostPort() string {
	return joinHostPort(t.Address, t.Port)
}

func joinHostPort(h string, p int) string {
	if strings.Contains(h, ":") {
		return "[" + h + "]:" + strconv.Itoa(p)
	}
	return h + ":" + strconv.Itoa(p)
}

// SSHConfig is a parsed ~/.ssh/config. The zero value (or nil) has no
// entries.
type SSHConfig struct {
	cfg *ssh_config.Config
}

// LoadSSHConfig reads an OpenSSH client config; a missing file is empty.
//
// Every file it includes is checked first (regular, at most 1 MiB, at
// most 256 files, 5 levels): the library reads them whole, wherever they
// point.
func LoadSSHConfig(path string) (*SSHConfig, error) {
	data, err := readSSHConfig(path, filepath.Join(includeHome(), ".ssh"))
	if os.IsNotExist(err) {
		return &SSHConfig{}, nil
	}
	if err != nil {
		return nil, err
	}
	cfg, err := ssh_config.DecodeBytes(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return &SSHConfig{cfg: cfg}, nil
}

func (c *SSHConfig) get(alias, key string) string {
	if c == nil || c.cfg == nil {
		return ""
	}
	v, err := c.cfg.Get(alias, key)
	if err != nil {
		return ""
	}
	return v
}

func (c *SSHConfig) getAll(alias, key string) []string {
	if c == nil || c.cfg == nil {
		return nil
	}
	v, err := c.cfg.GetAll(alias, key)
	if err != nil {
		return nil
	}
	return v
}

// Resolver turns inventory hosts into Targets: the inventory wins, then
// ~/.ssh/config (looked up by the host's inventory name), then built-in
// defaults.
type Resolver struct {
	Inventory *inventory.Inventory
	SSHConfig *SSHConfig
	Home      string // for ~ expansion
}

// Resolve returns the Target for an inventory host.
func (r *Resolver) Resolve(h *inventory.Host) (*Target, error) {
	return r.resolve(h, map[string]bool{})
}

func (r *Resolver) resolve(h *inventory.Host, visiting map[string]bool) (*Target, error) {
	if visiting[h.Name] {
		return nil, fmt.Errorf("%s: jump hosts form a loop", h.Name)
	}
	visiting[h.Name] = true
	s := r.Inventory.Settings(h)
	sc := r.SSHConfig
	t := &Target{
		Name:           h.Name,
		Address:        h.Address,
		Port:           s.Port,
		User:           s.User,
		HostKeyPolicy:  s.HostKeyPolicy,
		ConnectTimeout: s.ConnectTimeout,
		CommandTimeout: s.CommandTimeout,
		Keepalive:      s.Keepalive,
		Become:         s.Become,
	}
	if t.Address == "" {
		t.Address = sc.get(h.Name, "HostName")
	}
	if t.Address == "" {
		t.Address = h.Name
	}
	if t.IsLocal() {
		t.Jump = nil
		return r.fillDefaults(t, s, h.Name), nil
	}
	if t.Port == 0 {
		if p, err := strconv.Atoi(sc.get(h.Name, "Port")); err == nil && p > 0 {
			t.Port = p
		}
	}
	if t.User == "" {
		t.User = sc.get(h.Name, "User")
	}
	t = r.fillDefaults(t, s, h.Name)

	jump := s.Jump
	if jump == "" {
		jump = sc.get(h.Name, "ProxyJump")
	}
	if jump == "" || jump == h.Name || strings.EqualFold(jump, "none") {
		return t, nil
	}
	// ProxyJump may list several hops; the last one is adjacent to the
	// target, so build the chain from the front.
	var prev *Target
	for _, hop := range strings.Split(jump, ",") {
		hop = strings.TrimSpace(hop)
		var ht *Target
		if jh := r.Inventory.Host(hop); jh != nil {
			var err error
			ht, err = r.resolve(jh, visiting)
			if err != nil {
				return nil, err
			}
			ht = cloneTarget(ht)
		} else {
			user, host, port, err := inventory.ParseJump(hop)
			if err != nil {
				return nil, fmt.Errorf("%s: jump: %w", h.Name, err)
			}
			ht = &Target{Name: hop, Address: host, Port: port, User: user}
			if ht.Port == 0 {
				if p, err := strconv.Atoi(sc.get(host, "Port")); err == nil && p > 0 {
					ht.Port = p
				}
			}
			if ht.User == "" {
				ht.User = sc.get(host, "User")
			}
			if hn := sc.get(host, "HostName"); hn != "" {
				ht.Address = hn
			}
			// A bastion named only by address shares the target's trust
			// settings: same known_hosts, same keys, same policy.
			ht = r.fillDefaults(ht, s, host)
		}
		if prev != nil && ht.Jump == nil {
			ht.Jump = prev
		}
		prev = ht
	}
	t.Jump = prev
	return t, nil
}

func cloneTarget(t *Target) *Target {
	c := *t
	return &c
}

func (r *Resolver) fillDefaults(t *Target, s inventory.Settings, alias string) *Target {
	sc := r.SSHConfig
	if t.Port == 0 {
		t.Port = DefaultPort
	}
	if t.User == "" {
		t.User = DefaultUser
	}
	files := s.IdentityFiles
	if files == nil {
		files = sc.getAll(alias, "IdentityFile")
		// ssh_config's package returns OpenSSH's built-in default when the
		// file says nothing; keep ours instead.
		if len(files) == 1 && files[0] == "~/.ssh/identity" {
			files = nil
		}
	}
	if files == nil {
		files = []string{"~/.ssh/id_ed25519", "~/.ssh/id_ecdsa", "~/.ssh/id_rsa"}
	}
	t.IdentityFiles = nil
	for _, f := range files {
		t.IdentityFiles = append(t.IdentityFiles, r.expand(f))
	}
	kh := s.KnownHosts
	if kh == "" {
		kh = sc.get(alias, "UserKnownHostsFile")
		if i := strings.IndexByte(kh, ' '); i > 0 {
			kh = kh[:i]
		}
	}
	if kh == "" {
		kh = "~/.ssh/known_hosts"
	}
	t.KnownHosts = []string{r.expand(kh)}
	// The system-wide file is read (never written), as OpenSSH does.
	if _, err := os.Stat("/etc/ssh/ssh_known_hosts"); err == nil {
		t.KnownHosts = append(t.KnownHosts, "/etc/ssh/ssh_known_hosts")
	}
	if t.HostKeyPolicy == "" {
		t.HostKeyPolicy = inventory.PolicyStrict
	}
	if t.ConnectTimeout == 0 {
		t.ConnectTimeout = DefaultConnectTimeout
	}
	if t.CommandTimeout == 0 {
		t.CommandTimeout = DefaultCommandTimeout
	}
	if t.Keepalive == 0 {
		t.Keepalive = DefaultKeepalive
	}
	if t.Become == "" {
		t.Become = inventory.BecomeNone
	}
	return t
}

func (r *Resolver) expand(p string) string {
	if p == "~" || strings.HasPrefix(p, "~/") {
		home := r.Home
		if home == "" {
			home, _ = os.UserHomeDir()
		}
		return filepath.Join(home, strings.TrimPrefix(p, "~"))
	}
	return p
}
