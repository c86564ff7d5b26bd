package deploy

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hoctl/hoctl/pkg/exitcode"
	"github.com/hoctl/hoctl/pkg/inventory"
	"github.com/hoctl/hoctl/pkg/yamlerr"
)

func TestTargets(t *testing.T) {
	inv, err := inventory.Parse("i.yaml", []byte(`hosts:
  zippy: {}
  c1: {}
  c2: {}
  fractal: {managed: false}
groups: {cattle: [c1, c2]}
`))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		exprs []string
		limit string
		want  string // names, or the error
	}{
		{nil, "", "zippy c1 c2"},
		{[]string{"c2", "cattle", "fractal"}, "", "c2 c1 fractal"},
		{nil, "cattle,!c1", "c2"},
		{[]string{"zippy"}, "cattle", `usage: --limit "cattle" leaves no target: it selects none of zippy`},
		{nil, "c9", "--limit: "},
		{[]string{"c9"}, "", `target "c9": no host`},
	} {
		hosts, err := Targets(inv, c.exprs, c.limit)
		var got string
		switch {
		case errors.As(err, new(*exitcode.UsageError)):
			got = "usage: " + err.Error()
		case err != nil:
			got = err.Error()
		default:
			got = strings.Join(nameList(hosts), " ")
		}
		if err == nil && got != c.want || err != nil && !strings.HasPrefix(got, c.want) {
			t.Errorf("Targets(%q, %q) = %q, want %q", c.exprs, c.limit, got, c.want)
		}
	}
}

func TestCheckCommandNamesTheHostAndLine(t *testing.T) {
	p := filepath.Join(t.TempDir(), "inv.yaml")
	src := "hosts:\n  a: {}\n  b: {}\n  off: {managed: false}\ndeploy: {command: 'deploy .#{{.Host}}{{.HostInfo.Nope}}'}\n"
	if err := os.WriteFile(p, []byte(src), 0o600); err != nil {
		t.Fatal(err)
	}
	inv, err := inventory.Load(context.Background(), p)
	if err != nil {
		t.Fatal(err)
	}
	err = CheckCommand(context.Background(), inv)
	var ye *yamlerr.Error
	if !errors.As(err, &ye) || ye.Line != 5 || !strings.Contains(err.Error(), ".HostInfo has no field Nope; did you mean .HostInfo.Name?") || !strings.Contains(err.Error(), "(for host a)") {
		t.Fatalf("CheckCommand: %v (%+v)", err, ye)
	}
	ok, err := inventory.Parse("i.yaml", []byte("hosts:\n  a: {}\n  off: {managed: false}\ndeploy: {command: 'deploy .#{{.Host}}'}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if err := CheckCommand(context.Background(), ok); err != nil {
		t.Fatalf("a command every host renders: %v", err)
	}
}

// deploy.command sees each host's inventory vars; a host without the
// var is named, with the line.
func TestCheckCommandRendersInventoryVars(t *testing.T) {
	p := filepath.Join(t.TempDir(), "inv.yaml")
	src := "hosts:\n  a: {vars: {flake: site}}\n  b: {}\ndeploy: {command: 'deploy {{.Vars.flake}}#{{.Host}}'}\n"
	if err := os.WriteFile(p, []byte(src), 0o600); err != nil {
		t.Fatal(err)
	}
	inv, err := inventory.Load(context.Background(), p)
	if err != nil {
		t.Fatal(err)
	}
	err = CheckCommand(context.Background(), inv)
	var ye *yamlerr.Error
	if !errors.As(err, &ye) || ye.Line != 4 || !strings.Contains(err.Error(), "undefined variable flake (for host b)") {
		t.Fatalf("CheckCommand: %v (%+v)", err, ye)
	}
	ok, err := inventory.Parse("i.yaml", []byte("vars: {flake: .}\nhosts:\n  a: {vars: {flake: site}}\n  b: {}\ndeploy: {command: 'deploy {{.Vars.flake}}#{{.Host}}'}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if err := CheckCommand(context.Background(), ok); err != nil {
		t.Fatalf("every host has flake: %v", err)
	}
}
