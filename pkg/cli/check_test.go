package cli

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hoctl/hoctl/pkg/inventory"
)

func writeFile(t *testing.T, dir, name, src string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(src), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// check lists every problem of the inventory and the runbooks, in file
// order, exits 2, and never connects.
func TestCheckListsEveryProblemAndConnectsNothing(t *testing.T) {
	h := newHarness(t)
	dir := t.TempDir()
	rb := writeFile(t, dir, "rb.yaml", "name: x\nvars: {app: a}\nsteps:\n  - {title: a, hosts: cattel, run: 'echo {{.Vars.ap}}', timeout: 30}\n  - {title: b, run: c, serial: x}\n")
	good := writeFile(t, dir, "good.yaml", "name: y\nsecrets: {tok: NOT_SET_ANYWHERE}\nsteps:\n  - {title: a, hosts: cattle, run: 'echo {{.Vars.tok}} {{.Host}}'}\n")
	h.f.Connect = func(*inventory.Inventory) (Connector, error) {
		t.Fatal("check asked for a connection")
		return nil, nil
	}
	code := h.exec("check", rb, good)
	if code != ExitUsage {
		t.Fatalf("exit %d\n%s%s", code, h.out, h.err)
	}
	want := []string{
		rb + `:4:23: steps.0.hosts: target "cattel": no host, group or role has this name; did you mean "cattle"?`,
		rb + `:4:36: steps.0.run: undefined variable ap`,
		rb + `:4:66: steps.0.timeout: expected a duration like 30s, got 30 without a unit`,
		rb + `:5:32: steps.1.serial: expected a whole number, got "x"`,
	}
	lines := strings.Split(strings.TrimSpace(h.out.String()), "\n")
	if len(lines) != len(want) {
		t.Fatalf("got %d problems, want %d:\n%s", len(lines), len(want), h.out)
	}
	for i, w := range want {
		if !strings.HasPrefix(lines[i], w) {
			t.Errorf("line %d:\n got %s\nwant %s…", i+1, lines[i], w)
		}
	}
	if !strings.Contains(h.err.String(), "4 problems") {
		t.Errorf("stderr: %s", h.err)
	}
}

func TestCheckOKSummaryAndJSON(t *testing.T) {
	h := newHarness(t)
	rb := writeFile(t, t.TempDir(), "rb.yaml", "name: y\nsteps:\n  - {title: a, hosts: cattle, run: 'echo {{.Host}}'}\n  - {title: b, run: 'true'}\n")
	if code := h.exec("check", rb); code != 0 {
		t.Fatalf("exit %d\n%s%s", code, h.out, h.err)
	}
	if !strings.HasPrefix(h.out.String(), "ok: ") || !strings.Contains(h.out.String(), "1 runbook (2 steps); nothing connected") {
		t.Fatalf("summary: %q", h.out)
	}
	h = newHarness(t)
	bad := writeFile(t, t.TempDir(), "bad.yaml", "name: y\nstep:\n  - {title: a, run: b}\n")
	if code := h.exec("--json", "check", rb, bad); code != ExitUsage {
		t.Fatalf("exit %d", code)
	}
	var events []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(h.out.String()), "\n") {
		var ev map[string]any
		if err := json.Unmarshal([]byte(line), &ev); err != nil {
			t.Fatalf("not JSON: %q", line)
		}
		events = append(events, ev)
	}
	last := events[len(events)-1]
	found := false
	for _, ev := range events[:len(events)-1] {
		if ev["event"] == "problem" && ev["file"] == bad && ev["line"] == 2.0 && ev["column"] == 1.0 && strings.Contains(ev["message"].(string), `unknown field "step"; did you mean "steps"?`) {
			found = true
		}
	}
	if !found {
		t.Errorf("no problem event for the unknown field: %v", events)
	}
	if last["event"] != "check_summary" || last["ok"] != false || last["runbooks"] != 1.0 || last["problems"] != float64(len(events)-1) {
		t.Errorf("summary event: %v", last)
	}
}

