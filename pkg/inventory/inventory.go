// Package inventory loads and validates hoctl's host inventory (a YAML file
// describing hosts, groups and the cluster's services) and selects hosts
// from target expressions such as "cattle", "c*" or "zippy,c1".
package inventory

import (
	"github.com/hoctl/hoctl/pkg/retention"
	"time"
)

// Settings are the per-host connection settings. Each may be set under
// defaults or on a host; a zero value means "not set here", so that the
// caller can fall back to ~/.ssh/config and then to built-in defaults.
type Settings struct {
	User           string        `yaml:"user,omitempty" json:"user,omitempty"`
	Port           int           `yaml:"port,omitempty" json:"port,omitempty"`
	IdentityFiles  []string      `yaml:"identity_files,omitempty" json:"identity_files,omitempty"`
	KnownHosts     string        `yaml:"known_hosts,omitempty" json:"known_hosts,omitempty"`
	HostKeyPolicy  string        `yaml:"host_key_policy,omitempty" json:"host_key_policy,omitempty"`
	ConnectTimeout time.Duration `yaml:"connect_timeout,omitempty" json:"connect_timeout,omitempty"`
	CommandTimeout time.Duration `yaml:"command_timeout,omitempty" json:"command_timeout,omitempty"`
	Keepalive      time.Duration `yaml:"keepalive,omitempty" json:"keepalive,omitempty"`
	Become         string        `yaml:"become,omitempty" json:"become,omitempty"`
	Jump           string        `yaml:"jump,omitempty" json:"jump,omitempty"`
}

// Host policies and become modes accepted in the inventory.
const (
	PolicyStrict    = "strict"
	PolicyAcceptNew = "accept-new"
	BecomeNone      = "none"
	BecomeSudo      = "sudo"
	// LocalAddress makes a host run its commands on this machine, without SSH.
	LocalAddress = "local"
)

// Host is one machine of the inventory. Settings holds only what the file
// says for this host; use Inventory.Settings for the merged view.
type Host struct {
	Name    string   `yaml:"-" json:"name"`
	Address string   `yaml:"address,omitempty" json:"address,omitempty"`
	Roles   []string `yaml:"roles,omitempty" json:"roles,omitempty"`
	Managed *bool    `yaml:"managed,omitempty" json:"managed,omitempty"`
	// Vars are this host's template variables; they win over its
	// groups' and the inventory's (see Inventory.VarsFor).
	Vars     map[string]string `yaml:"vars,omitempty" json:"vars,omitempty"`
	Settings `yaml:",inline" json:",inline"`
}

// IsManaged reports whether hoctl may change this host; unmanaged hosts are
// only checked and read.
func (h *Host) IsManaged() bool { return h.Managed == nil || *h.Managed }

// HasRole reports whether the host carries the role.
func (h *Host) HasRole(role string) bool {
	for _, r := range h.Roles {
		if r == role {
			return true
		}
	}
	return false
}

// API is how hoctl reaches the Consul or Nomad HTTP API: one address, or
// several servers' addresses tried in order (URLs).
type API struct {
	Address   string   `yaml:"address,omitempty" json:"address,omitempty"`
	Addresses []string `yaml:"addresses,omitempty" json:"addresses,omitempty"`
	Via       string   `yaml:"via,omitempty" json:"via,omitempty"`
	TokenEnv  string   `yaml:"token_env,omitempty" json:"token_env,omitempty"`
}

// ReplicationSource is the sending side of a replication.
type ReplicationSource struct {
	Host        string `yaml:"host" json:"host"`
	Subvolume   string `yaml:"subvolume" json:"subvolume"`
	SnapshotDir string `yaml:"snapshot_dir,omitempty" json:"snapshot_dir,omitempty"`
	// ExcludeNested names subvolumes nested in Subvolume (relative paths)
	// that are left out of the replication on purpose: a snapshot never
	// contains them, and any other nested subvolume refuses the run.
	ExcludeNested []string `yaml:"exclude_nested,omitempty" json:"exclude_nested,omitempty"`
}

// ReplicationTarget is the receiving side of a replication.
type ReplicationTarget struct {
	Host string `yaml:"host" json:"host"`
	Dir  string `yaml:"dir" json:"dir"`
}

// Keep is the retention of each side: a number (the newest N) or a
// btrbk-style calendar policy ({min: 3, hourly: 24, daily: 7, ...}).
// The YAML is read into the Raw fields, which may hold either form, and
// validation turns them into the policies.
type Keep struct {
	RawSource any `yaml:"source,omitempty" json:"-"`
	RawTarget any `yaml:"target,omitempty" json:"-"`

	Source retention.Policy `yaml:"-" json:"source"`
	Target retention.Policy `yaml:"-" json:"target"`
}

// Replication describes one btrfs subvolume replicated between two hosts.
type Replication struct {
	Name      string            `yaml:"-" json:"name"`
	Source    ReplicationSource `yaml:"source" json:"source"`
	Target    ReplicationTarget `yaml:"target" json:"target"`
	Keep      Keep              `yaml:"keep,omitempty" json:"keep"`
	Transport string            `yaml:"transport,omitempty" json:"transport"`
	Compress  string            `yaml:"compress,omitempty" json:"compress"`
}

