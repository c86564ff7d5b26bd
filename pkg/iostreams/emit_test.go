package iostreams

import (
	"encoding/json"
	"strings"
	"testing"
)

type hostLine struct {
	Line string `json:"line"`
}

func (hostLine) EventKind() string { return "host_line" }

// Issue 19 (third attack), finding 6: --json wrote a host's U+009B (a C1
// CSI, acted on as ESC [ by xterm and VTE) and U+202E (a bidi override)
// raw: encoding/json escapes only what is below U+0020. Both are now
// \u escapes, which a JSON parser reads back as the same string.
func TestEmitEscapesTerminalControls(t *testing.T) {
	ios, _, out, _ := Test()
	host := "y\u009b2J\u202etxt é 日本"
	if err := ios.Emit(hostLine{Line: host}); err != nil {
		t.Fatal(err)
	}
	if strings.ContainsAny(out.String(), "\u009b\u202e") || !strings.Contains(out.String(), `\u009b2J\u202etxt é 日本`) {
		t.Fatalf("emitted %q", out.String())
	}
	var back hostLine
	if err := json.Unmarshal(out.Bytes(), &back); err != nil || back.Line != host {
		t.Fatalf("read back %q: %v", back.Line, err)
	}
}
