// Package hostout shows what hosts print on the operator's terminal.
// Text from a host is data, never instructions to the terminal: every
// control sequence in it is written out visibly (Sanitize), and Writer
// puts each host's lines, so cleaned, under the host's name. Commands and
// domain packages (deploy, runbooks) print host output through it, and
// only through it.
package hostout

import (
	"fmt"
	"strings"
	"unicode/utf8"
)

// Sanitize makes text from a host safe to show on a terminal: control
// characters and escape sequences (a window title, an OSC 52 clipboard
// write, cursor movement, a C1 CSI), invalid UTF-8 bytes and bidi
// overrides are written out as visible escapes (`\x1b`, `\u009b`,
// `\u202e`) instead of being acted on. Newlines and tabs pass; a CR
// before a newline is dropped. --json output keeps the bytes instead,
// escaped by JSON (and EscapeJSON).
func Sanitize(s string) string {
	if !needsSanitize(s) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && n == 1:
			fmt.Fprintf(&b, `\x%02x`, s[i])
		case r == '\n' || r == '\t':
			b.WriteRune(r)
		case r == '\r' && i+1 < len(s) && s[i+1] == '\n':
		case r < 0x20 || r == 0x7f:
			fmt.Fprintf(&b, `\x%02x`, r)
		case unsafeRune(r):
			fmt.Fprintf(&b, `\u%04x`, r)
		default:
			b.WriteString(s[i : i+n])
		}
		i += n
	}
	return b.String()
}

func needsSanitize(s string) bool {
	ascii := true
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x20 && c != '\n' && c != '\t' || c == 0x7f {
			return true
		}
		if c >= 0x80 {
			ascii = false
		}
	}
	if ascii {
		return false
	}
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && n == 1 || r < 0x20 && r != '\n' && r != '\t' || r == 0x7f || unsafeRune(r) {
			return true
		}
		i += n
	}
	return false
}

// unsafeRune is a C1 control (a terminal may read U+009B as CSI) or a
// bidi control that reorders what is shown (embeddings, overrides,
// isolates and the invisible direction marks).
func unsafeRune(r rune) bool {
	return r >= 0x80 && r <= 0x9f || r >= 0x202a && r <= 0x202e || r >= 0x2066 && r <= 0x2069 ||
		r == 0x200e || r == 0x200f || r == 0x061c
}

// EscapeJSON writes, in JSON text, every unsafe rune (C1 controls, bidi
// controls) as a \u escape. encoding/json escapes only what is below
// U+0020, and a terminal showing --json output acts on a raw U+009B as
// it does on ESC [. Such runes can only be inside JSON strings, where the
// escape means the same character, so the JSON is unchanged for a parser.
func EscapeJSON(b []byte) []byte {
	i := 0
	for i < len(b) {
		r, n := utf8.DecodeRune(b[i:])
		if unsafeRune(r) {
			break
		}
		i += n
	}
	if i == len(b) {
		return b
	}
	out := append([]byte(nil), b[:i]...)
	for i < len(b) {
		r, n := utf8.DecodeRune(b[i:])
		if unsafeRune(r) {
			out = fmt.Appendf(out, `\u%04x`, r)
		} else {
			out = append(out, b[i:i+n]...)
		}
		i += n
	}
	return out
}
