package cli

import (
	"regexp"
	"strings"

	"github.com/spf13/cobra"
)

// Examples and the descriptions some commands lack, kept in one table so
// every command's help gets both (a test walks the tree and checks).
// Keyed by the command path without "hoctl ".
var commandHelp = map[string]struct{ long, example string }{
	"hosts": {example: `  hoctl hosts                 # every host, its address, roles and groups
  hoctl hosts cattle          # one group
  hoctl --json hosts 'c*'     # as JSON, one object per host
  hoctl hosts c1 --ssh        # how hoctl connects to c1, and why`},
	"ping": {example: `  hoctl ping                  # every host
  hoctl ping cattle,!c2       # a group without one host
  hoctl ping --parallel 8 all`},
	"run": {example: `  hoctl run cattle -- 'systemctl is-active nomad && uptime'
  hoctl run all -- ls -l "/data/my dir"
  hoctl run --group --timeout 30s quorum -- journalctl -u consul -n 5
  hoctl --json run c1 -- nixos-version`},
	"replicate": {example: `  hoctl replicate                       # every replication of the inventory
  hoctl replicate zippy c1              # the one from zippy to c1
  hoctl replicate --name services --full
  hoctl replicate c1 zippy              # send back after a failover
  hoctl --dry-run replicate --name services`},
	"snapshots": {example: `  hoctl snapshots zippy
  hoctl snapshots c1 --name services
  hoctl --json snapshots c1`},
	"target-filter": {example: `  # in c1's /root/.ssh/authorized_keys, one line:
  command="hoctl target-filter /persist/services-standby",restrict ssh-ed25519 AAAA... hoctl-replication`},
	"guard": {example: `  # the unit on each NFS host (the NixOS module in docs/failover.md writes it):
  ExecStart=hoctl guard --key hoctl/nfs/data-services/owner --unit nfs-server.service
  hoctl --dry-run guard --key hoctl/nfs/data-services/owner   # by hand: say, do nothing`},
	"failover": {example: `  hoctl --dry-run failover --to c1      # the plan and the checks, nothing changed
  hoctl failover --to c1
  hoctl failover --to c1 --primary-down # zippy is gone: no final sync
  hoctl failover --to zippy             # back, after replicate c1 zippy`},
	"migrate-jobs": {example: `  hoctl migrate-jobs                          # diffs and a report; writes nothing
  hoctl migrate-jobs --from /data/compute --to /data/services --write
  hoctl migrate-jobs --plan                   # nomad plan of each rewritten job
  hoctl migrate-jobs --submit                 # submit job by job, waiting for health`},
	"status": {example: `  hoctl status
  hoctl status --watch
  hoctl --json status`},
	"deploy": {example: `  hoctl --dry-run deploy           # the order and the checks
  hoctl deploy c1 c2 c3
  hoctl deploy --rollback c2       # the previous generation`},
	"runbook": {example: `  hoctl runbook plan docs/runbooks/phase3-copy-data.yaml --var app=gitea
  hoctl runbook run docs/runbooks/phase3-copy-data.yaml --var app=gitea`},
	"runbook plan": {
		long: `Load the runbook FILE against the inventory, run every step's before check
for real and print each step's hosts and exact commands. Nothing is
changed. See 'hoctl help runbooks'.`,
		example: `  hoctl runbook plan docs/runbooks/phase3-copy-data.yaml --var app=gitea`},
	"runbook run": {
		long: `Show the plan of the runbook FILE, ask for confirmation (or take --yes),
then run it step by step: before check, command, after check, on each
step's hosts. A failed step stops the run; its undo runs where it
applies. Every run is journaled: see hoctl history and hoctl resume.`,
		example: `  hoctl runbook run docs/runbooks/phase3-copy-data.yaml --var app=gitea
  hoctl --yes runbook run maintenance.yaml --var host=c2`},
	"history": {
		long: `Without RUN-ID, list the journaled runs, newest last: id, kind, when, result.
With RUN-ID, show that run step by step and host by host. The journal is in
$XDG_STATE_HOME/hoctl/runs (default ~/.local/state/hoctl/runs).`,
		example: `  hoctl history
  hoctl history 20261126T084500Z-3fa2c1
  hoctl --json history 20261126T084500Z-3fa2c1`},
	"resume": {example: `  hoctl history                       # find the failed run
  hoctl resume 20261126T084500Z-3fa2c1`},
	"version": {
		long: `Print hoctl's version, the commit it was built from, the build date and the Go version.`,
		example: `  hoctl version
  hoctl --json version`},
	"completion bash":       {example: `  source <(hoctl completion bash)`},
	"completion zsh":        {example: `  hoctl completion zsh > "${fpath[1]}/_hoctl"`},
	"completion fish":       {example: `  hoctl completion fish > ~/.config/fish/completions/hoctl.fish`},
	"completion powershell": {example: `  hoctl completion powershell | Out-String | Invoke-Expression`},
	"completion": {example: `  source <(hoctl completion bash)
  hoctl completion zsh > "${fpath[1]}/_hoctl"
  hoctl completion fish > ~/.config/fish/completions/hoctl.fish`},
}