// NFSService is an NFS export served by one primary with btrfs standbys.
type NFSService struct {
	Name        string        `yaml:"-" json:"name"`
	Export      string        `yaml:"export" json:"export"`
	Subvolume   string        `yaml:"subvolume" json:"subvolume"`
	Replication string        `yaml:"replication,omitempty" json:"replication,omitempty"`
	Primary     string        `yaml:"primary" json:"primary"`
	Standbys    []string      `yaml:"standbys,omitempty" json:"standbys,omitempty"`
	Unit        string        `yaml:"unit,omitempty" json:"unit"`
	OwnerKey    string        `yaml:"owner_key,omitempty" json:"owner_key"`
	Clients     string        `yaml:"clients,omitempty" json:"clients,omitempty"`
	MaxLag      time.Duration `yaml:"max_lag,omitempty" json:"max_lag"`
}

// Deploy configures rolling NixOS deploys.
type Deploy struct {
	Command string `yaml:"command,omitempty" json:"command"`
	Quorum  string `yaml:"quorum,omitempty" json:"quorum,omitempty"`
	// ConfirmTimeout arms the magic rollback: a host not confirmed over
	// a new connection within it switches back by itself (0: off).
	ConfirmTimeout time.Duration `yaml:"confirm_timeout,omitempty" json:"confirm_timeout,omitempty"`
}

// Rewrite is one host path prefix to move.
type Rewrite struct {
	From string `yaml:"from" json:"from"`
	To   string `yaml:"to" json:"to"`
}

// Jobs locates the Nomad job files and the path rewrites to apply to them.
type Jobs struct {
	Dir     string    `yaml:"dir,omitempty" json:"dir"`
	Rewrite []Rewrite `yaml:"rewrite,omitempty" json:"rewrite,omitempty"`
}

// Inventory is a loaded, validated inventory file.
type Inventory struct {
	// Path is the file it was loaded from and Hash the hex SHA-256 of its
	// bytes: the journal records both so a resumed run can tell whether the
	// inventory changed underneath it.
	Path string `json:"path"`
	Hash string `json:"hash"`

	Defaults Settings            `json:"defaults"`
	Hosts    map[string]*Host    `json:"hosts"`
	Groups   map[string][]string `json:"groups,omitempty"`
	// Vars are the inventory's template variables ({{.Vars.x}}), and
	// GroupVars each group's; a host's own Vars win over both.
	Vars        map[string]string            `json:"vars,omitempty"`
	GroupVars   map[string]map[string]string `json:"group_vars,omitempty"`
	Consul      *API                         `json:"consul,omitempty"`
	Nomad       *API                         `json:"nomad,omitempty"`
	Replication map[string]*Replication      `json:"replication,omitempty"`
	NFS         map[string]*NFSService       `json:"nfs,omitempty"`
	Deploy      Deploy                       `json:"deploy"`
	Jobs        Jobs                         `json:"jobs"`

	// order keeps hosts in file order: operators list them deliberately
	// (primary before standby), and output should follow.
	order []string
}

// HostNames returns every host name in file order.
func (inv *Inventory) HostNames() []string { return append([]string(nil), inv.order...) }

// Host returns the named host, or nil.
func (inv *Inventory) Host(name string) *Host { return inv.Hosts[name] }

// GroupsOf returns the groups a host belongs to, sorted.
func (inv *Inventory) GroupsOf(host string) []string {
	var out []string
	for g, members := range inv.Groups {
		for _, m := range members {
			if m == host {
				out = append(out, g)
				break
			}
		}
	}
	sortStrings(out)
	return out
}

// Settings returns the host's connection settings with the inventory's
// defaults filled in where the host sets nothing. Fields neither sets stay
// zero.
func (inv *Inventory) Settings(h *Host) Settings {
	s := h.Settings
	d := inv.Defaults
	if s.User == "" {
		s.User = d.User
	}
	if s.Port == 0 {
		s.Port = d.Port
	}
	if s.IdentityFiles == nil {
		s.IdentityFiles = d.IdentityFiles
	}
	if s.KnownHosts == "" {
		s.KnownHosts = d.KnownHosts
	}
	if s.HostKeyPolicy == "" {
		s.HostKeyPolicy = d.HostKeyPolicy
	}
	if s.ConnectTimeout == 0 {
		s.ConnectTimeout = d.ConnectTimeout
	}
	if s.CommandTimeout == 0 {
		s.CommandTimeout = d.CommandTimeout
	}
	if s.Keepalive == 0 {
		s.Keepalive = d.Keepalive
	}
	if s.Become == "" {
		s.Become = d.Become
	}
	if s.Jump == "" {
		s.Jump = d.Jump
	}
	return s
}

// VarsFor is the template variables host h sees: the inventory's, then
// those of its groups, then its own, each level overriding the one
// before. Two groups of h that set one variable differently are refused
// by validation unless h sets it itself, so the merge never depends on
// group order.
func (inv *Inventory) VarsFor(h *Host) map[string]string {
	out := map[string]string{}
	for k, v := range inv.Vars {
		out[k] = v
	}
	if h == nil {
		return out
	}
	for _, g := range inv.GroupsOf(h.Name) {
		for k, v := range inv.GroupVars[g] {
			out[k] = v
		}
	}
	for k, v := range h.Vars {
		out[k] = v
	}
	return out
}

// VarNames is every variable name the inventory sets at any level,
// sorted.
func (inv *Inventory) VarNames() []string {
	seen := map[string]bool{}
	add := func(m map[string]string) {
		for k := range m {
			seen[k] = true
		}
	}
	add(inv.Vars)
	for _, m := range inv.GroupVars {
		add(m)
	}
	for _, h := range inv.Hosts {
		add(h.Vars)
	}
	out := make([]string, 0, len(seen))
	for k := range seen {
		out = append(out, k)
	}
	sortStrings(out)
	return out
}
