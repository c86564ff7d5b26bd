package cli

import (
	"context"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

func TestBecomeFlagsSetOverrideAndRefuseBoth(t *testing.T) {
	for _, c := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"hosts"}, 0, ""},
		{[]string{"--become", "hosts"}, 0, "sudo"},
		{[]string{"hosts", "--no-become"}, 0, "none"},
		{[]string{"--become", "--become=true", "hosts"}, 0, "sudo"},
		{[]string{"--become", "hosts", "--no-become"}, ExitUsage, "sudo"},
		{[]string{"--no-become", "--become", "hosts"}, ExitUsage, "none"},
	} {
		h := newHarness(t)
		root := NewRootCmd(h.f)
		root.SetArgs(c.args)
		err := Execute(context.Background(), root)
		if code := ExitCode(err); code != c.code || h.f.Become != c.want {
			t.Errorf("%v: exit %d, Become %q; want %d, %q", c.args, code, h.f.Become, c.code, c.want)
		}
		if c.code == ExitUsage && (err == nil || err.Error() != "--become and --no-become contradict each other: give one") {
			t.Errorf("%v: %v", c.args, err)
		}
	}
}

func TestRunbookLimitRunsOnlyThere(t *testing.T) {
	h := newHarness(t)
	rb := filepath.Join(t.TempDir(), "rb.yaml")
	src := "name: x\nvars: {t: cattle}\nsteps:\n  - {title: a, hosts: '{{.Vars.t}}', run: 'echo a'}\n  - {title: b, hosts: 'all,!fractal', run: 'echo b'}\n"
	if err := os.WriteFile(rb, []byte(src), 0o600); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"HOCTL_INVENTORY": h.f.Getenv("HOCTL_INVENTORY"), "XDG_STATE_HOME": t.TempDir()}
	h.f.Getenv = func(k string) string { return env[k] }
	if code := h.exec("--yes", "runbook", "run", rb, "--limit", "c2,zippy"); code != 0 {
		t.Fatalf("exit %d: %s", code, h.err)
	}
	got := h.conn.lines()
	sort.Strings(got)
	if want := "c2: echo a|c2: echo b|zippy: echo b"; strings.Join(got, "|") != want {
		t.Errorf("ran %v, want %s", got, want)
	}
	h.conn.hosts.Reset()
	root := NewRootCmd(h.f)
	root.SetArgs([]string{"--yes", "runbook", "run", rb, "--limit", "zippy"})
	err := Execute(context.Background(), root)
	if ExitCode(err) != ExitUsage || len(h.conn.lines()) != 0 || err == nil ||
		!strings.Contains(err.Error(), `steps.0.hosts: --limit "zippy" leaves this step no host (its hosts: "cattle" select c1, c2)`) {
		t.Errorf("a limit emptying step 1: %v, ran %v", err, h.conn.lines())
	}
}

// Every command that takes a TARGET takes several, as their union (each
// host once, in inventory order): `ping c1 c2` said "too many arguments"
// while `deploy c1 c2` worked.
func TestSeveralTargetsAreTheirUnion(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string // the hosts reached (run, ping) or listed (hosts), in order
	}{
		{[]string{"ping", "c2", "zippy", "c1,c2"}, "zippy c1 c2"},
		{[]string{"run", "c2", "zippy", "--", "true"}, "zippy c2"},
		{[]string{"run", "cattle", "c1", "--", "true"}, "c1 c2"},
		{[]string{"hosts", "c2", "zippy"}, "zippy c2"},
	} {
		h := newHarness(t)
		if code := h.exec(c.args...); code != 0 {
			t.Fatalf("%q: exit %d\n%s", c.args, code, h.err)
		}
		var got []string
		if c.args[0] == "hosts" {
			for _, l := range strings.Split(strings.TrimSpace(h.out.String()), "\n")[1:] {
				got = append(got, strings.Fields(l)[0])
			}
		} else {
			for _, l := range h.conn.lines() {
				got = append(got, strings.SplitN(l, ":", 2)[0])
			}
			// Hosts run at once: compare as sets, each host once.
			sort.Strings(got)
			want := strings.Fields(c.want)
			sort.Strings(want)
			c.want = strings.Join(want, " ")
		}
		if strings.Join(got, " ") != c.want {
			t.Errorf("%q: %q, want %q\n%s", c.args, got, c.want, h.out)
		}
	}
	// An unknown name among several is still an error with its matches.
	h := newHarness(t)
	if code := h.runLine("ping", "c1", "c9"); code != ExitUsage || !strings.Contains(h.err.String(), `did you mean`) {
		t.Fatalf("exit %d: %s", code, h.err)
	}
}
