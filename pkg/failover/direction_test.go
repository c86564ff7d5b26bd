package failover

import (
	"context"
	"errors"
	"io"
	"strings"
	"sync"
	"testing"

	"github.com/hoctl/hoctl/pkg/exitcode"
	"github.com/hoctl/hoctl/pkg/inventory"
	"github.com/hoctl/hoctl/pkg/replicate"
	"github.com/hoctl/hoctl/pkg/sshexec"
	"github.com/hoctl/hoctl/pkg/tasks"
)

// kvConsul is Consul with its keys; c1 serves.
type kvConsul struct {
	mu sync.Mutex
	kv map[string]string
}

func (c *kvConsul) Leader(context.Context) (string, error)            { return "c2", nil }
func (c *kvConsul) Passing(context.Context, string) ([]string, error) { return []string{"c1"}, nil }
func (c *kvConsul) Get(_ context.Context, k string) (string, uint64, bool, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	v, ok := c.kv[k]
	return v, 1, ok, nil
}
func (c *kvConsul) CAS(_ context.Context, k, v string, _ uint64) (bool, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.kv[k] = v
	return true, nil
}

// dirHosts answers the dir primitive's lock and direction ops with each
// host's direction file, and records what is written there.
type dirHosts struct {
	mu        sync.Mutex
	direction map[string]string // host → its direction file's text
	written   []string
}

type dirRunner struct {
	h    *dirHosts
	host string
}

func (r dirRunner) Name() string { return r.host }
func (r dirRunner) Run(ctx context.Context, c sshexec.Cmd) (*sshexec.Result, error) {
	res := &sshexec.Result{Host: r.host}
	switch {
	case strings.Contains(c.Script, "hoctl-dir lock services"):
		r.h.mu.Lock()
		d := r.h.direction[r.host]
		r.h.mu.Unlock()
		_, _ = io.WriteString(c.Stdout, "locked "+d+"\n")
		_, _ = io.Copy(io.Discard, c.Stdin)
	case strings.Contains(c.Script, "hoctl-dir direction services "):
		_, after, _ := strings.Cut(c.Script, "hoctl-dir direction services ")
		src := strings.Trim(strings.Fields(after)[0], "'")
		r.h.mu.Lock()
		r.h.direction[r.host] = src
		r.h.written = append(r.h.written, r.host+"="+src)
		r.h.mu.Unlock()
	case strings.Contains(c.Script, "hoctl-dir list"):
		res.ExitCode = 1
		return res, &sshexec.ExitError{Host: r.host, Code: 1}
	case len(c.Argv) > 0 && c.Argv[0] == "findmnt":
		res.Stdout = []byte("rw,nosuid,nodev,relatime\n")
	}
	return res, nil
}

const directionInv = `hosts: {zippy: {address: zippy.test}, c1: {address: c1.test}}
consul: {address: "http://127.0.0.1:8500"}
replication:
  services:
    source: {host: zippy, subvolume: /persist/services}
    target: {host: c1, dir: /persist/services-standby}
nfs:
  data-services: {export: /data/services, subvolume: /persist/services, replication: services, primary: zippy, standbys: [c1]}
`

// failback builds the planned failover c1 → zippy after a --primary-down
// failover zippy → c1 that could not write zippy's direction file (zippy
// was down): Consul records what it is given, zippy's file says
// zippyFile.
func failback(t *testing.T, recorded, zippyFile string) (*tasks.Runbook, *tasks.Env, *dirHosts) {
	t.Helper()
	inv := parseInv(t, directionInv)
	kv := map[string]string{"hoctl/nfs/data-services/owner": "c1"}
	if recorded != "" {
		kv[replicate.DirectionKey("services")] = recorded
	}
	c := &kvConsul{kv: kv}
	rb, _, err := Runbook(context.Background(), inv, func(context.Context) (Consul, error) { return c, nil }, Options{Service: "data-services", To: "zippy"})
	if err != nil {
		t.Fatal(err)
	}
	h := &dirHosts{direction: map[string]string{"c1": "c1", "zippy": zippyFile}}
	env := &tasks.Env{Inventory: inv, Connect: func(_ context.Context, host *inventory.Host) (sshexec.Runner, error) {
		return dirRunner{h: h, host: host.Name}, nil
	}}
	return rb, env, h
}

func runFunc(t *testing.T, c tasks.Op, env *tasks.Env) (string, error) {
	t.Helper()
	f, ok := c.(*tasks.Func)
	if !ok {
		t.Fatalf("%T is not a Func", c)
	}
	return f.Fn(context.Background(), env, nil)
}

