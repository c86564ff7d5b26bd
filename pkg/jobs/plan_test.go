package jobs_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hoctl/hoctl/pkg/exitcode"
	"github.com/hoctl/hoctl/pkg/inventory"
	"github.com/hoctl/hoctl/pkg/jobs"
)

func migrationInv(t *testing.T, extra string) (*inventory.Inventory, string) {
	t.Helper()
	root := t.TempDir()
	if err := os.Mkdir(filepath.Join(root, "services"), 0o755); err != nil {
		t.Fatal(err)
	}
	src := `job "web" {
  group "g" {
    task "t" {
      driver = "docker"
      config { volumes = ["/data/compute/web:/srv"] }
    }
  }
}
`
	if err := os.WriteFile(filepath.Join(root, "services", "web.hcl"), []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "services", "broken.hcl"), []byte("job \"x\" {\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	inv, err := inventory.Parse(filepath.Join(root, "inventory.yaml"), []byte("hosts: {c1: {}}\njobs:\n  dir: services\n  rewrite: [{from: /data/compute, to: /data/services}]\n"+extra))
	if err != nil {
		t.Fatal(err)
	}
	return inv, root
}

func TestMigrationResolve(t *testing.T) {
	inv, root := migrationInv(t, "")
	m := &jobs.Migration{}
	if !m.NeedsInventory() {
		t.Error("no --dir: the inventory is needed")
	}
	dir, rules, err := m.Resolve(inv)
	if err != nil || dir != filepath.Join(root, "services") || len(rules) != 1 || rules[0].From != "/data/compute" {
		t.Fatalf("from the inventory: %q %+v %v", dir, rules, err)
	}
	m = &jobs.Migration{Dir: root, From: []string{"/a"}, To: []string{"/b"}}
	if m.NeedsInventory() {
		t.Error("--dir, --from and --to: the inventory is not needed")
	}
	if dir, rules, err = m.Resolve(nil); err != nil || dir != root || rules[0].To != "/b" {
		t.Fatalf("from the command line: %q %+v %v", dir, rules, err)
	}
	if m.Write = true; !m.NeedsInventory() {
		t.Error("--write checks paths on a client of the inventory")
	}
	empty, _ := inventory.Parse("i.yaml", []byte("hosts: {c1: {}}\n"))
	for _, c := range []struct {
		m    jobs.Migration
		inv  *inventory.Inventory
		want string
	}{
		{jobs.Migration{Dir: root}, empty, "nothing to rewrite"},
		{jobs.Migration{Dir: root, From: []string{"relative"}, To: []string{"/b"}}, nil, "relative"},
		{jobs.Migration{Dir: filepath.Join(root, "nope"), From: []string{"/a"}, To: []string{"/b"}}, nil, "not a directory"},
	} {
		_, _, err := c.m.Resolve(c.inv)
		if !errors.As(err, new(*exitcode.UsageError)) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: %v, want a usage error saying %q", c.m, err, c.want)
		}
	}
}

func TestMigrationPlan(t *testing.T) {
	inv, _ := migrationInv(t, "")
	m := &jobs.Migration{Write: true}
	dir, rules, err := m.Resolve(inv)
	if err != nil {
		t.Fatal(err)
	}
	files, err := jobs.Scan(dir, rules)
	if err != nil {
		t.Fatal(err)
	}
	changed, broken := jobs.Changed(files)
	if len(changed) != 1 || broken != 1 {
		t.Fatalf("%d changed, %d broken", len(changed), broken)
	}
	// Without a client to check the new paths on, writing is refused
	// before anything is shown, unless the broken file is shown first.
	if err := m.Refuse(inv, files); err != nil {
		t.Fatalf("a broken file is reported first: %v", err)
	}
	ok := files[:0:0]
	for _, f := range files {
		if f.Err == nil {
			ok = append(ok, f)
		}
	}
	if err := m.Refuse(inv, ok); !errors.As(err, new(*exitcode.UsageError)) || !errors.Is(err, jobs.ErrNoPathCheckClient) {
		t.Fatalf("no client: %v", err)
	}
	if _, err := m.Plan(inv, ok, nil, nil); !errors.As(err, new(*exitcode.UsageError)) {
		t.Fatalf("Plan without a client: %v", err)
	}
	m.AllowMissing = true
	rb, err := m.Plan(inv, ok, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	var titles []string
	for _, s := range rb.Steps {
		titles = append(titles, s.Title)
	}
	if len(titles) != 2 || !strings.Contains(titles[0], "not checked") || !strings.HasPrefix(titles[1], "write ") || rb.Retry == "" || rb.Kind != "migrate-jobs" {
		t.Fatalf("write plan %q, retry %q", titles, rb.Retry)
	}
	m.Submit = true
	nomadJobs := func(context.Context) (jobs.Nomad, error) { return nil, errors.New("not called") }
	if rb, err = m.Plan(inv, ok, nomadJobs, nil); err != nil {
		t.Fatal(err)
	}
	if last := rb.Steps[len(rb.Steps)-1].Title; len(rb.Steps) != 3 || last != "submit job web (web.hcl)" || !strings.Contains(rb.Name, "submit") {
		t.Fatalf("submit plan %q: %d steps, last %q", rb.Name, len(rb.Steps), last)
	}
}
