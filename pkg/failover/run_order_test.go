package failover

import (
	"context"
	"encoding/json"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hoctl/hoctl/pkg/exitcode"
	"github.com/hoctl/hoctl/pkg/inventory"
	"github.com/hoctl/hoctl/pkg/iostreams"
	"github.com/hoctl/hoctl/pkg/replicate"
	"github.com/hoctl/hoctl/pkg/sshexec"
	"github.com/hoctl/hoctl/pkg/sshexec/sshexectest"
	"github.com/hoctl/hoctl/pkg/tasks"
)

// cluster is the failover's world in a test: Consul's keys and which
// hosts serve NFS (passing in Consul while their unit is active), and the
// hosts (sshexectest) answering the failover's commands from that state.
// timeline is what changed, in order.
type cluster struct {
	mu       sync.Mutex
	kv       map[string]string
	index    map[string]uint64
	active   map[string]bool
	timeline []string
	// suidMount: hosts whose /persist is mounted without nosuid,nodev.
	suidMount map[string]bool
}

func (c *cluster) mountOptions(host string) string {
	if c.suidMount[host] {
		return "rw,relatime\n"
	}
	return "rw,nosuid,nodev,relatime\n"
}

func (c *cluster) log(ev string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.timeline = append(c.timeline, ev)
}

func (c *cluster) Leader(context.Context) (string, error) { return "c2", nil }

func (c *cluster) Passing(context.Context, string) ([]string, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []string
	for h, on := range c.active {
		if on {
			out = append(out, h)
		}
	}
	slices.Sort(out)
	return out, nil
}

func (c *cluster) Get(_ context.Context, key string) (string, uint64, bool, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	v, ok := c.kv[key]
	return v, c.index[key], ok, nil
}

func (c *cluster) CAS(_ context.Context, key, value string, index uint64) (bool, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.index[key] != index {
		return false, nil
	}
	c.kv[key], c.index[key] = value, index+1
	c.timeline = append(c.timeline, "consul "+key+"="+value)
	return true, nil
}

// copyListing is c1's replication dir: one complete received copy.
func copyListing(t *testing.T) string {
	b, err := json.Marshal(replicate.Entry{Name: "services@20261126T090000Z", Kind: replicate.KindSubvolume, ID: 260,
		UUID: "bbbb", ReceivedUUID: "aaaa", ReadOnly: true, Created: time.Date(2026, 11, 26, 9, 0, 0, 0, time.UTC)})
	if err != nil {
		t.Fatal(err)
	}
	return string(b) + "\n"
}

func (c *cluster) answer(t *testing.T) func(host string, cmd sshexec.Cmd) sshexectest.Reply {
	listing := copyListing(t)
	return func(host string, cmd sshexec.Cmd) sshexectest.Reply {
		line := cmd.Line()
		isActive := func() sshexectest.Reply {
			c.mu.Lock()
			defer c.mu.Unlock()
			if c.active[host] {
				return sshexectest.Reply{}
			}
			return sshexectest.Reply{Code: 3}
		}
		switch {
		case strings.Contains(line, "hoctl-dir list services"):
			return sshexectest.Reply{Stdout: listing}
		case strings.Contains(line, "hoctl-dir lock services"):
			// The assessment reads the direction files under the
			// replication's host locks; they name the source, zippy.
			return sshexectest.Reply{Stdout: "locked zippy\n"}
		case line == "exportfs -v":
			return sshexectest.Reply{}
		case strings.HasPrefix(line, "findmnt -n -o OPTIONS --target /persist"):
			return sshexectest.Reply{Stdout: c.mountOptions(host)}
		case strings.Contains(line, "50-hoctl-fence.conf") && strings.Contains(line, "systemctl stop"):
			c.mu.Lock()
			c.active[host] = false
			c.mu.Unlock()
			c.log(host + " fence")
		case strings.HasPrefix(line, "rm -f ") && strings.Contains(line, "50-hoctl-fence.conf") && !strings.Contains(line, "systemctl start"):
			c.log(host + " disarm")
		case strings.Contains(line, "AssertPathExists=!") && !strings.Contains(line, "systemctl stop"):
			c.log(host + " arm")
		case strings.Contains(line, " promote services@20261126T090000Z=bbbb "):
			c.log(host + " promote")
		case strings.Contains(line, "systemctl start nfs-server.service"):
			c.mu.Lock()
			c.active[host] = true
			c.mu.Unlock()
			c.log(host + " start")
		case strings.HasPrefix(line, "systemctl is-active -q nfs-server.service"):
			return isActive()
		case strings.Contains(line, "hoctl-dir direction services"):
			c.log(host + " direction")
		case strings.Contains(line, "systemctl restart"):
			c.log(host + " remount")
		case strings.HasPrefix(line, "btrfs property get"), strings.HasPrefix(line, "stat "):
		default:
			c.log(host + " unexpected: " + line)
		}
		return sshexectest.Reply{}
	}
}

