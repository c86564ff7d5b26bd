package replicate

import (
	"context"
	"errors"
	"io"
	"strings"
	"sync"
	"testing"

	"github.com/hoctl/hoctl/pkg/inventory"
	"github.com/hoctl/hoctl/pkg/sshexec"
	"github.com/hoctl/hoctl/pkg/tasks"
)

// dirFiles answers the dir primitive's lock and direction ops with each
// host's direction file.
type dirFiles struct {
	mu      sync.Mutex
	file    map[string]string
	written []string
}

type dirFilesRunner struct {
	f    *dirFiles
	host string
}

func (r dirFilesRunner) Name() string { return r.host }
func (r dirFilesRunner) Run(_ context.Context, c sshexec.Cmd) (*sshexec.Result, error) {
	r.f.mu.Lock()
	defer r.f.mu.Unlock()
	switch {
	case strings.Contains(c.Script, "hoctl-dir lock services"):
		_, _ = io.WriteString(c.Stdout, "locked "+r.f.file[r.host]+"\n")
		r.f.mu.Unlock()
		_, _ = io.Copy(io.Discard, c.Stdin)
		r.f.mu.Lock()
	case strings.Contains(c.Script, "hoctl-dir direction services "):
		_, after, _ := strings.Cut(c.Script, "hoctl-dir direction services ")
		src := strings.Trim(strings.Fields(after)[0], "'")
		r.f.file[r.host] = src
		r.f.written = append(r.f.written, r.host+"="+src)
	}
	return &sshexec.Result{Host: r.host}, nil
}

type recordKV map[string]string

func (k recordKV) Get(_ context.Context, key string) (string, uint64, bool, error) {
	v, ok := k[key]
	return v, 1, ok, nil
}

// After `failover --to c1 --primary-down` zippy's direction file still
// names zippy (zippy was down: the failover could not write it), c1's
// names c1, and Consul records c1. Replicating c1 → zippy, as Consul's
// record says, was refused with "run hoctl replicate zippy c1", which
// Consul's record refuses in turn: opposite advice, and the timer stayed
// refused until someone edited the file. With Consul's record naming
// the run's source, the stale file is rewritten under the lock; without
// that record, the file still refuses.
func TestStaleDirectionFileRewrittenWhenConsulRecordsTheSource(t *testing.T) {
	inv, err := inventory.Parse("i.yaml", []byte(`hosts: {zippy: {address: zippy.test}, c1: {address: c1.test}}
replication:
  services:
    source: {host: zippy, subvolume: /persist/services}
    target: {host: c1, dir: /persist/services-standby}
`))
	if err != nil {
		t.Fatal(err)
	}
	ends := EndsOf(inv.Replication["services"]).Reverse() // c1 → zippy
	for _, c := range []struct {
		name    string
		kv      func(context.Context) (KV, error)
		refused bool
	}{
		{"Consul records c1", func(context.Context) (KV, error) { return recordKV{DirectionKey("services"): "c1"}, nil }, false},
		{"no Consul", nil, true},
		{"Consul has no record", func(context.Context) (KV, error) { return recordKV{}, nil }, true},
		{"Consul records zippy", func(context.Context) (KV, error) { return recordKV{DirectionKey("services"): "zippy"}, nil }, true},
		{"Consul unreachable", func(context.Context) (KV, error) { return nil, errors.New("connection refused") }, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			f := &dirFiles{file: map[string]string{"c1": "c1", "zippy": "zippy"}}
			env := &tasks.Env{Inventory: inv, Connect: func(_ context.Context, h *inventory.Host) (sshexec.Runner, error) {
				return dirFilesRunner{f: f, host: h.Name}, nil
			}}
			_, r := Runbook(inv, ends, Options{Holder: "test", Recorded: c.kv})
			err := r.lockHosts(context.Background(), env)
			r.Release()
			var de *DirectionError
			if c.refused {
				if !errors.As(err, &de) || len(f.written) != 0 {
					t.Fatalf("want the direction refusal and nothing written: %v, written %v", err, f.written)
				}
				return
			}
			if err != nil {
				t.Fatalf("refused: %v", err)
			}
			if strings.Join(f.written, ",") != "zippy=c1" {
				t.Fatalf("written %v, want zippy's file rewritten to c1", f.written)
			}
			if !strings.Contains(r.choiceAndWarning(), "rewrote the stale direction file zippy:") {
				t.Errorf("the run does not say it rewrote the file: %s", r.choiceAndWarning())
			}
		})
	}
}
