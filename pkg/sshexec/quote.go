package sshexec

import (
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
func withBecome(line, become string) string {
	if become == "sudo" {
		return "sudo -n -- sh -c " + Quote(line)
	}
	return line
}

// killable makes a remote command line stop, with its whole process tree,
// when hoctl cancels it or goes away. Two mechanisms, because neither is
// enough alone:
//
//   - The "signal" channel request makes sshd killpg the session, but
//     OpenSSH refuses it in some setups ("session signalling requires
//     privilege separation", seen on the lab's sshd) and older ones lack it.
//     The trap turns a signal to the shell into one for the whole group,
//     for servers that signal only the leader.
//   - For a command without input, hoctl keeps the session's stdin open
//     and a watcher waits for its EOF, which comes when the channel closes:
//     on cancellation, and also when the connection dies (hoctl killed,
//     network gone). The watcher then kills the process group; sshd put
//     the session in a group of its own. The command itself reads
//     /dev/null. The watcher holds no output descriptor, or the session
//     would not end until it did.
//
// A command with input keeps stdin for its data (passed through fd 3,
// since POSIX shells give background jobs /dev/null); closing the channel
// ends its input instead.
func killable(line string, hasStdin bool) string {
	const trap = "trap 'trap - TERM INT HUP; kill -TERM 0' TERM INT HUP; "
	if hasStdin {
		return trap + "exec 3<&0; (" + line + "\n) <&3 3<&- & wait $!"
	}
	return trap + "exec 3<&0; { cat; kill -TERM 0; } <&3 >/dev/null 2>&1 & exec 3<&-; (" + line + "\n) </dev/null & wait $!"
}
