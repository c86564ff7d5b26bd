package cli

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// slowHosts makes the in-process SSH servers' hosts slow to answer
// status's probe: their systemctl takes d (a shell sleep), and df lists no
// pool (this machine's own btrfs pools are not the test's business).
func slowHosts(t *testing.T, d string) {
	t.Helper()
	bin := t.TempDir()
	for name, body := range map[string]string{"systemctl": "sleep " + d + "\n", "df": "exit 0\n"} {
		if err := os.WriteFile(filepath.Join(bin, name), []byte("#!/bin/sh\n"+body), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	t.Setenv("PATH", bin+":"+os.Getenv("PATH"))
}

// A host that answers, slowly: status shows it up, as ping does. Before,
// each probe was bounded by connect_timeout + 0.5 s, connection and command
// together, and the host read "timed out (the caller's time limit
// passed)". The bound is now connect_timeout + keepalive, as for any host
// that stops answering.
func TestStatusSlowHostIsUp(t *testing.T) {
	slowHosts(t, "2")
	h := newSSHHarnessWith(t, "connect_timeout: 1s, keepalive: 20s", "c1")
	if code := h.exec("status"); code != 0 {
		t.Fatalf("exit %d\n%s\n%s", code, h.out, h.err)
	}
	if !strings.Contains(h.out.String(), "✓ host c1") {
		t.Fatalf("%s", h.out)
	}
}

// A probe that runs into its limit says which limit, its value and the
// flag that changes it.
func TestStatusSaysWhichLimitPassed(t *testing.T) {
	slowHosts(t, "30")
	h := newSSHHarnessWith(t, "connect_timeout: 1s, keepalive: 1s", "c1")
	if code := h.exec("status"); code != ExitFailed {
		t.Fatalf("exit %d\n%s\n%s", code, h.out, h.err)
	}
	if want := "no answer within 2s, status's limit per probe (connect_timeout 1s + keepalive 1s; --timeout sets it)"; !regexp.MustCompile(`✗ host c1 +` + regexp.QuoteMeta(want)).MatchString(h.out.String()) {
		t.Fatalf("want %q in:\n%s", want, h.out)
	}

	h = newSSHHarnessWith(t, "connect_timeout: 5s, keepalive: 20s", "c1")
	if code := h.exec("status", "--timeout", "500ms"); code != ExitFailed {
		t.Fatalf("exit %d\n%s\n%s", code, h.out, h.err)
	}
	if want := "no answer within 500ms, status's limit per probe (--timeout 500ms)"; !regexp.MustCompile(`✗ host c1 +` + regexp.QuoteMeta(want)).MatchString(h.out.String()) {
		t.Fatalf("want %q in:\n%s", want, h.out)
	}
	if code := h.exec("status", "--timeout", "0s"); code != ExitUsage {
		t.Fatalf("--timeout 0s: exit %d", code)
	}
}

// status TARGET...: only those hosts, several as their union; what is not
// checked is said.
func TestStatusTargets(t *testing.T) {
	slowHosts(t, "0")
	h := newSSHHarness(t, "c1", "c2", "c3")
	if code := h.exec("status", "c1", "c3,c1"); code != 0 {
		t.Fatalf("exit %d\n%s\n%s", code, h.out, h.err)
	}
	out := h.out.String()
	if !strings.Contains(out, "✓ host c1") || !strings.Contains(out, "✓ host c3") || strings.Contains(out, "host c2") {
		t.Fatalf("want c1 and c3 only:\n%s", out)
	}
	if !strings.Contains(out, "not checked: status TARGET probes those hosts only") {
		t.Fatalf("cluster-wide checks not said to be skipped:\n%s", out)
	}
	if code := h.exec("status", "c9"); code != ExitUsage {
		t.Fatalf("unknown target: exit %d", code)
	}
}
