package deploy

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hoctl/hoctl/pkg/hostout"
	"github.com/hoctl/hoctl/pkg/hostout/hostouttest"
	"github.com/hoctl/hoctl/pkg/inventory"
	"github.com/hoctl/hoctl/pkg/sshexec"
	"github.com/hoctl/hoctl/pkg/tasks"
)

// The deploy command's output is shown line by line with the host, the
// last line too when it has no newline.
func TestPrefixedOutputKeepsTheLastLine(t *testing.T) {
	var shown bytes.Buffer
	var tail tailBuffer
	w := &teeWriter{tail: &tail, shown: hostout.New(&shown, "c1 | ", nil)}
	_, _ = w.Write([]byte("building\nerror: out of disk"))
	if shown.String() != "c1 | building\n" {
		t.Fatalf("before flush: %q", shown.String())
	}
	w.shown.Flush()
	if shown.String() != "c1 | building\nc1 | error: out of disk\n" || tail.last() != "error: out of disk" {
		t.Fatalf("after flush: %q, tail %q", shown.String(), tail.last())
	}
}

// A host that is not a Nomad client (the inventory has no nomad section,
// or no node of its name) is not drained, and the output says so; the
// real cluster's four hosts are all clients, so this path is tested here.
func TestHostWithoutNomadNodeIsNotDrained(t *testing.T) {
	inv := &inventory.Inventory{Deploy: inventory.Deploy{Command: "echo deploying {{.Host}}"}}
	h := &inventory.Host{Name: "fractal"}
	_, r, err := Runbook(inv, []*inventory.Host{h}, Clients{}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	r.Opts.Output = &out
	got, err := r.deployHost(context.Background(), nil, h)
	if err != nil || got != "not a Nomad client: no drain; deploy command exited 0" || out.String() != "fractal | deploying fractal\n" {
		t.Fatalf("%q %v, output %q", got, err, out.String())
	}
}

// The deploy command relays what the host prints while it rebuilds: a
// hostile host's control sequences are shown, never sent to the
// operator's terminal raw (they once were: deploy had a writer of its
// own that did not sanitise). The rollback's remote output too.
func TestDeployOutputIsSanitised(t *testing.T) {
	file := filepath.Join(t.TempDir(), "hostile")
	if err := os.WriteFile(file, []byte(hostouttest.Hostile+"no newline\x1b[2J"), 0o600); err != nil {
		t.Fatal(err)
	}
	inv := &inventory.Inventory{Deploy: inventory.Deploy{Command: "cat " + file + "; cat " + file + " >&2"}}
	h := &inventory.Host{Name: "fractal"}
	_, r, err := Runbook(inv, []*inventory.Host{h}, Clients{}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	r.Opts.Output = &out
	if _, err := r.deployHost(context.Background(), nil, h); err != nil {
		t.Fatal(err)
	}
	if u := hostouttest.FirstUnsafe(out.String()); u != "" || !strings.Contains(out.String(), "fractal | "+hostouttest.Shown) {
		t.Fatalf("%s in %q", u, out.String())
	}
}

// hostileRunner answers every command with the hostile text on stdout
// and stderr, and exit 0.
type hostileRunner struct{ name string }

func (h hostileRunner) Name() string { return h.name }
func (h hostileRunner) Run(_ context.Context, c sshexec.Cmd) (*sshexec.Result, error) {
	for _, w := range []io.Writer{c.Stdout, c.Stderr} {
		if w != nil {
			_, _ = io.WriteString(w, hostouttest.Hostile+"no newline\x9b")
		}
	}
	return &sshexec.Result{Host: h.name}, nil
}

func TestRollbackOutputIsSanitised(t *testing.T) {
	inv := &inventory.Inventory{}
	h := &inventory.Host{Name: "fractal"}
	_, r, err := Runbook(inv, []*inventory.Host{h}, Clients{}, Options{Rollback: true})
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	r.Opts.Output = &out
	env := &tasks.Env{Inventory: inv, Connect: func(context.Context, *inventory.Host) (sshexec.Runner, error) {
		return hostileRunner{name: h.Name}, nil
	}}
	if _, err := r.deployHost(context.Background(), env, h); err != nil {
		t.Fatal(err)
	}
	if u := hostouttest.FirstUnsafe(out.String()); u != "" || !strings.Contains(out.String(), "fractal | "+hostouttest.Shown) ||
		!strings.HasSuffix(out.String(), "fractal | no newline\\x9b\n") {
		t.Fatalf("%s in %q", u, out.String())
	}
}