// A value pasted into a command unquoted is warned about by check, as by
// runbook plan; it is not a problem (exit 0), and --json carries it.
func TestCheckWarnsAboutUnquotedValues(t *testing.T) {
	rb := writeFile(t, t.TempDir(), "rb.yaml", "name: y\nvars: {app: gitea}\nsteps:\n  - {title: a, hosts: cattle, run: 'nomad job stop {{.Vars.app}}', undo: 'start {{.Vars.app | q}}'}\n")
	h := newHarness(t)
	if code := h.exec("check", rb); code != 0 {
		t.Fatalf("exit %d\n%s%s", code, h.out, h.err)
	}
	want := "warning: " + rb + ": step 1 run: {{.Vars.app}} is pasted into the command unquoted; write it with | q"
	if !strings.Contains(h.err.String(), want) || strings.Count(h.err.String(), "warning:") != 1 {
		t.Errorf("stderr:\n%s\nwant one warning: %s", h.err, want)
	}
	if !strings.Contains(h.out.String(), "1 runbook (1 step); nothing connected") {
		t.Errorf("summary: %q", h.out)
	}
	h = newHarness(t)
	if code := h.exec("--json", "check", rb); code != 0 {
		t.Fatalf("exit %d\n%s%s", code, h.out, h.err)
	}
	var sum struct {
		Event    string   `json:"event"`
		Warnings []string `json:"warnings"`
	}
	if err := json.Unmarshal([]byte(strings.TrimSpace(h.out.String())), &sum); err != nil {
		t.Fatalf("%v: %q", err, h.out)
	}
	if sum.Event != "check_summary" || len(sum.Warnings) != 1 || !strings.HasPrefix(sum.Warnings[0], rb+": step 1 run: {{.Vars.app}}") {
		t.Errorf("summary event: %s", h.out)
	}
}

func TestCheckRendersDeployCommandForEveryHost(t *testing.T) {
	h := newHarness(t)
	inv := writeFile(t, t.TempDir(), "inv.yaml", "hosts:\n  a: {address: x}\ndeploy: {command: 'deploy {{.HostInfo.Nope}}'}\n")
	if code := h.exec("-i", inv, "check"); code != ExitUsage || !strings.Contains(h.out.String(), "inv.yaml:3:19: deploy.command: {{.HostInfo.Nope}}: .HostInfo has no field Nope; did you mean .HostInfo.Name? (fields: Name, Address, Roles, Managed, Vars, User, Port, IdentityFiles, KnownHosts, HostKeyPolicy, ConnectTimeout, CommandTimeout, Keepalive, Become, Jump) (for host a)") {
		t.Fatalf("exit %d: %s", code, h.out)
	}
	h = newHarness(t)
	inv = writeFile(t, t.TempDir(), "inv.yaml", "hosts:\n  a: {address: x}\ndeploy: {command: 'deploy {{.HostInfo.Adress}}'}\n")                                                                                                    //nolint:misspell // the typo is what is tested
	if code := h.exec("-i", inv, "check"); code != ExitUsage || !strings.Contains(h.out.String(), "deploy.command: {{.HostInfo.Adress}}: .HostInfo has no field Adress; did you mean .HostInfo.Address? (fields: Name, Address,") { //nolint:misspell // the typo is what is tested
		t.Fatalf("exit %d: %s", code, h.out)
	}
}

// --json check ends with an error event that says what failed, as every
// failing command's does (docs/json.md), not "exit 2".
func TestCheckJSONEndsWithWhatFailed(t *testing.T) {
	h := newHarness(t)
	inv := writeFile(t, t.TempDir(), "inv.yaml", "hosts:\n  a: {address: 'root@a'}\n  b: {port: 0x}\n")
	code := Run(context.Background(), h.f, []string{"-i", inv, "--json", "check"})
	lines := strings.Split(strings.TrimSpace(h.out.String()), "\n")
	var last struct {
		Event    string `json:"event"`
		ExitCode int    `json:"exit_code"`
		Error    string `json:"error"`
	}
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &last); err != nil {
		t.Fatal(err)
	}
	want := "check found 2 problems; the first: " + inv + `:2:16: hosts.a.address: expected the host alone, got "root@a": write address: a and user: root`
	if code != ExitUsage || last.Event != "error" || last.ExitCode != ExitUsage || last.Error != want {
		t.Fatalf("exit %d, last event %+v\nwant error %q\n%s", code, last, want, h.out)
	}
	// Without --json the problems are the output: no error line repeats them.
	h = newHarness(t)
	if code := Run(context.Background(), h.f, []string{"-i", inv, "check"}); code != ExitUsage || strings.Contains(h.err.String(), "error:") {
		t.Fatalf("exit %d, stderr %q", code, h.err)
	}
}

// A broken inventory: its problems are listed, the runbooks are named as
// not checked (they would only repeat "not a host").
func TestCheckWithBrokenInventory(t *testing.T) {
	h := newHarness(t)
	dir := t.TempDir()
	inv := writeFile(t, dir, "inv.yaml", "hosts:\n  a: {address: x, identity_file: k}\n")
	rb := writeFile(t, dir, "rb.yaml", "name: x\nsteps: []\n")
	if code := h.exec("-i", inv, "check", rb); code != ExitUsage {
		t.Fatalf("exit %d", code)
	}
	if !strings.Contains(h.out.String(), `inv.yaml:2:19: hosts.a: unknown field "identity_file"; did you mean "identity_files"?`) {
		t.Errorf("out: %s", h.out)
	}
	if !strings.Contains(h.err.String(), "runbooks not checked until the inventory loads: "+rb) {
		t.Errorf("err: %s", h.err)
	}
}

