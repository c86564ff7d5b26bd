package cli

import (
	"bytes"
	"strings"
	"testing"

	"github.com/hoctl/hoctl/pkg/sshexec"
)

// --jq runs a jq expression (gojq) on each --json event, as gh's --jq:
// strings print as they are, other values as compact JSON.
func TestJQFiltersEachEvent(t *testing.T) {
	h := newHarness(t)
	h.conn.handler = func(host string, _ sshexec.Cmd) (string, string, int) {
		if host == "c2" {
			return "", "boom\n", 3
		}
		return "ok\n", "", 0
	}
	code := h.exec("--json", "--jq", `select(.event == "host_result" and .exit_code != 0) | .host`, "run", "cattle", "--", "x")
	if code != ExitFailed || h.out.String() != "c2\n" {
		t.Fatalf("exit %d, stdout %q", code, h.out)
	}

	h = newHarness(t)
	if code := h.exec("--json", "--jq", `{host, code: .exit_code}`, "run", "c1", "--", "x"); code != 0 || h.out.String() != `{"code":0,"host":"c1"}`+"\n" {
		t.Fatalf("exit %d, stdout %q", code, h.out)
	}
}

func TestJQUsageAndErrors(t *testing.T) {
	for _, c := range []struct {
		args []string
		code int
		err  string
	}{
		{[]string{"--jq", ".host", "hosts"}, ExitUsage, "--jq filters --json output: add --json"},
		{[]string{"--json", "--jq", ".host |", "hosts"}, ExitUsage, `--jq ".host |": unexpected EOF`},
		// An expression that fails on an event: jq's error, exit 1.
		{[]string{"--json", "--jq", ".host | tonumber", "hosts", "c1"}, ExitFailed, "jq: error: "},
	} {
		h := newHarness(t)
		if code := h.runLine(c.args...); code != c.code || !strings.Contains(h.err.String(), c.err) {
			t.Errorf("%q: exit %d, stderr %q; want %d and %q", c.args, code, h.err, c.code, c.err)
		}
	}
}

// --jq's string results are shown as they are to a pipe (as jq -r), and
// made safe on a terminal; other results keep terminal controls escaped.
func TestJQKeepsTerminalControlsFromTheTerminal(t *testing.T) {
	code, err := compileJQ(".line, {l: .line}")
	if err != nil {
		t.Fatal(err)
	}
	line := []byte(`{"line":"a\u009b2J\u202eb\u001b]0;x\u0007"}` + "\n")
	for _, tty := range []bool{true, false} {
		var out, errOut bytes.Buffer
		j := &jqFilter{code: code, out: &out, errOut: &errOut, tty: tty}
		if _, err := j.Write(line); err != nil {
			t.Fatal(err)
		}
		got := strings.SplitN(out.String(), "\n", 2)
		raw := strings.ContainsAny(got[0], "\u009b\u202e\x1b\a")
		if raw == tty {
			t.Errorf("tty %v: string result %q", tty, got[0])
		}
		if strings.ContainsAny(got[1], "\u009b\u202e\x1b\a") {
			t.Errorf("tty %v: object result %q", tty, got[1])
		}
	}
}
