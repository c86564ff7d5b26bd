package sshexec

import (
	"errors"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strings"
)

// Quote returns s as one word for a POSIX shell.
func Quote(s string) string {
	if s == "" {
		return "''"
	}
	if strings.IndexFunc(s, needsQuote) < 0 {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

func needsQuote(r rune) bool {
	switch {
	case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9':
		return false
	}
	return !strings.ContainsRune("_@%+=:,./-", r)
}

// QuoteArgv joins argv into a command line that a POSIX shell splits back
// into exactly argv.
func QuoteArgv(argv []string) string {
	q := make([]string, len(argv))
	for i, a := range argv {
		q[i] = Quote(a)
	}
	return strings.Join(q, " ")
}

// withBecome wraps a command line in sudo when the host asks for it. -n
// makes sudo fail instead of prompting: hoctl never types a password.
// The secrets named, already variables of the calling shell, reach the
// shell under sudo through a pipe from printf (a builtin: no process
// carries them in its argv); sudo would drop them from the environment.
func withBecome(line, become string, secrets []string) string {
	if become != "sudo" {
		return line
	}
	if len(secrets) == 0 {
		return "sudo -n -- sh -c " + Quote(line)
	}
	refs := make([]string, len(secrets))
	for i, n := range secrets {
		refs[i] = `"$` + n + `"`
	}
	inner := readSecrets(secrets) + "exec </dev/null\n" + line
	return `printf '%s\n' ` + strings.Join(refs, " ") + " | sudo -n -- sh -c " + Quote(inner)
}

var secretNameRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// secretNames checks cmd's secrets and returns their names in order.
func secretNames(cmd Cmd) ([]string, error) {
	if len(cmd.Secrets) == 0 {
		return nil, nil
	}
	if cmd.Stdin != nil {
		return nil, errors.New("a command with input cannot take secrets")
	}
	names := slices.Sorted(maps.Keys(cmd.Secrets))
	for _, n := range names {
		if !secretNameRE.MatchString(n) {
			return nil, fmt.Errorf("secret name %q: expected letters, digits and '_'", n)
		}
		if strings.ContainsAny(cmd.Secrets[n], "\n\x00") {
			return nil, fmt.Errorf("secret %s: a value with a newline or NUL cannot be passed", n)
		}
	}
	return names, nil
}

// readSecrets is shell code that reads one line per secret from standard
// input into an exported variable.
func readSecrets(names []string) string {
	var b strings.Builder
	for _, n := range names {
		fmt.Fprintf(&b, "IFS= read -r %s || exit 125; export %s\n", n, n)
	}
	return b.String()
}

// secretInput is what readSecrets reads.
func secretInput(cmd Cmd, names []string) string {
	var b strings.Builder
	for _, n := range names {
		b.WriteString(cmd.Secrets[n])
		b.WriteByte('\n')
	}
	return b.String()
}

// killable makes a remote command line stop, with its whole process tree,
// when hoctl cancels it or goes away. On cancellation hoctl sends a
// "signal" request (OpenSSH then killpg's the session) and closes the
// session's input; the second is what counts, because OpenSSH refuses
// signal requests in some setups ("session signalling requires privilege
// separation", seen on the lab's sshd) and older ones lack them.
//
// For a command without input, hoctl keeps the session's stdin open and a
// watcher (a forked shell blocked in `read`) waits for its EOF, which
// comes when the channel closes: on cancellation, and also when the
// connection dies (hoctl killed, network gone). It then kills the process
// group, which sshd made for the session alone. The command itself reads
// /dev/null, and the watcher holds no output descriptor, or the session
// would not end until it did. This costs one fork per command and no exec
// (the wrapper used to exec cat and fork a subshell: measured, that was
// a visible share of a 20-host runbook's time).
//
// A command with input (the receiving end of a pipe) keeps stdin for its
// data; closing the channel ends its input instead.
func killable(line string, hasStdin bool) string {
	if hasStdin {
		return line
	}
	return killablePrefix + line
}

const killablePrefix = "exec 3<&0 </dev/null; { read -r _ <&3; kill -TERM 0; } >/dev/null 2>&1 & exec 3<&-\n"

// Unwrap undoes killable for a remote program that receives hoctl's
// command line without a shell (a forced command): it returns the command
// itself, and watched when the caller must read nothing from stdin and
// stop the command when stdin ends.
func Unwrap(line string) (cmd string, watched bool) {
	if c, ok := strings.CutPrefix(line, killablePrefix); ok {
		return c, true
	}
	return line, false
}

// KillableForTest is the line a command without input is sent as, for
// tests of programs that undo it (Unwrap).
func KillableForTest(line string) string { return killable(line, false) }
