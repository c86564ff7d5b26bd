package deploy

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	nomadapi "github.com/hashicorp/nomad/api"
	"github.com/hoctl/hoctl/pkg/inventory"
	"github.com/hoctl/hoctl/pkg/sshexec"
	"github.com/hoctl/hoctl/pkg/tasks"
)

// host is a fake machine whose running generation the test controls; every
// script it is sent is recorded.
type host struct {
	mu   sync.Mutex
	gen  string
	boot string // the boot id, "boot-1" unless set
	// rollback is the state of the rollback's service, "inactive" (gone)
	// unless set.
	rollback string
	up       bool
	fail     map[string]bool // scripts (by prefix) that fail
	ran      []string
}

func (m *host) runner() sshexec.Runner { return &hostRunner{m: m} }

type hostRunner struct{ m *host }

func (r *hostRunner) Name() string { return "c2" }
func (r *hostRunner) Run(_ context.Context, c sshexec.Cmd) (*sshexec.Result, error) {
	m := r.m
	m.mu.Lock()
	defer m.mu.Unlock()
	line := c.Line()
	m.ran = append(m.ran, line)
	for prefix := range m.fail {
		if strings.HasPrefix(line, prefix) {
			return &sshexec.Result{ExitCode: 1}, &sshexec.ExitError{Host: "c2", Code: 1}
		}
	}
	if c.Script == factsScript {
		boot := m.boot
		if boot == "" {
			boot = "boot-1"
		}
		return &sshexec.Result{Stdout: []byte(m.gen + " " + boot + "\n")}, nil
	}
	if strings.HasPrefix(line, "readlink /run/current-system; systemctl is-active hoctl-rollback-c2.service") {
		state := m.rollback
		if state == "" {
			state = "inactive"
		}
		return &sshexec.Result{Stdout: []byte(m.gen + "\n" + state + "\n")}, nil
	}
	if strings.HasPrefix(line, "readlink /run/current-system; readlink -f") {
		return &sshexec.Result{Stdout: []byte(m.gen + "\n" + m.gen + "\n")}, nil
	}
	if strings.HasPrefix(line, "systemctl is-system-running") {
		return &sshexec.Result{Stdout: []byte("running\n")}, nil
	}
	return &sshexec.Result{}, nil
}

func (m *host) fresh(ctx context.Context, _ *inventory.Host) (sshexec.Runner, func(), error) {
	m.mu.Lock()
	up := m.up
	m.mu.Unlock()
	if err := ctx.Err(); err != nil {
		return nil, nil, err // a dial with no time left
	}
	if !up {
		return nil, nil, errors.New("c2 (127.0.0.1:22): connection refused")
	}
	return m.runner(), func() {}, nil
}

func (m *host) ranAny(sub string) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, l := range m.ran {
		if strings.Contains(l, sub) {
			return true
		}
	}
	return false
}

func confirmRun(m *host, timeout time.Duration) (*Run, *inventory.Host) {
	h := &inventory.Host{Name: "c2"}
	r := &Run{Opts: Options{ConfirmTimeout: timeout, Wait: 3 * time.Second}, Clients: Clients{Fresh: m.fresh},
		before: map[string]facts{"c2": {generation: "/nix/store/old-system", bootID: "boot-1"}}, armed: map[string]time.Time{"c2": time.Now()}}
	return r, h
}

func TestConfirmCancelsTheRollbackOfAHealthyHost(t *testing.T) {
	m := &host{gen: "/nix/store/new-system", up: true}
	r, h := confirmRun(m, 5*time.Second)
	notes, err := r.confirm(context.Background(), nil, h, func(context.Context) (string, error) { return "now /nix/store/new-system", nil })
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(notes, "confirmed over a new SSH connection, rollback cancelled") || !m.ranAny("systemctl stop hoctl-rollback-c2.timer") {
		t.Fatalf("notes %q, ran %q", notes, m.ran)
	}
}

