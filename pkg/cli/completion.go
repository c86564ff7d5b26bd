package cli

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/hoctl/hoctl/pkg/hostout"
	"github.com/hoctl/hoctl/pkg/inventory"
	"github.com/hoctl/hoctl/pkg/tasks"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// Dynamic shell completion (bash, zsh, fish through cobra's __complete):
// the inventory's hosts, groups and roles wherever a TARGET goes, run IDs,
// replication names, NFS services and fixed choices. It is wired here, by
// command path and flag name, so the commands themselves stay about what
// they do; a flag added later with one of these names completes too.

type completeFunc = func(*cobra.Command, []string, string) ([]cobra.Completion, cobra.ShellCompDirective)

// addCompletions sets the completion functions of the whole tree.
func addCompletions(root *cobra.Command, f *Factory) {
	c := &completer{f: f}
	args := map[string]completeFunc{
		"hoctl hosts":     c.targets,
		"hoctl ping":      c.targets,
		"hoctl run":       c.runArgs,
		"hoctl deploy":    c.targets,
		"hoctl status":    c.targets,
		"hoctl snapshots": c.firstArg(c.hosts),
		"hoctl replicate": c.upTo(2, c.hosts),
		"hoctl history":   c.firstArg(c.runIDs),
		"hoctl resume":    c.firstArg(c.runIDs),
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
	flags := map[string]completeFunc{
		"limit":     c.targets,
		"to":        c.hosts,
		"service":   c.nfsServices,
		"transport": fixed("relay\tthrough this machine", "direct\tthe source connects to the target"),
		"inventory": func(*cobra.Command, []string, string) ([]cobra.Completion, cobra.ShellCompDirective) {
			return []cobra.Completion{"yaml", "yml"}, cobra.ShellCompDirectiveFilterFileExt
		},
		"dir": dirs,
	}
	var walk func(cmd *cobra.Command)
	walk = func(cmd *cobra.Command) {
		if fn, ok := args[cmd.CommandPath()]; ok && cmd.ValidArgsFunction == nil {
			cmd.ValidArgsFunction = fn
		}
		register := func(fl *pflag.Flag) {
			fn, ok := flags[fl.Name]
			if fl.Name == "name" {
				fn, ok = c.replications, true // replicate --name, snapshots --name
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
			walk(sub)
		}
	}
	walk(root)
	patchCompletionScripts(root)
}

type completer struct{ f *Factory }

func (c *completer) inventory(ctx context.Context) *inventory.Inventory {
	inv, err := c.f.Inventory(ctx)
	if err != nil {
		return nil
	}
	return inv
}

// targets completes a TARGET expression: after a comma, `!` or `&` it
// completes the next name and keeps what was typed before it.
func (c *completer) targets(cmd *cobra.Command, _ []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
	inv := c.inventory(cmd.Context())
	if inv == nil {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	cut := strings.LastIndexAny(toComplete, ",!&") + 1
	prefix, partial := toComplete[:cut], toComplete[cut:]
	var out []cobra.Completion
	seen := map[string]bool{}
	add := func(name, desc string) {
		if seen[name] || !strings.HasPrefix(name, partial) {
			return
		}
		seen[name] = true
		out = append(out, cobra.CompletionWithDesc(prefix+name, desc))
	}
	for _, h := range inv.HostNames() {
		add(h, "host")
	}
	groups := make([]string, 0, len(inv.Groups))
	for g := range inv.Groups {
		groups = append(groups, g)
	}
	sort.Strings(groups)
	for _, g := range groups {
		add(g, "group: "+strings.Join(inv.Groups[g], ","))
	}
	var roles []string
	for _, h := range inv.HostNames() {
		roles = append(roles, inv.Host(h).Roles...)
	}
	sort.Strings(roles)
	for _, r := range roles {
		add(r, "role")
	}
	add("all", "every host")
	return out, cobra.ShellCompDirectiveNoFileComp
}

func (c *completer) hosts(cmd *cobra.Command, _ []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
	inv := c.inventory(cmd.Context())
	if inv == nil {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	var out []cobra.Completion
	for _, h := range inv.HostNames() {
		if strings.HasPrefix(h, toComplete) {
			out = append(out, cobra.CompletionWithDesc(h, strings.Join(inv.Host(h).Roles, ",")))
		}
	}
	return out, cobra.ShellCompDirectiveNoFileComp
}

func (c *completer) replications(cmd *cobra.Command, _ []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
	inv := c.inventory(cmd.Context())
	if inv == nil {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	var out []cobra.Completion
	for name, r := range inv.Replication {
		if strings.HasPrefix(name, toComplete) {
			out = append(out, cobra.CompletionWithDesc(name, r.Source.Host+" → "+r.Target.Host))
		}
	}
	sort.Strings(out)
	return out, cobra.ShellCompDirectiveNoFileComp
}

func (c *completer) nfsServices(cmd *cobra.Command, _ []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
	inv := c.inventory(cmd.Context())
	if inv == nil {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	var out []cobra.Completion
	for name, s := range inv.NFS {
		if strings.HasPrefix(name, toComplete) {
			out = append(out, cobra.CompletionWithDesc(name, s.Export))
		}
	}
	sort.Strings(out)
	return out, cobra.ShellCompDirectiveNoFileComp
}

// runIDs completes journaled run IDs, newest first, and "last". Only the
// first line of each journal is read, and only for the newest runs, so
// completion stays quick with thousands of runs.
func (c *completer) runIDs(_ *cobra.Command, _ []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
	runs := filepath.Join(tasks.StateDir(c.f.Getenv), "runs")
	entries, _ := os.ReadDir(runs)
	var ids []string
	for _, e := range entries {
		if id, ok := strings.CutSuffix(e.Name(), ".jsonl"); ok && strings.HasPrefix(id, toComplete) {
			ids = append(ids, id)
		}
	}
	sort.Sort(sort.Reverse(sort.StringSlice(ids))) // IDs start with their UTC time
	var out []cobra.Completion
	if last := "last"; strings.HasPrefix(last, toComplete) {
		out = append(out, cobra.CompletionWithDesc("last", "the newest run"))
	}
	for i, id := range ids {
		desc := ""
		if i < 50 {
			desc = runCommand(filepath.Join(runs, id+".jsonl"))
		}
		out = append(out, cobra.CompletionWithDesc(id, desc))
	}
	return out, cobra.ShellCompDirectiveNoFileComp | cobra.ShellCompDirectiveKeepOrder
}

// runCommand is the command line a journal's first record names.
func runCommand(path string) string {
	fh, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer func() { _ = fh.Close() }()
	sc := bufio.NewScanner(fh)
	sc.Buffer(make([]byte, 64*1024), 1<<20)
	if !sc.Scan() {
		return ""
	}
	var r struct {
		Command string `json:"command"`
	}
	if json.Unmarshal(sc.Bytes(), &r) != nil {
		return ""
	}
	// The command line may hold a hostile file name; zsh and fish print
	// descriptions, so it is defused as the history table does, and kept
	// on one line.
	return strings.Join(strings.Fields(hostout.Sanitize(r.Command)), " ")
}

// runArgs completes `run TARGET... -- CMD`: the first target only (a comma
// list completes throughout). Cobra does not tell a completion function
// whether -- came before the word, and a remote command must not be
// offered host names; the shell's own completion is no help for it either.
func (c *completer) runArgs(cmd *cobra.Command, args []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
	if len(args) == 0 {
		return c.targets(cmd, args, toComplete)
	}
	return nil, cobra.ShellCompDirectiveNoFileComp
}

func (c *completer) firstArg(fn completeFunc) completeFunc {
	return c.upTo(1, fn)
}

func (c *completer) upTo(n int, fn completeFunc) completeFunc {
	return func(cmd *cobra.Command, args []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
		if len(args) >= n {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		return fn(cmd, args, toComplete)
	}
}

func fixed(choices ...string) completeFunc {
	return func(_ *cobra.Command, _ []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
		var out []cobra.Completion
		for _, c := range choices {
			if strings.HasPrefix(c, toComplete) {
				out = append(out, c)
			}
		}
		return out, cobra.ShellCompDirectiveNoFileComp
	}
}

func dirs(*cobra.Command, []string, string) ([]cobra.Completion, cobra.ShellCompDirective) {
	return nil, cobra.ShellCompDirectiveFilterDirs
}

// Shell scripts. A TARGET holds ",", "!" and "&" (cattle,!c2); cobra's
// scripts handle a word being completed as raw text, so after a comma (bash)
// or inside a quote (bash, zsh, fish) nothing completed. Each script is
// cobra's, patched where it reads that word; a cobra whose script no longer
// has the patched spot fails `hoctl completion SHELL` (and its test) rather
// than shipping a script that beeps.

// completionPatches are, per shell, the replacements made in cobra's
// script: old text (which must occur exactly once) → new text. "" as old
// text appends new.
var completionPatches = map[string][][2]string{
	"bash": {{"", bashCompletionOverride}},
	"zsh": {{
		`    requestComp="${words[1]} __complete ${words[2,-1]}"`,
		`    # hoctl: the word being completed as the text it stands for
    # ('cattle,!c and cattle,\!c are cattle,!c), quoted again for eval.
    local hoctlCur=${words[-1]}
    case $hoctlCur in
    (\'*|\"*) hoctlCur=${hoctlCur[2,-1]} ;;
    (*) hoctlCur=${(Q)hoctlCur} ;;
    esac
    words[-1]=${(q)hoctlCur}
    requestComp="${words[1]} __complete ${words[2,-1]}"`,
	}},
	"fish": {{
		`set -l lastArg (string escape -- (commandline -ct))`,
		// hoctl: the token as the text it stands for, not as typed with
		// its quotes and backslashes.
		`set -l lastArg (string escape -- (commandline -ct | string unescape))`,
	}},
}

// patchCompletionScripts makes `hoctl completion bash|zsh|fish` print
// cobra's script with completionPatches applied.
func patchCompletionScripts(root *cobra.Command) {
	comp, _, err := root.Find([]string{"completion"})
	if err != nil || comp == root {
		return
	}
	gen := map[string]func(w io.Writer, desc bool) error{
		"bash": root.GenBashCompletionV2,
		"zsh": func(w io.Writer, desc bool) error {
			if desc {
				return root.GenZshCompletion(w)
			}
			return root.GenZshCompletionNoDesc(w)
		},
		"fish": root.GenFishCompletion,
	}
	for _, sub := range comp.Commands() {
		shell := sub.Name()
		if gen[shell] == nil {
			continue
		}
		sub.RunE = func(c *cobra.Command, _ []string) error {
			noDesc, _ := c.Flags().GetBool("no-descriptions")
			var b bytes.Buffer
			if err := gen[shell](&b, !noDesc); err != nil {
				return err
			}
			script, err := applyPatches(b.String(), completionPatches[shell], root.Name())
			if err != nil {
				return fmt.Errorf("completion %s: %w", shell, err)
			}
			_, err = io.WriteString(c.OutOrStdout(), script)
			return err
		}
	}
}

func applyPatches(script string, patches [][2]string, name string) (string, error) {
	for _, p := range patches {
		old, repl := p[0], strings.ReplaceAll(p[1], "hoctl", name)
		if old == "" {
			script += repl
			continue
		}
		if n := strings.Count(script, old); n != 1 {
			return "", fmt.Errorf("cobra's script has %d places for hoctl's patch, want 1: %q", n, old)
		}
		script = strings.Replace(script, old, repl, 1)
	}
	return script, nil
}

// bashCompletionOverride replaces two functions of cobra's bash script.
const bashCompletionOverride = `
# hoctl: a TARGET holds ` + "`" + `,` + "`" + `, ` + "`" + `!` + "`" + ` and ` + "`" + `&` + "`" + ` (cattle,!c2). cobra's functions
# above match and insert candidates escaped by printf %q, so after a comma
# nothing matched ("cattle\,zippy" does not start with "cattle,z") and the
# shell beeped. These two replace them: the word being completed is taken
# as the text it stands for ('cattle,!c and cattle,\!c are cattle,!c) and
# handed to hoctl quoted; candidates are matched as text; a single one is
# inserted escaped for the shell but for its commas, or as it is inside the
# quote the word was opened with (which the shell then closes).
__start_hoctl()
{
    local cur prev words cword split __hoctl_quote="" __hoctl_typed

    COMPREPLY=()
    if declare -F _init_completion >/dev/null 2>&1; then
        _init_completion -n =: || return
    else
        __hoctl_init_completion -n =: || return
    fi
    __hoctl_typed=$cur
    case $cur in
    \'*) __hoctl_quote="'"; cur=${cur#\'} ;;
    \"*) __hoctl_quote='"'; cur=${cur#\"} ;;
    *) cur=${cur//\\/} ;;
    esac
    if [[ -n $cur ]]; then
        printf -v "words[$cword]" %q "$cur"
    else
        words[cword]=""
    fi
    words=("${words[@]:0:$cword+1}")

    local out directive
    __hoctl_get_completion_results
    __hoctl_process_completion_results
}

__hoctl_handle_standard_completion_case() {
    local tab=$'\t' compline comp longest=0

    (( ${#completions[@]} == 0 )) && return 0
    for compline in "${completions[@]}"; do
        [[ -z $compline ]] && continue
        comp=${compline%%$tab*}
        [[ $comp == "$cur"* ]] || continue
        COMPREPLY+=("$compline")
        (( ${#comp} > longest )) && longest=${#comp}
    done
    if (( ${#COMPREPLY[@]} == 1 )); then
        comp=${COMPREPLY[0]%%$tab*}
        if [[ -z $__hoctl_quote ]]; then
            printf -v comp %q "$comp"
            comp=${comp//\\,/,}
        fi
        COMPREPLY[0]=$comp
    elif (( ${#COMPREPLY[@]} > 1 )); then
        # The shell replaces the word with what the candidates share:
        # they start with the word as it was typed, escapes and all, so
        # that "cattle,\!c" does not lose its backslash.
        if [[ -z $__hoctl_quote && $__hoctl_typed != "$cur" ]]; then
            local i
            longest=0
            for i in "${!COMPREPLY[@]}"; do
                COMPREPLY[i]=$__hoctl_typed${COMPREPLY[i]#"$cur"}
                comp=${COMPREPLY[i]%%$tab*}
                (( ${#comp} > longest )) && longest=${#comp}
            done
        fi
        __hoctl_format_comp_descriptions $longest
    fi
}
`