// engine runs a failover against the cluster's hosts, confirmed, with
// the cluster lock held.
func (c *cluster) engine(t *testing.T, inv *inventory.Inventory) *tasks.Engine {
	hosts := &sshexectest.Hosts{Answer: c.answer(t)}
	ios, _, _, _ := iostreams.Test()
	return &tasks.Engine{Env: &tasks.Env{Inventory: inv, Connect: hosts.Connect}, Reporter: tasks.NewReporter(ios, nil),
		StateDir: t.TempDir(), Yes: true, Command: "hoctl failover",
		ClusterLock: func(context.Context, string, string) (tasks.ClusterLock, error) { return heldLock{}, nil }}
}

type heldLock struct{}

func (heldLock) Lost() <-chan struct{} { return nil }
func (heldLock) Release() error        { return nil }

// The failover as run on the engine, not as planned: the owner key moves
// before the old primary is fenced, the final sync comes after the fence,
// the promote after the final sync, NFS starts on the new primary after
// the promote, and only then does the direction move and the clients
// remount. The final sync's own steps (replicate's runbook, tested in
// pkg/replicate) are stood in for here by steps that record when they
// ran. A change of order fails here in seconds, not in the lab.
func TestFailoverRunsInOrderOnTheHosts(t *testing.T) {
	inv := parseInv(t, resolveInv)
	svc := inv.NFS["data-services"]
	c := &cluster{kv: map[string]string{svc.OwnerKey: "zippy"}, index: map[string]uint64{svc.OwnerKey: 7}, active: map[string]bool{"zippy": true}}
	consulFn := func(context.Context) (Consul, error) { return c, nil }
	rb, err := Resolve(context.Background(), inv, consulFn, Options{To: "c1", ConsulWait: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	sync := 0
	for _, s := range rb.Steps {
		if strings.HasPrefix(s.Title, "final sync:") {
			sync++
			s.Before, s.After, s.Undo = nil, nil, nil
			s.Action = &tasks.Func{Desc: "stand-in", Fn: func(context.Context, *tasks.Env, *inventory.Host) (string, error) {
				c.log("final sync")
				return "", nil
			}}
		}
	}
	if sync == 0 {
		t.Fatal("no final sync steps")
	}
	eng := c.engine(t, inv)
	if _, err := eng.Run(context.Background(), rb, tasks.RunOptions{}); err != nil {
		t.Fatalf("%v\n%s", err, strings.Join(c.timeline, "\n"))
	}
	var got []string
	for _, ev := range c.timeline {
		if len(got) == 0 || got[len(got)-1] != ev {
			got = append(got, ev)
		}
	}
	// The clients remount at once, in either order.
	if i := slices.Index(got, "zippy direction"); i >= 0 && i+2 < len(got) {
		slices.Sort(got[i+1 : i+3])
	}
	// The final sync's inspection (under the host locks) and garbage
	// removal come before the fence, out of the outage, and so does the
	// fence's arming (its daemon-reload), before the owner key moves; its snapshot and
	// send after it; its prunes once the clients read the new primary.
	want := []string{"final sync", "zippy arm", "consul hoctl/nfs/data-services/owner=c1", "zippy fence", "final sync", "c1 promote", "c1 start",
		"consul " + replicate.DirectionKey("services") + "=c1", "c1 direction", "zippy direction", "c1 remount", "c2 remount", "final sync"}
	if !slices.Equal(got, want) {
		t.Fatalf("the failover ran\n  %s\nwant\n  %s", strings.Join(got, "\n  "), strings.Join(want, "\n  "))
	}
}

// lostCAS is a cluster where someone else moves the owner key between
// the fence's read of it and its compare-and-set.
type lostCAS struct{ *cluster }

func (c lostCAS) CAS(context.Context, string, string, uint64) (bool, error) { return false, nil }

// A fence armed before the owner key moves is taken back when the key
// does not move: the old primary stays the owner, serving, and its unit
// can start again (after its guard's lease stop, say).
func TestFenceDisarmsWhenTheKeyDoesNotMove(t *testing.T) {
	inv := parseInv(t, resolveInv)
	svc := inv.NFS["data-services"]
	c := &cluster{kv: map[string]string{svc.OwnerKey: "zippy"}, index: map[string]uint64{svc.OwnerKey: 7}, active: map[string]bool{"zippy": true}}
	consulFn := func(context.Context) (Consul, error) { return lostCAS{c}, nil }
	rb, err := Resolve(context.Background(), inv, consulFn, Options{To: "c1", ConsulWait: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range rb.Steps {
		if strings.HasPrefix(s.Title, "final sync:") {
			s.Before, s.After, s.Undo = nil, nil, nil
			s.Action = &tasks.Func{Desc: "stand-in", Fn: func(context.Context, *tasks.Env, *inventory.Host) (string, error) { return "", nil }}
		}
	}
	eng := c.engine(t, inv)
	_, err = eng.Run(context.Background(), rb, tasks.RunOptions{})
	if err == nil || !strings.Contains(err.Error(), "the fence armed on zippy was removed") {
		t.Fatalf("run: %v, want the lost compare-and-set, the fence removed", err)
	}
	if want := []string{"zippy arm", "zippy disarm"}; !slices.Equal(c.timeline, want) {
		t.Fatalf("the failover ran\n  %s\nwant\n  %s", strings.Join(c.timeline, "\n  "), strings.Join(want, "\n  "))
	}
}

// A new primary whose /persist is mounted without nosuid,nodev would have
// the promote refuse (it would make a stream's setuid files and device
// nodes live there), but only after the fence: nothing would serve. The
// assessment refuses it first (exit 3), before anything is armed, moved
// or stopped.
func TestFailoverRefusesAnUnsafePromoteMountBeforeTheFence(t *testing.T) {
	inv := parseInv(t, resolveInv)
	svc := inv.NFS["data-services"]
	c := &cluster{kv: map[string]string{svc.OwnerKey: "zippy"}, index: map[string]uint64{svc.OwnerKey: 7}, active: map[string]bool{"zippy": true},
		suidMount: map[string]bool{"c1": true}}
	consulFn := func(context.Context) (Consul, error) { return c, nil }
	rb, err := Resolve(context.Background(), inv, consulFn, Options{To: "c1", ConsulWait: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	eng := c.engine(t, inv)
	_, err = eng.Run(context.Background(), rb, tasks.RunOptions{})
	if err == nil || exitcode.Of(err) != exitcode.Refused || !strings.Contains(err.Error(), "c1: /persist is mounted without nosuid,nodev") {
		t.Fatalf("run: %v (exit %d), want a refusal naming c1's /persist", err, exitcode.Of(err))
	}
	if len(c.timeline) != 0 || c.kv[svc.OwnerKey] != "zippy" || !c.active["zippy"] {
		t.Fatalf("refused, yet the failover ran %v (owner %s)", c.timeline, c.kv[svc.OwnerKey])
	}
}