// sshd dead after activation: no new connection, so nothing is cancelled;
// the host's own timer switches it back and it answers on the old
// generation: rolled back.
func TestUnreachableAfterActivationRollsBack(t *testing.T) {
	m := &host{gen: "/nix/store/new-system", up: false}
	r, h := confirmRun(m, 300*time.Millisecond)
	go func() {
		time.Sleep(500 * time.Millisecond) // the timer fires: back on the old generation, sshd up
		m.mu.Lock()
		m.gen, m.up = "/nix/store/old-system", true
		m.mu.Unlock()
	}()
	_, err := r.confirm(context.Background(), nil, h, func(context.Context) (string, error) {
		t.Error("health ran without a new connection")
		return "", nil
	})
	var rb *RolledBackError
	if !errors.As(err, &rb) || rb.Generation != "/nix/store/old-system" || !strings.Contains(err.Error(), "no new SSH connection before the confirm timeout: c2 (127.0.0.1:22): connection refused") {
		t.Fatalf("err = %v", err)
	}
	// The journal calls a run whose error is a context's "interrupted".
	if errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("a rollback passes for an interrupted run: %v", err)
	}
	if m.ranAny("systemctl stop hoctl-rollback-c2.timer &&") {
		t.Fatalf("cancelled a rollback it never confirmed: %q", m.ran)
	}
}

// Reachable but unhealthy: the rollback starts at once, without waiting
// for the timer, and the host is reported rolled back with the reason.
func TestUnhealthyHostRollsBackAtOnce(t *testing.T) {
	m := &host{gen: "/nix/store/new-system", up: true}
	r, h := confirmRun(m, time.Hour)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for !m.ranAny("systemctl start --no-block hoctl-rollback-c2.service") {
			time.Sleep(10 * time.Millisecond)
		}
		m.mu.Lock()
		m.gen = "/nix/store/old-system"
		m.mu.Unlock()
	}()
	_, err := r.confirm(context.Background(), nil, h, func(context.Context) (string, error) {
		return "", errors.New(`c2: systemctl is-system-running says "degraded"`)
	})
	<-done
	var rb *RolledBackError
	if !errors.As(err, &rb) || !strings.Contains(err.Error(), "degraded") {
		t.Fatalf("err = %v", err)
	}
}

// Neither confirmed nor seen back: said plainly, naming the timer.
func TestNeverBackIsNotCalledRolledBack(t *testing.T) {
	m := &host{gen: "/nix/store/new-system", up: false}
	r, h := confirmRun(m, 100*time.Millisecond)
	r.Opts.Wait = 300 * time.Millisecond
	_, err := r.confirm(context.Background(), nil, h, func(context.Context) (string, error) { return "", nil })
	var rb *RolledBackError
	if err == nil || errors.As(err, &rb) || !strings.Contains(err.Error(), "when its rollback (hoctl-rollback-c2.timer, on the host) was due") {
		t.Fatalf("err = %v", err)
	}
}

