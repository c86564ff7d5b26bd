package sshexec

import (
	"strconv"
	"strings"
	"time"

	"github.com/hoctl/hoctl/pkg/inventory"
)

// Where an effective connection setting came from, most specific first:
// the order Resolve looks in.
const (
	OriginHost      = "inventory host"
	OriginDefaults  = "inventory defaults"
	OriginSSHConfig = "~/.ssh/config"
	OriginBuiltin   = "built-in default"
)

// Setting is one effective connection value and where it came from.
type Setting struct {
	Name   string `json:"name"`
	Value  string `json:"value"`
	Origin string `json:"origin"`
}

// Explain resolves h like Resolve and says, for each setting, which of
// the inventory's host entry, its defaults, ~/.ssh/config (looked up by
// the host's inventory name) or the built-in default supplied it: what
// `ssh -G` shows for OpenSSH. The values are the Target's own, so the two
// cannot disagree.
func (r *Resolver) Explain(h *inventory.Host) (*Target, []Setting, error) {
	t, err := r.Resolve(h)
	if err != nil {
		return nil, nil, err
	}
	hs, ds, sc := h.Settings, r.Inventory.Defaults, r.SSHConfig
	pick := func(host, defaults bool, cfgKey string) string {
		switch {
		case host:
			return OriginHost
		case defaults:
			return OriginDefaults
		case cfgKey != "" && !t.IsLocal() && sc.get(h.Name, cfgKey) != "":
			return OriginSSHConfig
		}
		return OriginBuiltin
	}
	out := []Setting{{"address", t.Address, pick(h.Address != "", false, "HostName")}}
	if out[0].Origin == OriginBuiltin {
		out[0].Origin = "the host's name"
	}
	if t.IsLocal() {
		return t, append(out,
			Setting{"become", t.Become, pick(hs.Become != "", ds.Become != "", "")},
			Setting{"command_timeout", shortDuration(t.CommandTimeout), pick(hs.CommandTimeout != 0, ds.CommandTimeout != 0, "")},
		), nil
	}
	idOrigin := pick(hs.IdentityFiles != nil, ds.IdentityFiles != nil, "")
	if idOrigin == OriginBuiltin {
		if files := sc.getAll(h.Name, "IdentityFile"); len(files) > 0 && (len(files) != 1 || files[0] != "~/.ssh/identity") {
			idOrigin = OriginSSHConfig
		}
	}
	khOrigin := pick(hs.KnownHosts != "", ds.KnownHosts != "", "UserKnownHostsFile")
	kh := t.KnownHosts[0]
	if len(t.KnownHosts) > 1 {
		kh += " (also read: " + strings.Join(t.KnownHosts[1:], ", ") + ")"
	}
	out = append(out,
		Setting{"port", strconv.Itoa(t.Port), pick(hs.Port != 0, ds.Port != 0, "Port")},
		Setting{"user", t.User, pick(hs.User != "", ds.User != "", "User")},
		Setting{"identity_files", strings.Join(t.IdentityFiles, ", "), idOrigin},
		Setting{"known_hosts", kh, khOrigin},
		Setting{"host_key_policy", t.HostKeyPolicy, pick(hs.HostKeyPolicy != "", ds.HostKeyPolicy != "", "")},
		Setting{"connect_timeout", shortDuration(t.ConnectTimeout), pick(hs.ConnectTimeout != 0, ds.ConnectTimeout != 0, "")},
		Setting{"command_timeout", shortDuration(t.CommandTimeout), pick(hs.CommandTimeout != 0, ds.CommandTimeout != 0, "")},
		Setting{"keepalive", shortDuration(t.Keepalive), pick(hs.Keepalive != 0, ds.Keepalive != 0, "")},
		Setting{"become", t.Become, pick(hs.Become != "", ds.Become != "", "")},
	)
	jump := Setting{"jump", "none", pick(hs.Jump != "", ds.Jump != "", "ProxyJump")}
	if chain := JumpChain(t); len(chain) > 0 {
		jump.Value = strings.Join(chain, " -> ")
	}
	return t, append(out, jump), nil
}

// JumpChain lists the hops to t, first (dialled from here) to last
// (adjacent to t), each as name (user@address:port).
func JumpChain(t *Target) []string {
	var hops []string
	for j := t.Jump; j != nil; j = j.Jump {
		s := j.User + "@" + j.HostPort()
		if j.Name != "" && j.Name != j.Address && !strings.Contains(j.Name, "@") && !strings.Contains(j.Name, ":") {
			s = j.Name + " (" + s + ")"
		}
		hops = append([]string{s}, hops...)
	}
	return hops
}

// shortDuration writes 10m rather than Go's 10m0s.
func shortDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}
