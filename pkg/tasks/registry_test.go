package tasks_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/hoctl/hoctl/pkg/inventory"
	"github.com/hoctl/hoctl/pkg/tasks"
	"github.com/hoctl/hoctl/pkg/tasks/taskstest"
)

func TestUnknownKindIsAClearError(t *testing.T) {
	for _, kind := range []string{"replicate", "no-such-kind", ""} {
		b, err := tasks.Lookup(kind)
		var uk *tasks.UnknownKindError
		if b != nil || !errors.As(err, &uk) {
			t.Fatalf("Lookup(%q) = %v, %v; want an *UnknownKindError", kind, b, err)
		}
		msg := err.Error()
		if !strings.Contains(msg, "no resumable run kind") || !strings.Contains(msg, tasks.KindFile) {
			t.Errorf("Lookup(%q): %q does not say what is resumable", kind, msg)
		}
		if kind != "" && !strings.Contains(msg, kind) {
			t.Errorf("Lookup(%q): %q does not name the kind", kind, msg)
		}
	}
}

func TestRegisterRefusesMistakes(t *testing.T) {
	build := func(context.Context, *tasks.Rebuild) (*tasks.Runbook, error) { return nil, nil }
	for name, reg := range map[string]func(){
		"twice":       func() { tasks.Register(tasks.KindFile, build) },
		"empty kind":  func() { tasks.Register("", build) },
		"nil builder": func() { tasks.Register("registry-test-nil", nil) },
	} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("Register %s did not panic", name)
				}
			}()
			reg()
		}()
	}
	if slices.Contains(tasks.Kinds(), "registry-test-nil") {
		t.Error("a nil builder was registered")
	}
}

const fileRunbook = `name: rotate
vars: {app: web}
secrets: {token: APP_TOKEN}
steps:
  - title: stop {{.Vars.app}}
    hosts: all
    before: test -e /etc/{{.Vars.app}}
    run: systemctl stop {{.Vars.app}} # {{.Host}}
    after: "! systemctl is-active -q {{.Vars.app}}"
  - title: rotate the key
    hosts: all
    run: rotate --token {{.Vars.token}} --tier {{.Vars.tier}}
    serial: 1
`

// A runbook file's run is rebuilt from its journal with the variables
// and --limit it was started with: same steps, hosts and commands.
func TestRunbookFileRoundTrips(t *testing.T) {
	inv, err := inventory.Parse("inv.yaml", []byte("hosts: {h1: {}, h2: {}, db: {}}\ngroups: {web: [h1, h2]}\n"))
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "rotate.yaml")
	src := strings.Replace(fileRunbook, "vars: {app: web}", "vars: {app: web, tier: \"1\"}", 1)
	if err := os.WriteFile(file, []byte(src), 0o600); err != nil {
		t.Fatal(err)
	}
	getenv := func(k string) string { return map[string]string{"APP_TOKEN": "s3cret"}[k] }
	o := tasks.LoadOptions{Vars: map[string]string{"app": "api", "tier": "2"}, Getenv: getenv, Limit: "web,!h2"}
	rb, err := tasks.LoadRunbookFile(context.Background(), file, inv, o)
	if err != nil {
		t.Fatal(err)
	}
	s := taskstest.Journaled(t, "run-1", rb)
	build, err := tasks.Lookup(s.Kind)
	if err != nil {
		t.Fatal(err)
	}
	back, err := build(context.Background(), &tasks.Rebuild{Run: s, Inventory: inv, Getenv: getenv})
	if err != nil {
		t.Fatal(err)
	}
	want, got := taskstest.Shape(t, rb), taskstest.Shape(t, back)
	if !slices.Equal(want, got) {
		t.Fatalf("rebuilt runbook differs:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if !strings.Contains(strings.Join(got, "\n"), "h1 action: systemctl stop api") || strings.Contains(strings.Join(got, "\n"), "h2 action") {
		t.Fatalf("the shape does not show the run's --var and --limit:\n%s", strings.Join(got, "\n"))
	}
	if !slices.Equal(back.Secrets, rb.Secrets) {
		t.Errorf("secrets %q, want %q", back.Secrets, rb.Secrets)
	}

	// A --limit given to resume narrows the rebuilt run instead.
	narrowed, err := build(context.Background(), &tasks.Rebuild{Run: s, Inventory: inv, Getenv: getenv, Limit: "db"})
	if err != nil {
		t.Fatal(err)
	}
	if h := narrowed.Steps[0].Hosts; len(h) != 1 || h[0].Name != "db" {
		t.Errorf("resume --limit db: step 1 on %v", h)
	}

	// A file changed since is refused (exit 3), unless forced.
	if err := os.WriteFile(file, []byte(src+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = build(context.Background(), &tasks.Rebuild{Run: s, Inventory: inv, Getenv: getenv})
	var re *tasks.RefusedError
	if !errors.As(err, &re) || !strings.Contains(err.Error(), "changed since run run-1 started") {
		t.Fatalf("changed file: %v", err)
	}
	if _, err := build(context.Background(), &tasks.Rebuild{Run: s, Inventory: inv, Getenv: getenv, Force: true}); err != nil {
		t.Fatalf("changed file with --force: %v", err)
	}
	if err := os.Remove(file); err != nil {
		t.Fatal(err)
	}
	_, err = build(context.Background(), &tasks.Rebuild{Run: s, Inventory: inv, Getenv: getenv, Force: true})
	if !errors.As(err, &re) || !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("missing file: %v, want a refusal that unwraps to not-exist", err)
	}
}
