package cli

import (
	"strings"

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
