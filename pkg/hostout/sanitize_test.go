package hostout

import "testing"

func TestSanitizeDefusesTerminalSequences(t *testing.T) {
	for in, want := range map[string]string{
		"plain text\twith tab\n":      "plain text\twith tab\n",
		"\x1b]0;pwned title\x07after": `\x1b]0;pwned title\x07after`,
		"\x1b]52;c;aGVsbG8=\x07":      `\x1b]52;c;aGVsbG8=\x07`,
		"\x1b[2J\x1b[1;1Hcleared":     `\x1b[2J\x1b[1;1Hcleared`,
		"c1 csi \u009b31m red":        `c1 csi \u009b31m red`,
		"raw \x9b byte":               `raw \x9b byte`,
		"line\r\n":                    "line\n",
		"over\rwrite":                 `over\x0dwrite`,
		"bidi \u202eevil":             `bidi \u202eevil`,
		"mark \u200f\u061c":           `mark \u200f\u061c`,
		"ünïcödé ✓":                   "ünïcödé ✓",
		"nul\x00del\x7f":              `nul\x00del\x7f`,
	} {
		if got := Sanitize(in); got != want {
			t.Errorf("Sanitize(%q) = %q, want %q", in, got, want)
		}
	}
}
