package cli

import (
	"strings"

	"github.com/hoctl/hoctl/pkg/inventory"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// --yes and --dry-run are accepted before the command name (hoctl --yes
// replicate ...) as well as after it, but only by the commands that can
// honour them: a flag that would be silently ignored is refused (exit 2).
// The root declares both hidden, so that they parse in either position;
// each command that honours one declares it again as its own flag (bound
// to the same Factory field), which is what its help lists.
const (
	annotYes    = "hoctl/honours-yes"
	annotDryRun = "hoctl/honours-dry-run"
)

// honoursYes marks cmd as asking for confirmation, which --yes skips.
func honoursYes(f *Factory, cmd *cobra.Command) *cobra.Command {
	annotate(cmd, annotYes)
	cmd.Flags().BoolVar(&f.Yes, "yes", false, "do not ask for confirmation (needed without a terminal)")
	return cmd
}

// honoursDryRun marks cmd as able to show its plan without acting.
func honoursDryRun(f *Factory, cmd *cobra.Command, usage string) *cobra.Command {
	annotate(cmd, annotDryRun)
	cmd.Flags().BoolVar(&f.DryRun, "dry-run", false, usage)
	return cmd
}

func annotate(cmd *cobra.Command, key string) {
	if cmd.Annotations == nil {
		cmd.Annotations = map[string]string{}
	}
	cmd.Annotations[key] = "true"
}

// checkGlobalFlags refuses --yes or --dry-run on a command that cannot
// honour them.
func checkGlobalFlags(cmd *cobra.Command) error {
	for _, c := range []struct{ flag, annot, why string }{
		{"dry-run", annotDryRun, "changes nothing, so --dry-run does not apply"},
		{"yes", annotYes, "never asks for confirmation, so --yes does not apply"},
	} {
		fl := cmd.Flags().Lookup(c.flag)
		if fl == nil || !fl.Changed || cmd.Annotations[c.annot] != "" {
			continue
		}
		return usagef("%s %s", cmd.CommandPath(), c.why)
	}
	// help and completion print text and shell scripts, never events.
	if fl := cmd.Flags().Lookup("json"); fl != nil && fl.Changed {
		for c := cmd; c != nil; c = c.Parent() {
			if c.Name() == "help" || c.Name() == "completion" {
				return usagef("%s prints text for people or a shell, so --json does not apply", cmd.CommandPath())
			}
		}
	}
	// An empty --limit would read as no limit and act on every target:
	// `--limit "$CANARY"` with the variable unset must not deploy them all.
	if fl := cmd.Flags().Lookup("limit"); fl != nil && fl.Changed && fl.Value.Type() == "string" && strings.TrimSpace(fl.Value.String()) == "" {
		return usagef("--limit: empty target; expected a host, group, role, glob or all (leave --limit out for every target)")
	}
	return nil
}

// hideGlobal declares a root flag that parses everywhere but shows only
// where a command declares it again.
func hideGlobal(fs *pflag.FlagSet, name string) {
	_ = fs.MarkHidden(name)
}

// addGlobalFlags declares the flags every command takes, and checks them
// before any command runs.
func addGlobalFlags(root *cobra.Command, f *Factory) {
	pf := root.PersistentFlags()
	pf.StringVarP(&f.InventoryPath, "inventory", "i", "", "inventory file (default $HOCTL_INVENTORY, else ./inventory.yaml)")
	pf.BoolVar(&f.IO.JSON, "json", false, "one JSON object per event on stdout, nothing else")
	pf.StringVar(&f.JQ, "jq", "", "with --json: run this jq expression on each event (gojq); strings print as they are")
	pf.BoolVar(&f.Yes, "yes", false, "do not ask for confirmation")
	pf.BoolVar(&f.DryRun, "dry-run", false, "run the before checks and print the plan; change nothing")
	hideGlobal(pf, "yes")
	hideGlobal(pf, "dry-run")
	root.PersistentPreRunE = func(c *cobra.Command, _ []string) error {
		if err := checkGlobalFlags(c); err != nil {
			return err
		}
		return f.setJQ(c)
	}
	pf.CountVarP(&f.Verbose, "verbose", "v", "on stderr: how each host is reached, the commands sent and their timings; -vv adds SSH protocol detail")
	pf.Var(&becomeFlag{f: f, mode: inventory.BecomeSudo}, "become", "run every remote command through sudo -n, whatever the inventory's become says")
	pf.Var(&becomeFlag{f: f, mode: inventory.BecomeNone}, "no-become", "run remote commands as the SSH user, whatever the inventory's become says")
	pf.BoolVar(&f.AcceptNew, "accept-new", false, "accept and record the key of a host not yet in known_hosts, for this run (as host_key_policy: accept-new); a changed key still stops it")
	for _, n := range []string{"become", "no-become"} {
		pf.Lookup(n).NoOptDefVal = "true"
	}
}
