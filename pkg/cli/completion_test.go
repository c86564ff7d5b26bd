package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// complete runs `hoctl __complete ARGS...` as the shells' scripts do and
// returns the candidates (without descriptions) and the directive line.
func (h *harness) complete(t *testing.T, args ...string) ([]string, string) {
	t.Helper()
	if code := h.runLine(append([]string{"__complete"}, args...)...); code != 0 {
		t.Fatalf("__complete %q: exit %d: %s", args, code, h.err)
	}
	lines := strings.Split(strings.TrimSpace(h.out.String()), "\n")
	var names []string
	for _, l := range lines[:len(lines)-1] {
		name, _, _ := strings.Cut(l, "\t")
		names = append(names, name)
	}
	h.out.Reset()
	return names, lines[len(lines)-1]
}

const completionInventory = testInventory + `
replication:
  services:
    source: {host: zippy, subvolume: /persist/services, snapshot_dir: /persist/services-snapshots}
    target: {host: c1, dir: /persist/services-standby}
nfs:
  data-services:
    export: /data/services
    subvolume: /persist/services
    replication: services
    primary: zippy
    standbys: [c1]
`

func TestCompletion(t *testing.T) {
	h := newHarness(t)
	dir := t.TempDir()
	inv := filepath.Join(dir, "inventory.yaml")
	if err := os.WriteFile(inv, []byte(completionInventory), 0o600); err != nil {
		t.Fatal(err)
	}
	runs := filepath.Join(dir, "state", "hoctl", "runs")
	if err := os.MkdirAll(runs, 0o700); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"20261126T080000Z-aaaaaa", "20261127T080000Z-bbbbbb"} {
		rec := `{"type":"run_start","command":"hoctl replicate zippy c1"}` + "\n"
		if err := os.WriteFile(filepath.Join(runs, id+".jsonl"), []byte(rec), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	// resume is offered only the runs it continues: failed or
	// interrupted, of a kind it rebuilds (not a replicate, not a run that
	// finished).
	for id, recs := range map[string]string{
		"20261128T080000Z-cccccc": `{"type":"run_start","time":"2026-11-28T08:00:00Z","command":"hoctl failover --to c1","kind":"failover","steps":["a","b"]}` + "\n" +
			`{"type":"run_end","time":"2026-11-28T08:01:00Z","status":"failed","step":2,"title":"b"}`,
		"20261129T080000Z-dddddd": `{"type":"run_start","time":"2026-11-29T08:00:00Z","command":"hoctl runbook run r.yaml","kind":"runbook-file","steps":["a"]}` + "\n" +
			`{"type":"run_end","time":"2026-11-29T08:01:00Z","status":"ok"}`,
		"20261125T080000Z-eeeeee": `{"type":"run_start","time":"2026-11-25T08:00:00Z","command":"hoctl runbook run r.yaml","kind":"runbook-file","steps":["a"]}`,
	} {
		if err := os.WriteFile(filepath.Join(runs, id+".jsonl"), []byte(recs+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	env := map[string]string{"HOCTL_INVENTORY": inv, "XDG_STATE_HOME": filepath.Join(dir, "state")}
	h.f.Getenv = func(k string) string { return env[k] }

	cases := []struct {
		args    []string
		want    []string // exactly these, in this order when ordered
		ordered bool
	}{
		{args: []string{"ping", "c"}, want: []string{"c1", "c2", "cattle", "compute"}},
		{args: []string{"hosts", "cattle,!"}, want: []string{"cattle,!zippy", "cattle,!c1", "cattle,!c2", "cattle,!fractal", "cattle,!cattle", "cattle,!compute", "cattle,!quorum", "cattle,!storage", "cattle,!all"}},
		{args: []string{"run", "all,&q"}, want: []string{"all,&quorum"}},
		{args: []string{"run", "c1", "--", ""}, want: nil},
		{args: []string{"ping", "c1", "z"}, want: []string{"zippy"}},
		{args: []string{"hosts", "c1", "z"}, want: []string{"zippy"}},
		{args: []string{"status", "c1", "z"}, want: []string{"zippy"}},
		{args: []string{"deploy", "c1", "c"}, want: []string{"c1", "c2", "cattle", "compute"}},
		{args: []string{"snapshots", "z"}, want: []string{"zippy"}},
		{args: []string{"copy", "cattle,!c"}, want: []string{"cattle,!c1", "cattle,!c2", "cattle,!cattle", "cattle,!compute"}},
		{args: []string{"replicate", "zippy", "c"}, want: []string{"c1", "c2"}},
		{args: []string{"replicate", "--name", ""}, want: []string{"services"}},
		{args: []string{"replicate", "--transport", ""}, want: []string{"relay", "direct"}},
		{args: []string{"failover", "--service", ""}, want: []string{"data-services"}},
		// failover moves the service to one of its members only (c2 is a
		// host of the inventory, not of data-services).
		{args: []string{"failover", "--to", "c"}, want: []string{"c1"}},
		{args: []string{"failover", "--to", ""}, want: []string{"zippy", "c1"}},
		{args: []string{"failover", "--service", "data-services", "--to", ""}, want: []string{"zippy", "c1"}},
		{args: []string{"failover", "--service", "other", "--to", ""}, want: nil},
		{args: []string{"resume", ""}, want: []string{"20261128T080000Z-cccccc", "20261125T080000Z-eeeeee"}, ordered: true},
		{args: []string{"history", "2026112"}, want: []string{"20261129T080000Z-dddddd", "20261128T080000Z-cccccc", "20261127T080000Z-bbbbbb", "20261126T080000Z-aaaaaa", "20261125T080000Z-eeeeee"}, ordered: true},
		{args: []string{"help", "tar"}, want: []string{"target-filter", "targets"}},
	}
	for _, c := range cases {
		got, _ := h.complete(t, c.args...)
		if !sameSet(got, c.want, c.ordered) {
			t.Errorf("__complete %q = %q, want %q", c.args, got, c.want)
		}
	}
	// "last" is offered to resume only when the newest run is one it continues.
	if got, _ := h.complete(t, "resume", "l"); len(got) != 0 {
		t.Errorf("resume l with a finished newest run: %q", got)
	}
	rec := `{"type":"run_start","time":"2026-11-30T08:00:00Z","command":"hoctl failover --to zippy","kind":"failover","steps":["a"]}` + "\n"
	if err := os.WriteFile(filepath.Join(runs, "20261130T080000Z-ffffff.jsonl"), []byte(rec), 0o600); err != nil {
		t.Fatal(err)
	}
	if got, _ := h.complete(t, "resume", "l"); !sameSet(got, []string{"last"}, true) {
		t.Errorf("resume l with an interrupted newest run: %q", got)
	}
	// A bad inventory completes nothing and says nothing on stdout.
	env["HOCTL_INVENTORY"] = filepath.Join(dir, "missing.yaml")
	h2 := newHarness(t)
	h2.f.Getenv = h.f.Getenv
	if got, _ := h2.complete(t, "ping", ""); len(got) != 0 {
		t.Errorf("no inventory: %q", got)
	}
	// Runbook files: the shell filters by extension.
	if _, dir := h2.complete(t, "runbook", "run", ""); dir != ":8" {
		t.Errorf("runbook run FILE directive %s, want :8 (filter by extension)", dir)
	}
}

func sameSet(got, want []string, ordered bool) bool {
	if len(got) != len(want) {
		return false
	}
	if ordered {
		for i := range got {
			if got[i] != want[i] {
				return false
			}
		}
		return true
	}
	seen := map[string]int{}
	for _, g := range got {
		seen[g]++
	}
	for _, w := range want {
		seen[w]--
	}
	for _, n := range seen {
		if n != 0 {
			return false
		}
	}
	return true
}

// A run's command line comes from the journal, where a hostile runbook
// file name put it: zsh and fish show completion descriptions, so an
// escape sequence there would reach the terminal on TAB, and a newline
// would add a candidate of its own.
func TestCompletionDescriptionsAreDefused(t *testing.T) {
	h := newHarness(t)
	dir := t.TempDir()
	runs := filepath.Join(dir, "state", "hoctl", "runs")
	if err := os.MkdirAll(runs, 0o700); err != nil {
		t.Fatal(err)
	}
	rec := `{"type":"run_start","kind":"runbook-file","command":"hoctl runbook run e\u001b]0;PWN\u0007\nrm -rf ~\tx.yaml"}` + "\n"
	if err := os.WriteFile(filepath.Join(runs, "20261126T080000Z-aaaaaa.jsonl"), []byte(rec), 0o600); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"XDG_STATE_HOME": filepath.Join(dir, "state")}
	h.f.Getenv = func(k string) string { return env[k] }
	if code := h.runLine("__complete", "resume", "2026"); code != 0 {
		t.Fatalf("exit %d: %s", code, h.err)
	}
	out := h.out.String()
	if strings.ContainsAny(out, "\x1b\x07") {
		t.Errorf("terminal control characters in completion output: %q", out)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 2 || strings.Count(lines[0], "\t") != 1 {
		t.Errorf("want one candidate with one description, then the directive; got %q", out)
	}
}
