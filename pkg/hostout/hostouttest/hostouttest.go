// Package hostouttest is the hostile host output the tests of every
// command feed in, and the check that none of it reached the terminal.
package hostouttest

import (
	"fmt"
	"unicode/utf8"
)

// Hostile is what a compromised or careless host may print: a screen
// clear, an OSC 52 clipboard write, an OSC 8 hyperlink, a window title,
// a CR that rewrites the line, BEL, C1 controls (as UTF-8 and as raw
// bytes), the alternate screen, a bidi override, invalid UTF-8, NUL and
// DEL. It ends in a newline.
const Hostile = "a\x1b[2Jb\x1b]52;c;cm0gLXJmIC8=\x07c\x1b]8;;http://evil.example\x1b\\link\x1b]8;;\x1b\\" +
	"\x1b]0;title\x07ok\rFAKE\x07\u009b31m\x9b\x1b[?1049h\u202eevil\xff\xfe\x00\x7f end\n"

// Shown is the start of Hostile as Sanitize (and Go's %q) shows it:
// finding it in the output proves the host's text was printed (and made
// safe), not dropped.
const Shown = `a\x1b[2Jb\x1b]52;c;cm0gLXJmIC8=`

// FirstUnsafe returns the first thing in s that a terminal would act on,
// or "" when there is none: a control character other than newline and
// tab, DEL, a C1 control, a bidi control, or invalid UTF-8.
func FirstUnsafe(s string) string {
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && n == 1:
			return fmt.Sprintf("invalid UTF-8 %#x at byte %d", s[i], i)
		case r < 0x20 && r != '\n' && r != '\t', r == 0x7f, r >= 0x80 && r <= 0x9f,
			r >= 0x202a && r <= 0x202e, r >= 0x2066 && r <= 0x2069, r == 0x200e, r == 0x200f, r == 0x061c:
			return fmt.Sprintf("%U at byte %d", r, i)
		}
		i += n
	}
	return ""
}
