package cli

import (
	"fmt"
	"os"
	"path/filepath"
	"text/tabwriter"

	"github.com/hoctl/hoctl/pkg/hostout"
	"github.com/hoctl/hoctl/pkg/inventory"
	"github.com/hoctl/hoctl/pkg/iostreams"
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
	return printHostsSSH(f.IO, out)
}

// printHostsSSH shows each host's settings: host_ssh events, or a block
// per host of name, value and origin.
func printHostsSSH(ios *iostreams.IOStreams, out []hostSSH) error {
	if ios.JSON {
		for _, hs := range out {
			if err := ios.Emit(hs); err != nil {
				return err
			}
		}
		return nil
	}
	cs := ios.OutColorScheme()
	for i, hs := range out {
		if i > 0 {
			fmt.Fprintln(ios.Out)
		}
		title := hs.Host
		if hs.Local {
			title += " (local: runs on this machine, without SSH)"
		}
		fmt.Fprintln(ios.Out, cs.Bold(title))
		tw := tabwriter.NewWriter(ios.Out, 0, 4, 2, ' ', 0)
		for _, name := range hs.Order {
			v := hs.Settings[name]
			// Values come from the inventory and ssh_config, files someone
			// else may have written: shown, not acted on.
			fmt.Fprintf(tw, "  %s\t%s\t%s\n", name, hostout.Sanitize(v.Value), cs.Dim(hostout.Sanitize(v.Origin)))
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	return nil
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
