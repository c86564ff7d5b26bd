package sshexec

import (
	"strings"
)

// Quote returns s as one word for a POSIX shell.
func Quote(s string) string {
	if s == "" {
		return "''"
	}
	safe := true
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("_@%+=:,./-", r)) {
			safe = false
			break
		}
	}
	if safe {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
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
func withBecome(line, become string) string {
	if become == "sudo" {
		return "sudo -n -- sh -c " + Quote(line)
	}
	return line
}

// killable makes a remote command line stop with its whole process tree
// when the session is signalled. sshd runs each session in its own process
// group but signals only the shell; a shell waiting on a foreground child
// would not react until the child exits, so the command runs in the
// background (with the session's stdin passed through fd 3, since POSIX
// shells give background jobs /dev/null) and the trap signals the group.
func killable(line string) string {
	return "trap 'trap - TERM INT HUP; kill -TERM 0' TERM INT HUP; exec 3<&0; (" + line + "\n) <&3 3<&- & wait $!"
}
