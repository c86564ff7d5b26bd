package main

import (
	"bufio"
	"context"
	_ "embed"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hoctl/hoctl/internal/lab"
)

// The failover's other clients, beside the reader of lab.go: one that
// opens (creates) a new file every 100 ms, and one that holds a file
// open and writes through the failover. An NFSv4 server in its grace
// period refuses opens (NFS4ERR_GRACE) that are not reclaims, so these
// see the grace where a client reading a file it already has open
// would not.

//go:embed nfswriter/nfswriter.c
var nfsWriterSource []byte

// buildNFSWriter compiles bench/nfswriter against this machine's libnfs
// (libnfs13, which libnfs-utils brings; no headers needed).
func buildNFSWriter(ctx context.Context, dir string) (string, error) {
	src := filepath.Join(dir, "nfswriter.c")
	bin := filepath.Join(dir, "nfswriter")
	if err := os.WriteFile(src, nfsWriterSource, 0o644); err != nil {
		return "", err
	}
	lib := "/usr/lib/x86_64-linux-gnu/libnfs.so.13"
	if m, _ := filepath.Glob("/usr/lib/*/libnfs.so.13"); len(m) > 0 {
		lib = m[0]
	}
	if out, err := lab.ToolCmd(ctx, "gcc", "-O2", "-Wall", "-o", bin, src, lib).CombinedOutput(); err != nil {
		return "", fmt.Errorf("building nfswriter: %w\n%s", err, out)
	}
	return bin, nil
}

// successes is one client's log: when each of its operations succeeded.
type successes struct {
	mu      sync.Mutex
	oks     []time.Time
	fails   int
	lastErr string // the last failure's message, for a bench that fails
}

func (s *successes) ok(at time.Time) { s.mu.Lock(); s.oks = append(s.oks, at); s.mu.Unlock() }
func (s *successes) fail(why string) { s.mu.Lock(); s.fails++; s.lastErr = why; s.mu.Unlock() }

// last is the last failure's message.
func (s *successes) last() string { s.mu.Lock(); defer s.mu.Unlock(); return s.lastErr }

// okAfter says whether an operation succeeded after t.
func (s *successes) okAfter(t time.Time) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.oks) > 0 && s.oks[len(s.oks)-1].After(t)
}

// window is the longest gap between two successive successes.
func (s *successes) window() time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	var w time.Duration
	for i := 1; i < len(s.oks); i++ {
		if d := s.oks[i].Sub(s.oks[i-1]); d > w {
			w = d
		}
	}
	return w
}

// gap is the longest gap between two successive successes: the last
// success before it and the first after.
func (s *successes) gap() (from, to time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var w time.Duration
	for i := 1; i < len(s.oks); i++ {
		if d := s.oks[i].Sub(s.oks[i-1]); d > w {
			w, from, to = d, s.oks[i-1], s.oks[i]
		}
	}
	return from, to
}

// runStickyReader reads file every 100 ms from the host it last read it
// from, a fresh nfs-cat each time, and asks the owner key for the host
// only when a read fails: a client that keeps its mount until it fails,
// then remounts at once (the reader of lab.go follows the owner key,
// which moves before the old primary stops).
func runStickyReader(ctx context.Context, wg *sync.WaitGroup, l *lab.Lab, consul, file, want string) *successes {
	s := &successes{}
	wg.Add(1)
	go func() {
		defer wg.Done()
		addr := ""
		for ctx.Err() == nil {
			at := time.Now()
			var err error
			if addr == "" {
				addr, err = ownerAddr(ctx, l, consul)
			}
			if err == nil {
				cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
				var out []byte
				out, err = lab.ToolCmd(cctx, "nfs-cat", fmt.Sprintf("nfs://%s%s/%s?version=4", addr, lab.NFSExport, file)).Output()
				cancel()
				if err == nil && string(out) != want {
					err = fmt.Errorf("read %q", out)
				}
			}
			switch {
			case err == nil:
				s.ok(at)
			case ctx.Err() == nil:
				s.fail(err.Error())
				addr = ""
			}
			select {
			case <-ctx.Done():
			case <-time.After(time.Until(at.Add(100 * time.Millisecond))):
			}
		}
	}()
	return s
}

