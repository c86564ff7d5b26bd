package main

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hoctl/hoctl/internal/lab"
)

// On a machine without nix-bin, hoctl-lab cache (what make demo, make
// lab-cache and make test run first) exits 2 before building anything,
// naming the missing programs, their package and the command installing
// it.
func TestPreflightBeforeTheCache(t *testing.T) {
	dir := t.TempDir()
	bin := filepath.Join(dir, "hoctl-lab")
	build := lab.ToolCmd(context.Background(), "go", "build", "-o", bin, ".")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	path := filepath.Join(dir, "path")
	if err := os.Mkdir(path, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, tool := range lab.HostTools() {
		if tool.From == lab.FromBuild || tool.Path != "" || strings.HasPrefix(tool.Name, "nix") {
			continue
		}
		p, err := tool.Find()
		if err != nil {
			if os.Getenv("CI") == "true" {
				t.Fatalf("%s: %v", tool.Name, err)
			}
			t.Skipf("%s is not on this machine: %v", tool.Name, err)
		}
		if err := os.Symlink(p, filepath.Join(path, tool.Name)); err != nil {
			t.Fatal(err)
		}
	}
	// An empty cache directory: were the preflight not first, this would
	// start building the rootfs, Consul and Nomad.
	cache := filepath.Join(dir, "cache")
	for _, args := range [][]string{{"cache"}, {"preflight"}, {"-machines", "-dir", filepath.Join(dir, "lab"), "up"}} {
		cmd := lab.ToolCmd(context.Background(), bin, args...)
		cmd.Env = append(os.Environ(), "PATH="+path, "HOCTL_LAB_CACHE="+cache)
		out, err := cmd.CombinedOutput()
		var exit *exec.ExitError
		if !errors.As(err, &exit) || exit.ExitCode() != 2 {
			t.Fatalf("hoctl-lab %s without Nix: %v, want exit 2\n%s", strings.Join(args, " "), err, out)
		}
		for _, want := range []string{"nix-instantiate (nix-bin)", "nix-store (nix-bin)", "apt-get install -y nix-bin\n"} {
			if !strings.Contains(string(out), want) {
				t.Errorf("hoctl-lab %s: no %q in:\n%s", strings.Join(args, " "), want, out)
			}
		}
		if _, err := os.Stat(cache); !os.IsNotExist(err) {
			t.Fatalf("hoctl-lab %s touched the cache before its preflight: %v", strings.Join(args, " "), err)
		}
	}
}
