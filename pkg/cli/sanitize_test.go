package cli

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/hoctl/hoctl/pkg/sshexec"
	"github.com/hoctl/hoctl/pkg/status"
)

// What hosts print reaches the terminal as text: ping's hostname column,
// run's streamed lines, --group blocks and the summary; --json keeps the
// bytes.
func TestHostTextIsSanitizedForHumans(t *testing.T) {
	const evil = "\x1b]0;pwned\x07\x1b]52;c;Zm9v\x07"
	for _, args := range [][]string{{"ping", "cattle"}, {"run", "cattle", "--", "x"}, {"run", "--group", "cattle", "--", "x"}} {
		h := newHarness(t)
		h.conn.handler = func(host string, c sshexec.Cmd) (string, string, int) {
			return host + evil + "\n", "err" + evil + "\n", 0
		}
		if code := h.exec(args...); code != 0 {
			t.Fatalf("%v: code %d: %s", args, code, h.err)
		}
		all := h.out.String() + h.err.String()
		if strings.ContainsAny(all, "\x1b\x07") || !strings.Contains(h.out.String(), `\x1b]0;pwned\x07`) {
			t.Fatalf("%v: %q", args, all)
		}
	}
	h := newHarness(t)
	h.conn.handler = func(host string, c sshexec.Cmd) (string, string, int) { return evil, "", 0 }
	if code := h.exec("--json", "run", "c1", "--", "x"); code != 0 || !strings.Contains(h.out.String(), `\u001b]0;pwned\u0007`) {
		t.Fatalf("--json: %d %q", code, h.out.String())
	}
}

// status details quote hosts (a df line, an export): shown, not acted on.
func TestStatusDetailsAreSanitized(t *testing.T) {
	h := newHarness(t)
	inv, err := h.f.Inventory(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	printStatus(h.f, inv, []status.Check{{Area: "disk", Name: "c1", Level: status.Warn, Detail: "93% \x1b]0;pwned\x07", Hint: "df \x1b[2J"}}, time.Second)
	if strings.ContainsAny(h.out.String(), "\x1b\x07") || !strings.Contains(h.out.String(), `93% \x1b]0;pwned\x07`) {
		t.Fatalf("%q", h.out.String())
	}
}