// ownerAddr is the address of the host the owner key names now.
func ownerAddr(ctx context.Context, l *lab.Lab, consul string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, consul+"/v1/kv/"+lab.NFSOwnerKey+"?raw", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", err
	}
	defer func() { _ = resp.Body.Close() }()
	owner, _ := io.ReadAll(io.LimitReader(resp.Body, 256))
	h := l.Host(string(owner))
	if resp.StatusCode != http.StatusOK || h == nil {
		return "", fmt.Errorf("owner key: %s %q", resp.Status, owner)
	}
	return h.Addr, nil
}

// runOpener creates a new file in the export every 100 ms (nfs-cp of a
// small local file: an OPEN with CREATE), each time on the host the
// owner key names, until ctx ends.
func runOpener(ctx context.Context, wg *sync.WaitGroup, l *lab.Lab, consul, local, tag string) *successes {
	s := &successes{}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; ctx.Err() == nil; i++ {
			at := time.Now()
			addr, err := ownerAddr(ctx, l, consul)
			var out []byte
			if err == nil {
				cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
				out, err = lab.ToolCmd(cctx, "nfs-cp", local, fmt.Sprintf("nfs://%s%s/%s-%d?version=4", addr, lab.NFSExport, tag, i)).CombinedOutput()
				cancel()
			}
			if err == nil {
				s.ok(at)
			} else if ctx.Err() == nil {
				s.fail(fmt.Sprintf("%v: %s", err, strings.TrimSpace(string(out))))
			}
			select {
			case <-ctx.Done():
			case <-time.After(time.Until(at.Add(100 * time.Millisecond))):
			}
		}
	}()
	return s
}

// writer is the client that holds a file open and writes through the
// failover: each "ack N" of nfswriter is record N committed on the
// server; when it fails, it starts again on the owner key's host with
// the next record.
type writer struct {
	successes
	next  int64
	acked []int64
}

func runWriter(ctx context.Context, wg *sync.WaitGroup, l *lab.Lab, consul, bin, file string, first int64) *writer {
	w := &writer{next: first}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for ctx.Err() == nil {
			started := time.Now()
			why := ""
			if addr, err := ownerAddr(ctx, l, consul); err == nil {
				why = w.session(ctx, bin, addr, file)
			} else {
				why = err.Error()
			}
			if ctx.Err() == nil {
				w.fail(why)
			}
			select {
			case <-ctx.Done():
			case <-time.After(time.Until(started.Add(100 * time.Millisecond))):
			}
		}
	}()
	return w
}

// session is one nfswriter process, from its mount to its first error,
// which it returns.
func (w *writer) session(ctx context.Context, bin, addr, file string) string {
	w.mu.Lock()
	next := w.next
	w.mu.Unlock()
	cmd := lab.ToolCmd(ctx, bin, addr, lab.NFSExport, "/"+file, strconv.FormatInt(next, 10))
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return err.Error()
	}
	if err := cmd.Start(); err != nil {
		return err.Error()
	}
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		n, ok := strings.CutPrefix(sc.Text(), "ack ")
		if !ok {
			continue
		}
		seq, err := strconv.ParseInt(n, 10, 64)
		if err != nil {
			continue
		}
		at := time.Now()
		w.mu.Lock()
		w.oks = append(w.oks, at)
		w.acked = append(w.acked, seq)
		w.next = seq + 1
		w.mu.Unlock()
	}
	err = cmd.Wait()
	return fmt.Sprintf("%v: %s", err, strings.TrimSpace(stderr.String()))
}

// lost is the acknowledged records missing from the file as the owner
// key's host serves it now.
func (w *writer) lost(ctx context.Context, l *lab.Lab, consul, file string) (int, error) {
	addr, err := ownerAddr(ctx, l, consul)
	if err != nil {
		return 0, err
	}
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	data, err := lab.ToolCmd(cctx, "nfs-cat", fmt.Sprintf("nfs://%s%s/%s?version=4", addr, lab.NFSExport, file)).Output()
	if err != nil {
		return 0, fmt.Errorf("reading %s back: %w", file, err)
	}
	have := map[int64]bool{}
	for _, line := range strings.Split(string(data), "\n") {
		if n, err := strconv.ParseInt(line, 10, 64); err == nil {
			have[n] = true
		}
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	missing := 0
	for _, n := range w.acked {
		if !have[n] {
			missing++
		}
	}
	return missing, nil
}
