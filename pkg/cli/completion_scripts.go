package cli

import (
	"bytes"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"
)

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