// The arm script run by a real shell, with systemd-run and nix-env stood
// in by scripts: the transient unit is asked for with the timeout, and the
// command it would run sets the profile back and switches to the old
// generation, whatever characters the store path holds.
func TestArmScriptArmsARollbackThatWorks(t *testing.T) {
	dir := t.TempDir()
	bin := filepath.Join(dir, "bin")
	gen := filepath.Join(dir, "store", "old system'$(x)")
	for _, d := range []string{bin, filepath.Join(gen, "bin")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	log := filepath.Join(dir, "log")
	write := func(p, body string) {
		if err := os.WriteFile(p, []byte("#!/bin/sh\n"+body+"\n"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	// systemd-run records its arguments, one per line, for the test to run.
	write(filepath.Join(bin, "systemd-run"), `for a in "$@"; do printf '%s\n' "$a"; done > `+sshexec.Quote(filepath.Join(dir, "args")))
	write(filepath.Join(bin, "systemctl"), `echo "systemctl $*" >> `+sshexec.Quote(log))
	// nix-env is what Nix installs: a symlink to the multi-call nix,
	// which acts by the name it is called by (nix -p is an error).
	write(filepath.Join(bin, "nix"), `case $(basename "$0") in
nix-env) echo "nix-env $*" >> `+sshexec.Quote(log)+` ;;
*) echo "error: unrecognised flag '$1'" >&2; exit 1 ;;
esac`)
	if err := os.Symlink("nix", filepath.Join(bin, "nix-env")); err != nil {
		t.Fatal(err)
	}
	write(filepath.Join(gen, "bin", "switch-to-configuration"), `echo "switch-to-configuration $*" >> `+sshexec.Quote(log))

	cmd := exec.Command("sh", "-c", armScript("hoctl-rollback-c2", gen, filepath.Join(dir, "fired"), filepath.Join(dir, "rollback.sh"), 90*time.Second))
	cmd.Env = []string{"PATH=" + bin + ":/usr/bin:/bin"}
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("arm script: %v\n%s", err, out)
	}
	data, err := os.ReadFile(filepath.Join(dir, "args"))
	if err != nil {
		t.Fatal(err)
	}
	args := strings.Split(strings.TrimSuffix(string(data), "\n"), "\n")
	for _, want := range []string{"--unit=hoctl-rollback-c2", "--on-active=90000ms"} {
		if !strings.Contains(string(data), want+"\n") {
			t.Errorf("systemd-run args lack %q: %q", want, args)
		}
	}
	// What the unit would run: everything from /bin/sh on.
	i := 0
	for i < len(args) && args[i] != "/bin/sh" {
		i++
	}
	if i == len(args) {
		t.Fatalf("no /bin/sh in %q", args)
	}
	// systemd writes a transient unit's command line to its file in
	// /run/systemd/transient escaped, and reads it back garbled on a
	// daemon-reload (systemd 252: "$1" came back as "\$1"), which every
	// NixOS switch does: the command holds none of what it escapes.
	for _, a := range args[i:] {
		if strings.ContainsAny(a, `$\%"'`) {
			t.Errorf("the unit's command has %q, which systemd does not read back alike after a daemon-reload: %q", a, args[i:])
		}
	}
	run := exec.Command(args[i], args[i+1:]...)
	run.Env = []string{"PATH=/usr/bin:/bin"} // the unit's PATH need not find nix-env
	if out, err := run.CombinedOutput(); err != nil {
		t.Fatalf("rollback command: %v\n%s", err, out)
	}
	if _, err := os.Stat(filepath.Join(dir, "fired")); err != nil {
		t.Errorf("the rollback left no marker: %v", err)
	}
	got, _ := os.ReadFile(log)
	want := "systemctl is-active --quiet hoctl-rollback-c2.timer\nnix-env -p /nix/var/nix/profiles/system --set " + gen + "\nswitch-to-configuration switch\n"
	if string(got) != want {
		t.Fatalf("ran\n%s\nwant\n%s", got, want)
	}
}

// An earlier rollback still armed, running, or failed refuses the host;
// one that is gone (fired and succeeded, or cancelled) does not.
func TestPendingRollbackRefuses(t *testing.T) {
	h := &inventory.Host{Name: "c2"}
	for out, want := range map[string]string{
		"active\ninactive\ncan-arm\n":                       "still armed (hoctl-rollback-c2.timer)",
		"inactive\nactivating\ncan-arm\n":                   "is running now",
		"inactive\nfailed\ncan-arm\n":                       "systemctl reset-failed hoctl-rollback-c2.service",
		"inactive\ninactive\ncan-arm\n":                     "",
		"inactive\ninactive\nmissing:nix-env\n":             "its PATH has no nix-env: nothing deployed",
		"inactive\ninactive\nmissing:systemd-run,nix-env\n": "its PATH has no systemd-run and no nix-env",
		"": "unreadable",
	} {
		err := pending(h, []byte(out))
		if want == "" && err != nil || want != "" && (err == nil || !strings.Contains(err.Error(), want)) {
			t.Errorf("%q: %v, want %q", out, err, want)
		}
	}
}

// A host whose checks pass but whose rollback cannot be cancelled (its
// timer fired just then) goes back: its Nomad node must stay ineligible,
// not be handed allocations while it switches back.
func TestNodeNotEligibleUntilConfirmed(t *testing.T) {
	var mu sync.Mutex
	var eligibility []string
	nomad := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		switch {
		case req.URL.Path == "/v1/nodes":
			_, _ = w.Write([]byte(`[{"ID":"n2","Name":"c2","Status":"ready"}]`))
		case strings.HasSuffix(req.URL.Path, "/eligibility"):
			mu.Lock()
			eligibility = append(eligibility, req.URL.Path)
			mu.Unlock()
			_, _ = w.Write([]byte(`{}`))
		default:
			http.NotFound(w, req)
		}
	}))
	defer nomad.Close()
	m := &host{gen: "/nix/store/new-system", up: true, fail: map[string]bool{"systemctl stop hoctl-rollback-c2.timer &&": true}}
	r, h := confirmRun(m, time.Hour)
	r.Clients.Nomad = func(context.Context) (*nomadapi.Client, error) {
		return nomadapi.NewClient(&nomadapi.Config{Address: nomad.URL})
	}
	go func() { // the timer fired as hoctl cancelled: the host goes back
		for !m.ranAny("systemctl stop hoctl-rollback-c2.timer &&") {
			time.Sleep(10 * time.Millisecond)
		}
		m.mu.Lock()
		m.gen = "/nix/store/old-system"
		m.mu.Unlock()
	}()
	env := &tasks.Env{Connect: func(context.Context, *inventory.Host) (sshexec.Runner, error) { return m.runner(), nil }}
	_, err := r.afterHost(false)(context.Background(), env, h)
	var rb *RolledBackError
	if !errors.As(err, &rb) {
		t.Fatalf("err = %v", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(eligibility) > 0 {
		t.Fatalf("a node that rolled back was marked eligible: %q", eligibility)
	}
}

// A host that rebooted into its new generation during the deploy lost its
// rollback with the reboot (a transient timer): there is nothing to cancel
// (systemctl stop fails: no such unit), and nothing to wait for.
func TestRebootDropsTheRollback(t *testing.T) {
	m := &host{gen: "/nix/store/new-system", boot: "boot-2", up: true, fail: map[string]bool{"systemctl stop hoctl-rollback-c2.timer": true}}
	r, h := confirmRun(m, time.Hour)
	// Bounded: without knowing better, hoctl would wait for a rollback
	// that never comes.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	notes, err := r.confirm(ctx, nil, h, func(context.Context) (string, error) { return "now /nix/store/new-system", nil })
	if err != nil || !strings.Contains(notes, "rebooted during the deploy, which dropped its magic rollback") {
		t.Fatalf("notes %q, err %v", notes, err)
	}
	_, err = r.confirm(ctx, nil, h, func(context.Context) (string, error) { return "", errors.New("c2: degraded") })
	var rb *RolledBackError
	if err == nil || errors.As(err, &rb) || !strings.Contains(err.Error(), "hoctl deploy --rollback c2") {
		t.Fatalf("unhealthy after a reboot: %v", err)
	}
}

// The switch points /run/current-system back before it restarts the
// units: a host whose rollback is still running is not back yet, and one
// whose rollback failed did not roll back.
func TestRolledBackOnlyOnceTheRollbackFinished(t *testing.T) {
	for state, want := range map[string]string{
		"active": "not seen back on /nix/store/old-system",
		"failed": "its rollback to /nix/store/old-system failed on the host (journalctl -u hoctl-rollback-c2.service says why)",
	} {
		m := &host{gen: "/nix/store/old-system", rollback: state, up: true}
		r, h := confirmRun(m, 100*time.Millisecond)
		r.Opts.Wait = 300 * time.Millisecond
		err := r.awaitRollback(context.Background(), h, facts{generation: "/nix/store/old-system"}, time.Now(), errors.New("degraded"))
		var rb *RolledBackError
		if err == nil || errors.As(err, &rb) || !strings.Contains(err.Error(), want) {
			t.Errorf("rollback %s: %v, want %q", state, err, want)
		}
	}
}

// A deploy that activated nothing new (the command exited 0 having
// changed nothing, or failed in its build) leaves the host running and
// booting its old generation: the rollback is disarmed, not fired to
// switch the host to what it already runs and reported as a rollback.
func TestNothingActivatedDisarms(t *testing.T) {
	m := &host{gen: "/nix/store/old-system", up: true}
	r, h := confirmRun(m, time.Hour)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := r.confirm(ctx, nil, h, func(context.Context) (string, error) {
		return "", errors.New("c2 still runs /nix/store/old-system: the deploy command exited 0 but the system generation did not change")
	})
	var rb *RolledBackError
	if err == nil || errors.As(err, &rb) || !strings.Contains(err.Error(), "did not change; c2 runs and boots the generation it ran before, so its magic rollback is disarmed") {
		t.Fatalf("err = %v", err)
	}
	if m.ranAny("systemctl start --no-block hoctl-rollback-c2.service") || !m.ranAny("systemctl stop hoctl-rollback-c2.timer &&") {
		t.Fatalf("ran %q", m.ran)
	}
}
