package lab

// The real cluster's parts are built once per machine and kept outside the
// repository, in ${XDG_CACHE_HOME:-~/.cache}/hoctl-lab, one directory per
// part and version:
//
//	consul-v1.14.11/consul, consul.sha256
//	nomad-v1.6.1/nomad, nomad.sha256
//	rootfs-bookworm-<recipe hash>/tree, tree.sha256
//
// A part is used only when its recorded sha256 matches what is on disk, so
// a half-written or damaged cache is rebuilt, never booted. Builds print
// progress to the given writer: a cold cache costs minutes (see
// docs/lab.md), and a silent test run that long looks hung.

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/hoctl/hoctl/pkg/iostreams"
)

// Parts are the paths of the cached real-cluster parts.
type Parts struct {
	Consul string // the consul binary
	Nomad  string // the nomad binary
	Rootfs string // the Debian rootfs tree every machine overlays
}

// CacheDir is where the parts are cached: $HOCTL_LAB_CACHE if set, else
// ${XDG_CACHE_HOME:-~/.cache}/hoctl-lab.
func CacheDir() (string, error) {
	if d := os.Getenv("HOCTL_LAB_CACHE"); d != "" {
		return d, nil
	}
	if d := os.Getenv("XDG_CACHE_HOME"); d != "" {
		return filepath.Join(d, "hoctl-lab"), nil
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "", fmt.Errorf("no cache directory: %w", err)
	}
	return filepath.Join(home, ".cache", "hoctl-lab"), nil
}

// EnsureCache returns the cached parts in dir, building what is missing or
// fails its sha256 check. Builds run at once (they use different
// resources: the Go compiler and the Debian mirror) and report progress
// to progress.
func EnsureCache(ctx context.Context, dir string, progress io.Writer) (*Parts, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	p := &Parts{}
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
	)
	pw := iostreams.SyncWriter(progress)
	run := func(name string, dst *string, f func() (string, error)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// A part already built is used without its lock: the cache
			// may be read-only (make fresh-check binds it so).
			if path, ok := cached(dir, name); ok {
				mu.Lock()
				*dst = path
				mu.Unlock()
				return
			}
			unlock, err := lockPart(ctx, dir, name, pw)
			if err != nil {
				mu.Lock()
				errs = append(errs, fmt.Errorf("%s: %w", name, err))
				mu.Unlock()
				return
			}
			defer unlock()
			path, err := f()
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", name, err))
				return
			}
			*dst = path
		}()
	}
	run("consul", &p.Consul, func() (string, error) { return ensureGoBinary(ctx, dir, consulRelease, pw) })
	run("nomad", &p.Nomad, func() (string, error) { return ensureGoBinary(ctx, dir, nomadRelease, pw) })
	run("rootfs", &p.Rootfs, func() (string, error) { return ensureRootfs(ctx, dir, pw) })
	wg.Wait()
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return p, nil
}

// cached is the path of a part of the cache in dir when it is built and
// passes its sha256 check.
func cached(dir, part string) (string, bool) {
	var path string
	var sum func(string) (string, error)
	switch part {
	case "consul":
		path, sum = goBinaryPath(dir, consulRelease), fileSHA256
	case "nomad":
		path, sum = goBinaryPath(dir, nomadRelease), fileSHA256
	case "rootfs":
		path, sum = rootfsTree(dir), treeSHA256
	default:
		return "", false
	}
	return path, checkRecorded(path, sum)
}

// lockPart keeps two test runs from building the same part at once: the
// second waits for the first and then finds the part built.
func lockPart(ctx context.Context, dir, part string, progress io.Writer) (func(), error) {
	lock := filepath.Join(dir, ".lock-"+part)
	said := false
	for {
		f, err := os.OpenFile(lock, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
		if err == nil {
			fmt.Fprintf(f, "%d\n", os.Getpid())
			_ = f.Close()
			return func() { _ = os.Remove(lock) }, nil
		}
		if !os.IsExist(err) {
			return nil, err
		}
		// A lock left by a process that died (a killed test run) is stale.
		data, _ := os.ReadFile(lock)
		var pid int
		if _, perr := fmt.Sscanf(string(data), "%d", &pid); perr == nil && pid > 0 {
			if _, err := os.Stat(fmt.Sprintf("/proc/%d", pid)); os.IsNotExist(err) {
				_ = os.Remove(lock)
				continue
			}
		}
		if !said {
			fmt.Fprintf(progress, "hoctl-lab cache: waiting for pid %d, which is building %s in %s\n", pid, part, dir)
			said = true
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(time.Second):
		}
	}
}

// fileSHA256 is the hex sha256 of a file's content.
func fileSHA256(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer func() { _ = f.Close() }()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// checkRecorded reports whether path's sha256 (computed by sum) is the one
// recorded in path+".sha256".
func checkRecorded(path string, sum func(string) (string, error)) bool {
	want, err := os.ReadFile(path + ".sha256")
	if err != nil {
		return false
	}
	got, err := sum(path)
	return err == nil && got == strings.TrimSpace(string(want))
}

func record(path string, sum func(string) (string, error)) (string, error) {
	got, err := sum(path)
	if err != nil {
		return "", err
	}
	return got, os.WriteFile(path+".sha256", []byte(got+"\n"), 0o644)
}

// ticker prints "what: still running (elapsed)" every interval until stop.
func ticker(w io.Writer, what string, interval time.Duration, extra func() string) (stop func()) {
	done := make(chan struct{})
	start := time.Now()
	go func() {
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				msg := fmt.Sprintf("hoctl-lab cache: %s: still running, %s", what, time.Since(start).Round(time.Second))
				if extra != nil {
					if e := extra(); e != "" {
						msg += ", " + e
					}
				}
				fmt.Fprintln(w, msg)
			}
		}
	}()
	return func() { close(done) }
}