// A direction file on the old primary that a --primary-down failover
// could not update (its host was down) names the old direction; failing
// back then fenced c1, moved the owner key and was refused by the final
// sync (exit 3, "nothing changed"): nothing served. The assessment finds
// it stale (Consul's record names c1, the owner) and its action, before
// the fence, rewrites it; the final sync then goes through.
func TestFailbackRepairsAStaleDirectionFileBeforeTheFence(t *testing.T) {
	rb, env, h := failback(t, "c1", "zippy")
	assess := stepTitled(t, rb, "assess:")
	out, err := runFunc(t, assess.Before, env)
	if err != nil {
		t.Fatalf("assessment: %v", err)
	}
	if !strings.Contains(out, "stale direction file") || !strings.Contains(out, "zippy") {
		t.Errorf("the assessment does not name the stale file: %s", out)
	}
	if len(h.written) != 0 {
		t.Fatalf("the before check wrote %v", h.written)
	}
	if _, err := runFunc(t, assess.Action, env); err != nil {
		t.Fatal(err)
	}
	if strings.Join(h.written, ",") != "zippy=c1" {
		t.Fatalf("direction files written: %v, want zippy's rewritten to c1", h.written)
	}
	// The final sync's lock and inspection now pass the direction guard.
	if _, err := runFunc(t, stepTitled(t, rb, "final sync: inspect").Action, env); err != nil {
		var de *replicate.DirectionError
		if errors.As(err, &de) {
			t.Fatalf("the final sync is still refused: %v", err)
		}
	}
}

// Without Consul's record naming the owner, a direction file against the
// failover is not known to be stale: the assessment refuses, before the
// fence, and says what to do.
func TestFailbackRefusesAnUnexplainedDirectionBeforeTheFence(t *testing.T) {
	for _, recorded := range []string{"", "zippy"} {
		rb, env, h := failback(t, recorded, "zippy")
		_, err := runFunc(t, stepTitled(t, rb, "assess:").Before, env)
		if err == nil || !strings.Contains(err.Error(), "would be refused after the fence") {
			t.Fatalf("Consul record %q: the assessment passed: %v", recorded, err)
		}
		if len(h.written) != 0 {
			t.Fatalf("written: %v", h.written)
		}
	}
}

// The final sync's inspection, which reads the direction files under
// the host locks, runs before the fence: a direction file against it that
// no Consul record explains refuses the run there, exit 3, with nothing
// changed. The steps after the fence turn a refusal of their action into
// exit 1 (changed), pointing at resume.
func TestFinalSyncRefusalBeforeTheFenceIsExit3(t *testing.T) {
	rb, env, _ := failback(t, "", "zippy")
	var inspect, fence int
	for i, s := range rb.Steps {
		switch {
		case strings.HasPrefix(s.Title, "final sync: inspect"):
			inspect = i
		case strings.HasPrefix(s.Title, "fence "):
			fence = i
		}
	}
	if inspect >= fence {
		t.Fatalf("the final sync's inspection is step %d, the fence %d", inspect+1, fence+1)
	}
	_, err := runFunc(t, stepTitled(t, rb, "final sync: inspect").Action, env)
	if err == nil {
		t.Fatal("the final sync took a direction file against it")
	}
	if c := exitcode.Of(err); c != exitcode.Refused {
		t.Fatalf("exit %d before the fence: %v", c, err)
	}
	refused := &replicate.DirectionError{Name: "services"}
	after := afterFence(func(context.Context, *tasks.Env, *inventory.Host) (string, error) { return "", refused })
	if _, err := after(context.Background(), env, nil); exitcode.Of(err) != exitcode.Failed || !strings.Contains(err.Error(), "hoctl resume") {
		t.Fatalf("a refusal after the fence: exit %d: %v", exitcode.Of(err), err)
	}
}

// A failback that an older hoctl fenced and then stopped on the stale
// file is resumed at the final sync, without the assessment: the final
// sync itself, reading Consul's record, rewrites the file and goes on.
func TestResumedFinalSyncRewritesAStaleDirectionFile(t *testing.T) {
	rb, env, h := failback(t, "c1", "zippy")
	_, err := runFunc(t, stepTitled(t, rb, "final sync: inspect").Action, env)
	var de *replicate.DirectionError
	if errors.As(err, &de) {
		t.Fatalf("the final sync is refused by the stale file: %v", err)
	}
	if strings.Join(h.written, ",") != "zippy=c1" {
		t.Fatalf("direction files written: %v, want zippy's rewritten to c1", h.written)
	}
}
