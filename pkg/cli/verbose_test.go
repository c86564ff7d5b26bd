package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// -vv on a real runbook (hosts on this machine, no fakes): the trace names
// each command sent and its timing on stderr, and the secret, given with
// --var and from the environment, appears nowhere in the output.
func TestVerboseTraceNeverShowsASecret(t *testing.T) {
	const secret = "S3cret-v4lue-never-shown"
	dir := t.TempDir()
	inv := filepath.Join(dir, "inventory.yaml")
	if err := os.WriteFile(inv, []byte("hosts:\n  w1: {address: local}\n  w2: {address: local}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	rb := filepath.Join(dir, "rb.yaml")
	body := "name: v\nsecrets: {token: HOCTL_TEST_TOKEN}\nsteps:\n" +
		"  - {title: use, hosts: 'w1,w2', before: 'test -n \"{{.Vars.token}}\"', run: 'echo {{.Vars.token}} | wc -c'}\n"
	if err := os.WriteFile(rb, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{
		{"-vv", "--yes", "runbook", "run", rb, "--var", "token=" + secret},
		{"-v", "--yes", "runbook", "run", rb},
		{"-vv", "--dry-run", "runbook", "run", rb},
	} {
		h := newHarness(t)
		h.f.Connect = nil // the real connector: local hosts run sh -c here
		env := map[string]string{"HOCTL_INVENTORY": inv, "XDG_STATE_HOME": t.TempDir(), "HOCTL_TEST_TOKEN": secret}
		h.f.Getenv = func(k string) string { return env[k] }
		if code := h.exec(args...); code != 0 {
			t.Fatalf("%v: exit %d\n%s\n%s", args, code, h.out, h.err)
		}
		all := h.out.String() + h.err.String()
		if strings.Contains(all, secret) {
			t.Fatalf("%v: the secret was printed:\n%s", args, all)
		}
		for _, want := range []string{"w1: run (on this machine): ", "w2: exit 0 in "} {
			if !strings.Contains(h.err.String(), want) {
				t.Errorf("%v: trace lacks %q:\n%s", args, want, h.err)
			}
		}
	}
}