func TestMissingInventoryNamesPathAndHowToPointElsewhere(t *testing.T) {
	dir := t.TempDir()
	for _, c := range []struct {
		flag, env, want string
	}{
		{flag: filepath.Join(dir, "nope.yaml"), want: "no inventory at " + filepath.Join(dir, "nope.yaml") + " (from -i)"},
		{env: filepath.Join(dir, "env.yaml"), want: "no inventory at " + filepath.Join(dir, "env.yaml") + " (from $HOCTL_INVENTORY)"},
	} {
		h := newHarness(t)
		h.f.InventoryPath = c.flag
		h.f.Getenv = func(k string) string {
			if k == "HOCTL_INVENTORY" {
				return c.env
			}
			return ""
		}
		_, err := h.f.Inventory(context.Background())
		if err == nil || ExitCode(err) != ExitUsage || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), "-i FILE or HOCTL_INVENTORY=FILE") {
			t.Errorf("err = %v, want %q", err, c.want)
		}
	}
}

func TestHostsSSHShowsEffectiveConnectionAndOrigins(t *testing.T) {
	t.Setenv("HOME", t.TempDir()) // no ~/.ssh/config
	h := newHarness(t)
	if code := h.exec("hosts", "c1", "--ssh"); code != 0 {
		t.Fatalf("exit %d: %s", code, h.err)
	}
	for _, re := range []string{`(?m)^c1$`, `(?m)^  address +10\.0\.0\.11 +inventory host$`, `(?m)^  port +22 +built-in default$`, `(?m)^  host_key_policy +strict +built-in default$`, `(?m)^  jump +none +built-in default$`, `(?m)^  agent +none +SSH_AUTH_SOCK not set$`} {
		if !regexp.MustCompile(re).MatchString(h.out.String()) {
			t.Errorf("output lacks %s:\n%s", re, h.out)
		}
	}
	h = newHarness(t)
	if code := h.exec("--json", "--become", "hosts", "cattle", "--ssh"); code != 0 {
		t.Fatalf("exit %d: %s", code, h.err)
	}
	lines := strings.Split(strings.TrimSpace(h.out.String()), "\n")
	if len(lines) != 2 {
		t.Fatalf("want one object per host: %s", h.out)
	}
	var ev struct {
		Host     string
		Settings map[string]struct{ Value, Origin string }
	}
	if err := json.Unmarshal([]byte(lines[1]), &ev); err != nil {
		t.Fatal(err)
	}
	if ev.Host != "c2" || ev.Settings["become"].Value != "sudo" || ev.Settings["become"].Origin != "--become flag" || ev.Settings["user"].Value != "root" {
		t.Fatalf("%+v", ev)
	}
}

// Settings come from an inventory someone else may have written: an
// escape sequence in user or known_hosts is shown, not acted on.
func TestHostsSSHDefusesTerminalSequences(t *testing.T) {
	t.Setenv("HOME", t.TempDir())
	h := newHarness(t)
	inv := filepath.Join(t.TempDir(), "inv.yaml")
	src := "defaults: {user: \"ro\\e]0;USER\\aot\", known_hosts: \"/tmp/k\\e]52;c;eA==\\a\"}\n" + testInventory
	if err := os.WriteFile(inv, []byte(src), 0o600); err != nil {
		t.Fatal(err)
	}
	if code := h.exec("-i", inv, "hosts", "c1", "--ssh"); code != 0 {
		t.Fatalf("exit %d: %s", code, h.err)
	}
	if out := h.out.String(); strings.ContainsAny(out, "\x1b\x07") || !strings.Contains(out, `ro\x1b]0;USER\x07ot`) {
		t.Fatalf("terminal sequences reach the screen:\n%q", out)
	}
}

// An inventory or runbook that is a FIFO no one writes to blocks in
// open(2). The first Ctrl-C or SIGTERM (ctx ending) must still end hoctl,
// exit 130; it used to stay blocked until killed.
func TestInterruptWhileWaitingForAFIFOFile(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "inventory.yaml")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Skipf("mkfifo: %v", err)
	}
	runbook := filepath.Join(dir, "runbook.yaml")
	if err := syscall.Mkfifo(runbook, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{{"-i", fifo, "hosts"}, {"-i", fifo, "check"}, {"runbook", "plan", runbook}} {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			h := newHarness(t)
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan int, 1)
			go func() { done <- Run(ctx, h.f, args) }()
			time.Sleep(100 * time.Millisecond)
			cancel()
			select {
			case code := <-done:
				if code != 130 {
					t.Fatalf("exit %d, want 130\n%s", code, h.err)
				}
			case <-time.After(20 * time.Second):
				t.Fatal("hoctl still blocked on the FIFO 20 s after it was interrupted")
			}
		})
	}
}
