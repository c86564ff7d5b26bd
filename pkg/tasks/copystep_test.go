package tasks

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/hoctl/hoctl/pkg/filecopy"
	"github.com/hoctl/hoctl/pkg/inventory"
	"github.com/hoctl/hoctl/pkg/sshexec"
)

// A copy: step writes the file, journals what it changed, and on a
// second run journals "unchanged" and writes nothing; its plan says per
// host whether the file would change.
func TestCopyStepWritesThenIsUnchanged(t *testing.T) {
	fx := newFixture(t)
	fx.eng.Env.Connect = func(_ context.Context, h *inventory.Host) (sshexec.Runner, error) {
		return sshexec.NewLocal(&sshexec.Target{Name: h.Name, Address: "local", Become: "none"}), nil
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "motd"), []byte("welcome\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	dest := filepath.Join(t.TempDir(), "motd")
	rbPath := filepath.Join(dir, "rb.yaml")
	src := "name: c\nsteps:\n  - {title: motd, hosts: db, copy: {src: motd, dest: " + dest + ", mode: '0600'}}\n"
	rb, err := ParseRunbook(rbPath, []byte(src), fx.inv, LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	p, err := fx.eng.Plan(context.Background(), rb, 1)
	if err != nil {
		t.Fatal(err)
	}
	if it := p.Steps[0].Items[0]; !it.BeforeOK || !strings.Contains(it.Run, "new file; 8 bytes") {
		t.Fatalf("plan item %+v", it)
	}
	id, err := fx.eng.Run(context.Background(), rb, RunOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(dest); err != nil || string(b) != "welcome\n" {
		t.Fatalf("dest: %q %v", b, err)
	}
	if fi, _ := os.Stat(dest); fi.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v", fi.Mode())
	}
	if out := actionOutput(t, fx, id); !strings.Contains(out, "written (new file, 8 bytes)") {
		t.Fatalf("journaled action: %q", out)
	}

	rb, _ = ParseRunbook(rbPath, []byte(src), fx.inv, LoadOptions{})
	p, _ = fx.eng.Plan(context.Background(), rb, 1)
	if it := p.Steps[0].Items[0]; !strings.HasPrefix(it.Run, "nothing: "+dest+" is unchanged") {
		t.Fatalf("second plan: %+v", it)
	}
	id, err = fx.eng.Run(context.Background(), rb, RunOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if out := actionOutput(t, fx, id); out != "unchanged" {
		t.Fatalf("second run journaled %q", out)
	}
}

func actionOutput(t *testing.T, fx *fixture, id string) string {
	t.Helper()
	for _, r := range fx.journal(t, id) {
		if r.Type == "action" && r.Host == "db" {
			return r.Output
		}
	}
	t.Fatalf("no action record in run %s", id)
	return ""
}

func TestCopyStepProblemsAreLocated(t *testing.T) {
	inv, _ := inventory.Parse("inv.yaml", []byte(inv5))
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "f"), []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	rb := filepath.Join(dir, "rb.yaml")
	for src, want := range map[string]string{
		"name: x\nsteps:\n  - {title: a, copy: {src: nope, dest: /etc/x}}\n":        "rb.yaml:3:28: steps.0.copy.src: " + filepath.Join(dir, "nope") + " does not exist",
		"name: x\nsteps:\n  - {title: a, copy: {src: f, dest: etc/x}}\n":            "steps.0.copy.dest: destination \"etc/x\"",
		"name: x\nsteps:\n  - {title: a, copy: {src: f, dest: /x, mode: rw}}\n":     "steps.0.copy.mode: mode \"rw\"",
		"name: x\nsteps:\n  - {title: a, run: b, copy: {src: f, dest: /x}}\n":       "steps.0.run: a copy: step reads the file before and after by itself",
		"name: x\nsteps:\n  - {title: a, copy: {dest: /x}}\n":                       "steps.0.copy: missing src",
		"name: x\nsteps:\n  - {title: a, copy: {src: f, dest: /x, mdoe: '0644'}}\n": `unknown field "mdoe"`,
	} {
		_, err := ParseRunbook(rb, []byte(src), inv, LoadOptions{})
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q:\n got %v\nwant %q", src, err, want)
		}
	}
}

// resume rebuilds a copy from its journal: the same hosts and spec, and
// a source that changed since is refused unless --force.
func TestCopyResumeRebuildsAndRefusesAChangedSource(t *testing.T) {
	inv, _ := inventory.Parse("inv.yaml", []byte(inv5))
	p := filepath.Join(t.TempDir(), "f")
	if err := os.WriteFile(p, []byte("one\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	src, err := filecopy.ReadSource(context.Background(), p)
	if err != nil {
		t.Fatal(err)
	}
	hosts, _ := inv.Select("h1,h2")
	rb := CopyRunbook(hosts, filecopy.Spec{Src: p, Dest: "/etc/f", Mode: "0600"}, src)
	b, err := Lookup(rb.Kind)
	if err != nil {
		t.Fatal(err)
	}
	run := &Summary{ID: "r1", Params: rb.Params}
	got, err := b(context.Background(), &Rebuild{Run: run, Inventory: inv, Limit: "h2"})
	if err != nil {
		t.Fatal(err)
	}
	if got.Name != "copy f to /etc/f on h2" || len(got.Steps) != 1 {
		t.Fatalf("rebuilt %q", got.Name)
	}
	if err := os.WriteFile(p, []byte("two\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := b(context.Background(), &Rebuild{Run: run, Inventory: inv}); err == nil || !strings.Contains(err.Error(), "changed since run r1") {
		t.Fatalf("changed source: %v", err)
	}
	if _, err := b(context.Background(), &Rebuild{Run: run, Inventory: inv, Force: true}); err != nil {
		t.Fatalf("--force: %v", err)
	}
}

type progressRecorder struct {
	Reporter
	mu   sync.Mutex
	msgs []string
}

func (p *progressRecorder) Progress(i int, host, msg string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.msgs = append(p.msgs, fmt.Sprintf("%d %s %s", i, host, msg))
}

// A copy's transfer reports its progress (bytes, percent, rate) to the
// run's reporter, as the step and host it belongs to.
func TestCopyStepReportsProgress(t *testing.T) {
	fx := newFixture(t)
	fx.eng.Env.Connect = func(_ context.Context, h *inventory.Host) (sshexec.Runner, error) {
		return sshexec.NewLocal(&sshexec.Target{Name: h.Name, Address: "local", Become: "none"}), nil
	}
	rec := &progressRecorder{Reporter: fx.eng.Reporter}
	fx.eng.Reporter = rec
	p := filepath.Join(t.TempDir(), "f")
	if err := os.WriteFile(p, make([]byte, 1<<20), 0o600); err != nil {
		t.Fatal(err)
	}
	src, err := filecopy.ReadSource(context.Background(), p)
	if err != nil {
		t.Fatal(err)
	}
	hosts, _ := fx.inv.Select("db")
	rb := CopyRunbook(hosts, filecopy.Spec{Src: p, Dest: filepath.Join(t.TempDir(), "f")}, src)
	if _, err := fx.eng.Run(context.Background(), rb, RunOptions{}); err != nil {
		t.Fatal(err)
	}
	if len(rec.msgs) == 0 || !strings.HasPrefix(rec.msgs[0], "1 db ") || !strings.Contains(rec.msgs[0], " of 1.0 MiB (") {
		t.Fatalf("progress: %q", rec.msgs)
	}
}
