package cli

import (
	"os"
	"path/filepath"

	"github.com/hoctl/hoctl/pkg/inventory"
	"github.com/hoctl/hoctl/pkg/sshexec"
)

// hostsSSHRun prints each selected host's effective connection and where
// every value came from, without connecting: `hosts --ssh`.
func hostsSSHRun(opts *HostsOptions, inv *inventory.Inventory, hosts []*inventory.Host) error {
	f := opts.F
	home, _ := os.UserHomeDir()
	sc, err := sshexec.LoadSSHConfig(filepath.Join(home, ".ssh", "config"))
	if err != nil {
		return err
	}
	r := &sshexec.Resolver{Inventory: inv, SSHConfig: sc, Home: home}
	var out []hostSSH
	for _, h := range hosts {
		t, settings, err := r.Explain(h)
		if err != nil {
			return err
		}
		out = append(out, explainHost(opts.F, h, t.IsLocal(), settings))
	}
	return newHostsPrinter(f.IO).ssh(out)
}

// explainHost is one host's settings and their origins, with the
// --become flag and the agent as they would apply.
func explainHost(f *Factory, h *inventory.Host, local bool, settings []sshexec.Setting) hostSSH {
	hs := hostSSH{Host: h.Name, Local: local, Settings: map[string]sshValue{}}
	for _, s := range settings {
		if s.Name == "become" && f.Become != "" {
			s.Value, s.Origin = f.Become, "--"+map[bool]string{true: "become", false: "no-become"}[f.Become == inventory.BecomeSudo]+" flag"
		}
		hs.Order = append(hs.Order, s.Name)
		hs.Settings[s.Name] = sshValue{s.Value, s.Origin}
	}
	if !hs.Local {
		agent := sshValue{"none", "SSH_AUTH_SOCK not set"}
		if sock := f.Getenv("SSH_AUTH_SOCK"); sock != "" {
			agent = sshValue{sock + " (tried before identity_files)", "SSH_AUTH_SOCK"}
		}
		hs.Order = append(hs.Order, "agent")
		hs.Settings["agent"] = agent
	}
	return hs
}
