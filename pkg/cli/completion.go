package cli

import (
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// Dynamic shell completion (bash, zsh, fish through cobra's __complete):
// the inventory's hosts, groups and roles wherever a TARGET goes, run IDs
// (for resume, only those it can continue), replication names, NFS
// services and their members (failover --to), and fixed choices. It is wired here, by
// command path and flag name, so the commands themselves stay about what
// they do; a flag added later with one of these names completes too.

type completeFunc = func(*cobra.Command, []string, string) ([]cobra.Completion, cobra.ShellCompDirective)

// addCompletions sets the completion functions of the whole tree.
func addCompletions(root *cobra.Command, f *Factory) {
	c := &completer{f: f}
	registerCompletions(root, c, argCompletions(c), flagCompletions(c))
	patchCompletionScripts(root)
}

// argCompletions completes each command's arguments, by command path.
func argCompletions(c *completer) map[string]completeFunc {
	args := map[string]completeFunc{
		"hoctl hosts":     c.targets,
		"hoctl ping":      c.targets,
		"hoctl run":       c.runArgs,
		"hoctl deploy":    c.targets,
		"hoctl status":    c.targets,
		"hoctl snapshots": c.firstArg(c.hosts),
		"hoctl replicate": c.upTo(2, c.hosts),
		"hoctl history":   c.firstArg(c.runIDs),
		"hoctl resume":    c.firstArg(c.resumableRunIDs),
		"hoctl runbook plan": c.firstArg(func(*cobra.Command, []string, string) ([]cobra.Completion, cobra.ShellCompDirective) {
			return []cobra.Completion{"yaml", "yml"}, cobra.ShellCompDirectiveFilterFileExt
		}),
		"hoctl target-filter": c.firstArg(dirs),
		// TARGET, then SRC a local file, then DEST on the hosts.
		"hoctl copy": func(cmd *cobra.Command, args []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
			switch len(args) {
			case 0:
				return c.targets(cmd, args, toComplete)
			case 1:
				return nil, cobra.ShellCompDirectiveDefault
			}
			return nil, cobra.ShellCompDirectiveNoFileComp
		},
	}
	args["hoctl runbook run"] = args["hoctl runbook plan"]
	return args
}

// flagCompletions completes flags' values, by flag name, wherever the
// flag is (registerCompletions knows the names that differ by command).
func flagCompletions(c *completer) map[string]completeFunc {
	return map[string]completeFunc{
		"limit":     c.targets,
		"service":   c.nfsServices,
		"transport": fixed("relay\tthrough this machine", "direct\tthe source connects to the target"),
		"inventory": func(*cobra.Command, []string, string) ([]cobra.Completion, cobra.ShellCompDirective) {
			return []cobra.Completion{"yaml", "yml"}, cobra.ShellCompDirectiveFilterFileExt
		},
		"dir": dirs,
	}
}

// registerCompletions gives cmd and every command under it their
// argument and flag completions, leaving alone those a command set
// itself.
func registerCompletions(cmd *cobra.Command, c *completer, args, flags map[string]completeFunc) {
	if fn, ok := args[cmd.CommandPath()]; ok && cmd.ValidArgsFunction == nil {
		cmd.ValidArgsFunction = fn
	}
	register := func(fl *pflag.Flag) {
		fn, ok := flags[fl.Name]
		switch {
		case fl.Name == "name":
			fn, ok = c.replications, true // replicate --name, snapshots --name
		case fl.Name == "to" && cmd.Name() == "failover":
			fn, ok = c.nfsMembers, true // jobs' --to is a path
		}
		if ok {
			if _, exists := cmd.GetFlagCompletionFunc(fl.Name); !exists {
				_ = cmd.RegisterFlagCompletionFunc(fl.Name, fn)
			}
		}
	}
	cmd.LocalNonPersistentFlags().VisitAll(register)
	cmd.PersistentFlags().VisitAll(register)
	for _, sub := range cmd.Commands() {
		registerCompletions(sub, c, args, flags)
	}
}