// addHelp fills in the examples and missing descriptions of commandHelp
// and adds the help topics.
func addHelp(root *cobra.Command) {
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		key := strings.TrimPrefix(strings.TrimPrefix(c.CommandPath(), root.Name()), " ")
		if h, ok := commandHelp[key]; ok {
			if c.Long == "" {
				c.Long = h.long
			}
			if c.Example == "" {
				c.Example = h.example
			}
		}
		c.Long = pointAtInstalledHelp(root, c.Long)
		c.Example = pointAtInstalledHelp(root, c.Example)
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(root)
	for _, t := range helpTopics {
		root.AddCommand(&cobra.Command{
			Use:   t.name,
			Short: t.short,
			Long:  t.text(root),
		})
	}
}

var reDocsPage = regexp.MustCompile(`docs/([a-z0-9-]+)\.md(#[a-z0-9-]+)?`)

// pointAtInstalledHelp rewrites "docs/PAGE.md" in a command's help, which
// only a source checkout has, into what the installed binary offers: the
// help topic made from that page, else the man page of the command the
// page documents.
func pointAtInstalledHelp(root *cobra.Command, s string) string {
	return reDocsPage.ReplaceAllStringFunc(s, func(m string) string {
		page := reDocsPage.FindStringSubmatch(m)[1]
		for _, t := range helpTopics {
			if t.page == page+".md" && t.section == "" {
				return "'hoctl help " + t.name + "'"
			}
		}
		if c, _, err := root.Find([]string{page}); err == nil && c != root {
			return "'man hoctl-" + page + "'"
		}
		return "hoctl's " + page + " documentation"
	})
}

// newHelpCmd is `hoctl help [COMMAND|TOPIC]`. cobra's own prints
// "Unknown help topic" and exits 0; a mistyped topic is a usage error
// here, with the close matches.
func newHelpCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "help [COMMAND|TOPIC]",
		Short: "Help about a command, or a topic: inventory, targets, runbooks, environment, exit-codes, json",
		Long: `Help about any command (hoctl help run is hoctl run --help), or one of the
topics below, which are the docs pages built into hoctl.`,
		Example: `  hoctl help run
  hoctl help targets
  hoctl help exit-codes`,
		ValidArgsFunction: func(c *cobra.Command, args []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
			parent := c.Root()
			if len(args) > 0 {
				found, _, err := c.Root().Find(args)
				if err != nil || found == nil {
					return nil, cobra.ShellCompDirectiveNoFileComp
				}
				parent = found
			}
			var out []cobra.Completion
			for _, sub := range parent.Commands() {
				if (sub.IsAvailableCommand() || sub.IsAdditionalHelpTopicCommand()) && strings.HasPrefix(sub.Name(), toComplete) {
					out = append(out, cobra.CompletionWithDesc(sub.Name(), sub.Short))
				}
			}
			return out, cobra.ShellCompDirectiveNoFileComp
		},
		RunE: func(c *cobra.Command, args []string) error {
			root := c.Root()
			cmd, rest, err := root.Find(args)
			if err != nil || cmd == nil {
				return unknownHelpTopic(root, args[0])
			}
			if len(rest) > 0 && cmd.HasSubCommands() {
				return unknownHelpTopic(cmd, rest[0])
			}
			cmd.InitDefaultHelpFlag()
			return cmd.Help()
		},
	}
}

func unknownHelpTopic(parent *cobra.Command, word string) error {
	var names []string
	for _, c := range parent.Commands() {
		if c.IsAvailableCommand() || c.IsAdditionalHelpTopicCommand() {
			names = append(names, c.Name())
		}
	}
	if s := closest(word, names); len(s) > 0 {
		return usagef("no help topic or command %q (did you mean %s?)", word, strings.Join(s, " or "))
	}
	return usagef("no help topic or command %q; topics: inventory, targets, runbooks, environment, exit-codes, json", word)
}
