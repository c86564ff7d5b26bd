package lab

// Consul and Nomad are built from their source, fetched through the Go
// module proxy (the only route to them from these machines). Only their
// MPL-2.0 releases are used: Consul v1.14.11 (later ones need modules
// marked not-to-use) and Nomad v1.6.1 (1.6.2 and later carry BUSL files).
//
// `go install module@version` refuses modules with replace directives, and
// both point theirs at nested modules (./api, ./sdk, ...) that the proxy
// serves as modules of their own, outside the release's zip. So: download
// the release module, copy it somewhere writable, put each nested module
// where its replace line points, and build there.

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync/atomic"
	"time"
)

type goRelease struct {
	Name    string // the binary
	Module  string
	Version string
	Nested  []nestedModule
	CGO     bool
	Expect  string // what a build takes, said when it starts
}

type nestedModule struct {
	Dir     string // where the release's replace directive points
	Module  string
	Version string
}

var consulRelease = goRelease{
	Name: "consul", Module: "github.com/hashicorp/consul", Version: "v1.14.11",
	Nested: []nestedModule{
		{"api", "github.com/hashicorp/consul/api", "v1.18.1"},
		{"sdk", "github.com/hashicorp/consul/sdk", "v0.13.0"},
		{"proto-public", "github.com/hashicorp/consul/proto-public", "v0.2.1"},
	},
	Expect: "with the other binary, about 16 minutes on 2 idle cores from empty Go caches, 1h45m measured on a loaded shared machine",
}

var nomadRelease = goRelease{
	Name: "nomad", Module: "github.com/hashicorp/nomad", Version: "v1.6.1",
	// The v1.6.1 commit; the proxy refuses a bare hash.
	Nested: []nestedModule{{"api", "github.com/hashicorp/nomad/api", "v0.0.0-20230721134942-515895c7690c"}},
	// Nomad's client (its executor, cgroups) needs cgo.
	CGO:    true,
	Expect: "with the other binary, about 16 minutes on 2 idle cores from empty Go caches, 1h45m measured on a loaded shared machine",
}

// ensureGoBinary returns the cached binary of r, building it if missing or
// damaged.
func ensureGoBinary(ctx context.Context, cache string, r goRelease, progress io.Writer) (string, error) {
	bin := goBinaryPath(cache, r)
	dir := filepath.Dir(bin)
	if checkRecorded(bin, fileSHA256) {
		return bin, nil
	}
	start := time.Now()
	fmt.Fprintf(progress, "hoctl-lab cache: building %s %s from source into %s (once per machine; %s)\n", r.Name, r.Version, dir, r.Expect)
	work := filepath.Join(cache, "build-"+r.Name+"-"+r.Version)
	if err := os.RemoveAll(work); err != nil {
		return "", err
	}
	defer func() { _ = os.RemoveAll(work) }()
	src := filepath.Join(work, "src")
	modDir, err := downloadModule(ctx, r.Module, r.Version)
	if err != nil {
		return "", err
	}
	if err := copyWritable(ctx, modDir, src); err != nil {
		return "", err
	}
	for _, n := range r.Nested {
		d, err := downloadModule(ctx, n.Module, n.Version)
		if err != nil {
			return "", err
		}
		dst := filepath.Join(src, n.Dir)
		if err := os.RemoveAll(dst); err != nil {
			return "", err
		}
		if err := copyWritable(ctx, d, dst); err != nil {
			return "", err
		}
	}
	out := filepath.Join(work, r.Name)
	cgo := "0"
	if r.CGO {
		cgo = "1"
	}
	// nice: the machine is shared, and a test run waiting for this build
	// must not starve the others' tests.
	cmd := ToolCmd(ctx, "nice", "-n", "10", goPath(), "build", "-v", "-trimpath", "-o", out, ".")
	cmd.Dir = src
	cmd.Env = append(os.Environ(), "CGO_ENABLED="+cgo, "GOFLAGS=-mod=mod -buildvcs=false", "GOWORK=off", "GOTOOLCHAIN=local")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return "", err
	}
	cmd.Stdout = nil
	logPath := filepath.Join(cache, r.Name+"-build.log")
	logf, err := os.Create(logPath)
	if err != nil {
		return "", err
	}
	defer func() { _ = logf.Close() }()
	var pkgs atomic.Int64
	stop := ticker(progress, "building "+r.Name, 30*time.Second, func() string { return fmt.Sprintf("%d packages compiled", pkgs.Load()) })
	if err := cmd.Start(); err != nil {
		stop()
		return "", err
	}
	sc := bufio.NewScanner(stderr)
	for sc.Scan() {
		pkgs.Add(1)
		fmt.Fprintln(logf, sc.Text())
	}
	err = cmd.Wait()
	stop()
	if err != nil {
		return "", fmt.Errorf("go build failed (%w); its output is in %s", err, logPath)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	if err := os.Rename(out, bin); err != nil {
		return "", err
	}
	sum, err := record(bin, fileSHA256)
	if err != nil {
		return "", err
	}
	fmt.Fprintf(progress, "hoctl-lab cache: built %s %s in %s (sha256 %s)\n", r.Name, r.Version, time.Since(start).Round(time.Second), sum[:16])
	return bin, nil
}

// goBinaryPath is where the cache in dir keeps r's binary.
func goBinaryPath(cache string, r goRelease) string {
	return filepath.Join(cache, r.Name+"-"+r.Version, r.Name)
}

// downloadModule fetches module@version through the module proxy into the
// module cache (read-only there) and returns its directory.
func downloadModule(ctx context.Context, module, version string) (string, error) {
	cmd := ToolCmd(ctx, "go", "mod", "download", "-json", module+"@"+version)
	cmd.Env = append(os.Environ(), "GOWORK=off", "GOFLAGS=-mod=mod")
	out, err := cmd.Output()
	var m struct{ Dir, Error string }
	_ = json.Unmarshal(out, &m)
	if m.Error != "" {
		return "", fmt.Errorf("go mod download %s@%s: %s", module, version, m.Error)
	}
	if err != nil {
		return "", fmt.Errorf("go mod download %s@%s: %w", module, version, err)
	}
	if m.Dir == "" {
		return "", fmt.Errorf("go mod download %s@%s: no directory in %q", module, version, out)
	}
	return m.Dir, nil
}

// copyWritable copies a module cache tree (read-only files) to dst and
// makes the copy writable, so the build may add to it.
func copyWritable(ctx context.Context, src, dst string) error {
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	if out, err := ToolCmd(ctx, "cp", "-r", src, dst).CombinedOutput(); err != nil {
		return fmt.Errorf("copying %s: %w: %s", src, err, out)
	}
	if out, err := ToolCmd(ctx, "chmod", "-R", "u+w", dst).CombinedOutput(); err != nil {
		return fmt.Errorf("chmod %s: %w: %s", dst, err, out)
	}
	return nil
}

// goPath is the go the cache builds with (PATH's, else /usr/local/go's),
// for nice to run.
func goPath() string {
	t, _ := Tool("go")
	if p, err := t.Find(); err == nil {
		return p
	}
	return "go"
}
