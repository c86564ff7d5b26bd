package replicate

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hoctl/hoctl/pkg/btrfs"
	"github.com/hoctl/hoctl/pkg/inventory"
	"github.com/hoctl/hoctl/pkg/iostreams"
	"github.com/hoctl/hoctl/pkg/sshexec"
	"github.com/hoctl/hoctl/pkg/tasks"
)

const cycleInventory = `
hosts: {zippy: {}, c1: {}}
replication:
  services:
    source: {host: zippy, subvolume: /persist/services, snapshot_dir: /persist/services-snapshots}
    target: {host: c1, dir: /persist/services-standby}
`

// cycleHost is a scripted host for a replication's first step: it takes
// the lock, answers the inspect op (or refuses it, as an older hoctl
// does, and then answers the sequential commands), and counts how often
// it was inspected.
type cycleHost struct {
	name  string
	old   bool // a hoctl without the inspect op
	entry Entry
	// lockErr, when set, is what the lock op says as it fails.
	lockErr string

	mu          sync.Mutex
	inspections int
	locks       int
	deletes     int
	lines       []string
	// barrier, when set, holds each inspection until both hosts are
	// being inspected at once.
	barrier *barrier
}

func (h *cycleHost) Name() string { return h.name }

func (h *cycleHost) Run(ctx context.Context, c sshexec.Cmd) (*sshexec.Result, error) {
	line := c.Line()
	h.mu.Lock()
	h.lines = append(h.lines, line)
	h.mu.Unlock()
	res := &sshexec.Result{Host: h.name}
	fail := func(code int, stderr string) (*sshexec.Result, error) {
		res.ExitCode, res.Stderr = code, []byte(stderr)
		return res, &sshexec.ExitError{Host: h.name, Code: code, Stderr: stderr}
	}
	ok := func(stdout string) (*sshexec.Result, error) {
		res.Stdout = []byte(stdout)
		if c.Stdout != nil {
			_, _ = io.WriteString(c.Stdout, stdout)
		}
		return res, nil
	}
	entryJSON, _ := json.Marshal(h.entry)
	switch {
	case strings.Contains(line, "hoctl-dir lock"):
		h.mu.Lock()
		h.locks++
		h.mu.Unlock()
		if h.lockErr != "" {
			_ = c.Stdout.(io.Closer).Close()
			_, _ = io.WriteString(c.Stderr, h.lockErr)
			return fail(1, h.lockErr)
		}
		_, _ = io.WriteString(c.Stdout, "locked \n")
		_, _ = io.Copy(io.Discard, c.Stdin)
		return res, nil
	case strings.Contains(line, "hoctl-dir inspect") || strings.Contains(line, " dir-op /persist/services-snapshots inspect "):
		if h.old {
			return fail(126, "hoctl target-filter: refused \"hoctl-dir inspect services\": not an op of the dir primitive on /persist/services-standby\n")
		}
		h.mu.Lock()
		h.inspections++
		h.mu.Unlock()
		if h.barrier != nil {
			if err := h.barrier.wait(ctx); err != nil {
				return nil, err
			}
		}
		if strings.Contains(line, "dir-op") {
			return ok(fmt.Sprintf(`{"show":"/persist/services","show_error":"","nested":"","nested_error":"","entries":[%s],"estimate":{"parent":%q,"gen":%d,"bytes":4096,"error":""}}`+"\n",
				entryJSON, h.entry.Name, h.entry.Gen))
		}
		return ok(fmt.Sprintf(`{"avail":1073741824,"missing_mount":[],"entries":[%s]}`+"\n", entryJSON))
	case strings.Contains(line, "hoctl-dir delete"):
		h.mu.Lock()
		h.deletes++
		h.mu.Unlock()
		return ok("deleted\n")
	case strings.Contains(line, "hoctl-dir show"):
		if h.barrier != nil {
			if err := h.barrier.wait(ctx); err != nil {
				return nil, err
			}
		}
		return ok(string(entryJSON) + "\n")
	case strings.Contains(line, "hoctl-dir list"):
		h.mu.Lock()
		h.inspections++
		h.mu.Unlock()
		return ok(string(entryJSON) + "\n")
	case strings.HasPrefix(line, "btrfs subvolume show /persist/services |"):
		return ok("/persist/services\n--\n")
	case strings.HasPrefix(line, "btrfs subvolume show"):
		return ok("/persist/services\n")
	case strings.HasPrefix(line, "stat -f"):
		return ok("btrfs\n")
	case strings.HasPrefix(line, "findmnt"):
		return ok("rw,nosuid,nodev\n")
	case strings.HasPrefix(line, "df "):
		return ok("Avail\n1073741824\n")
	case strings.HasPrefix(line, "btrfs subvolume find-new"):
		return ok("4096\n")
	}
	return fail(1, "unexpected command: "+line)
}

// barrier lets n waiters through once all n arrived; a waiter alone
// gives up after a while (the other came only after it: one after the
// other, not at once).
type barrier struct {
	mu      sync.Mutex
	n       int
	arrived chan struct{}
	count   int
}

func newBarrier(n int) *barrier { return &barrier{n: n, arrived: make(chan struct{})} }

func (b *barrier) wait(ctx context.Context) error {
	b.mu.Lock()
	b.count++
	if b.count == b.n {
		close(b.arrived)
	}
	b.mu.Unlock()
	select {
	case <-b.arrived:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(5 * time.Second):
		return errors.New("alone at the barrier: the other host was not reached at the same time")
	}
}

func snapEntry(name, uuid, received string, gen uint64) Entry {
	return Entry{Name: name, Kind: KindSubvolume, ID: 257, Gen: gen, UUID: uuid, ReceivedUUID: received, ReadOnly: true}
}

// cycleRun runs the replication's first step (inspect, lock and choose)
// through the engine, as `hoctl [--yes] replicate` runs it, with the
// hosts' connections made by connect.
func cycleRun(t *testing.T, yes bool, src, dst *cycleHost, connect func(ctx context.Context, h *inventory.Host) (sshexec.Runner, error)) *Run {
	t.Helper()
	return cycleRunErr(t, yes, src, dst, connect, nil)
}

// cycleRunErr is cycleRun, the run's error put in wantErr when set.
func cycleRunErr(t *testing.T, yes bool, src, dst *cycleHost, connect func(ctx context.Context, h *inventory.Host) (sshexec.Runner, error), wantErr *error) *Run {
	t.Helper()
	inv, err := inventory.Parse("i.yaml", []byte(cycleInventory))
	if err != nil {
		t.Fatal(err)
	}
	now := func() time.Time { return time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC) }
	rb, run := Runbook(inv, EndsOf(inv.Replication["services"]), Options{Yes: yes, Holder: "alice", Now: now})
	rb.Steps = rb.Steps[:1]
	rb.ClusterLock = false
	if connect == nil {
		connect = func(_ context.Context, h *inventory.Host) (sshexec.Runner, error) {
			if h.Name == "zippy" {
				return src, nil
			}
			return dst, nil
		}
	}
	ios, _, _, _ := iostreams.Test()
	eng := &tasks.Engine{Env: &tasks.Env{Inventory: inv, Connect: connect}, Reporter: tasks.NewReporter(ios, nil), StateDir: t.TempDir(), Yes: yes,
		Confirm: func(context.Context, string) (bool, error) { return true, nil }}
	_, err = eng.Run(context.Background(), rb, tasks.RunOptions{})
	run.Release()
	if err != nil {
		if wantErr != nil {
			*wantErr = err
			return run
		}
		t.Fatalf("the run: %v\nsource: %q\ntarget: %q", err, src.lines, dst.lines)
	}
	return run
}

// With --yes a lock the host refuses fails the plan's before check (exit
// 3), and the plan says what the host said, not only its exit status.
func TestLockRefusalShownWhole(t *testing.T) {
	src, dst := steadyHosts()
	dst.lockErr = "ERROR: /persist/services-standby/.hoctl-replicate-services.lock: a block device, not a regular file: refused, never opened\n"
	var err error
	cycleRunErr(t, true, src, dst, nil, &err)
	var refused *tasks.RefusedError
	if !errors.As(err, &refused) || !strings.Contains(err.Error(), "a block device, not a regular file") {
		t.Fatalf("err = %v", err)
	}
	if dst.inspections != 0 {
		t.Errorf("inspected without the lock: %q", dst.lines)
	}
}

func steadyHosts() (src, dst *cycleHost) {
	const name = "services@20261207T115500Z"
	src = &cycleHost{name: "zippy", entry: snapEntry(name, "0b5e4c6e-0000-4000-8000-000000000001", "", 7)}
	dst = &cycleHost{name: "c1", entry: snapEntry(name, "0b5e4c6e-0000-4000-8000-000000000002", "0b5e4c6e-0000-4000-8000-000000000001", 9)}
	return src, dst
}

// Issue 21: with --yes, nothing separates the plan from the run, so the
// plan's inspection is taken under the host locks and is the only one:
// each host is inspected once (it was three times: the plan, the step's
// before check, and again under the locks), in one command, and the
// locks are taken once, before it.
func TestYesInspectsOnceUnderTheLocks(t *testing.T) {
	src, dst := steadyHosts()
	run := cycleRun(t, true, src, dst, nil)
	for _, h := range []*cycleHost{src, dst} {
		if h.inspections != 1 || h.locks != 1 {
			t.Errorf("%s: inspected %d times, locked %d times; want once each:\n%q", h.name, h.inspections, h.locks, h.lines)
		}
		if i := indexOf(h.lines, "hoctl-dir lock"); i < 0 || i > indexOf(h.lines, "inspect") {
			t.Errorf("%s: the inspection ran before the lock:\n%q", h.name, h.lines)
		}
		if len(h.lines) != 2 {
			t.Errorf("%s: %d commands, want the lock and one inspection:\n%q", h.name, len(h.lines), h.lines)
		}
	}
	if c := run.choice(); !strings.Contains(c, "incremental: parent services@20261207T115500Z") {
		t.Errorf("choice %q", c)
	}
	if run.Estimate() != 4096 {
		t.Errorf("estimate %d, want the source's own 4096", run.Estimate())
	}
}

// When a person confirms, the plan they read holds no lock while they
// decide, and the run inspects again under the locks once they said yes:
// twice in all, never three times.
func TestConfirmedRunChecksAgainUnderTheLocks(t *testing.T) {
	src, dst := steadyHosts()
	cycleRun(t, false, src, dst, nil)
	for _, h := range []*cycleHost{src, dst} {
		if h.inspections != 2 || h.locks != 1 {
			t.Errorf("%s: inspected %d times, locked %d times; want twice and once:\n%q", h.name, h.inspections, h.locks, h.lines)
		}
		if lock := indexOf(h.lines, "hoctl-dir lock"); lock != 1 || !strings.Contains(h.lines[0], "inspect") || !strings.Contains(h.lines[2], "inspect") {
			t.Errorf("%s: want inspect (the plan), lock, inspect (the run):\n%q", h.name, h.lines)
		}
	}
}

// Both hosts are connected at once and inspected at once: each host's
// connection, and each inspection, waits for the other host's to begin.
// One after the other, the first waits alone and the run fails.
func TestBothHostsAtOnce(t *testing.T) {
	src, dst := steadyHosts()
	inspected := newBarrier(2)
	src.barrier, dst.barrier = inspected, inspected
	connected := newBarrier(2)
	var mu sync.Mutex
	seen := map[string]bool{}
	connect := func(ctx context.Context, h *inventory.Host) (sshexec.Runner, error) {
		mu.Lock()
		first := !seen[h.Name]
		seen[h.Name] = true
		mu.Unlock()
		if first {
			if err := connected.wait(ctx); err != nil {
				return nil, fmt.Errorf("%s: %w", h.Name, err)
			}
		}
		if h.Name == "zippy" {
			return src, nil
		}
		return dst, nil
	}
	cycleRun(t, true, src, dst, connect)
}

// A host whose hoctl predates the inspect op refuses it; the run then
// inspects it with the sequential commands, and still chooses the same.
func TestOlderHoctlInspectedSequentially(t *testing.T) {
	src, dst := steadyHosts()
	dst.old = true
	run := cycleRun(t, true, src, dst, nil)
	if c := run.choice(); !strings.Contains(c, "incremental: parent services@20261207T115500Z") {
		t.Errorf("choice %q", c)
	}
	if indexOf(dst.lines, "stat -f") < 0 || indexOf(dst.lines, "df -B1") < 0 {
		t.Errorf("the older target was not inspected sequentially:\n%q", dst.lines)
	}
}

func indexOf(lines []string, sub string) int {
	for i, l := range lines {
		if strings.Contains(l, sub) {
			return i
		}
	}
	return -1
}

func inspectionOf(t testing.TB, v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return append(b, '\n')
}

// Issue 19 and 21: the batched answer is one JSON document, each section
// a value of its own. Every hostile name, in the entries of either side,
// comes back as exactly the one entry it was: it never adds an entry,
// never changes the free space, the mount options, the subvolume's show
// line, its nested listing or the estimate.
func TestInspectionHostileNamesStayInTheirSection(t *testing.T) {
	for _, name := range HostileNames {
		// JSON carries names as UTF-8 (an invalid byte reads back as
		// U+FFFD, as in a listing): what comes back is that string.
		var n string
		if err := json.Unmarshal(inspectionOf(t, name), &n); err != nil {
			t.Fatal(err)
		}
		entries := []Entry{{Name: name, Kind: KindDirectory}, {Name: name, Kind: KindSubvolume, ID: 300, UUID: "0badc0de-0000-4000-8000-000000000777"}}
		ti, err := ParseTargetInspection(inspectionOf(t, TargetInspection{Avail: 5, MissingMount: []string{"nodev"}, Entries: entries}))
		if err != nil {
			t.Fatalf("%q: %v", n, err)
		}
		if ti.Avail != 5 || len(ti.MissingMount) != 1 || len(ti.Entries) != 2 || ti.Entries[0].Name != n || ti.Entries[1].Name != n {
			t.Fatalf("%q: read back as %+v", n, ti)
		}
		si, err := ParseSourceInspection(inspectionOf(t, SourceInspection{Show: "/persist/services", Nested: "", Entries: entries,
			Estimate: Estimate{Parent: "services@20261126T084500Z", Gen: 7, Bytes: 9}}))
		if err != nil {
			t.Fatalf("%q: %v", n, err)
		}
		if si.Show != "/persist/services" || si.Nested != "" || len(si.Entries) != 2 || si.Entries[1].Name != n || si.Estimate.Bytes != 9 {
			t.Fatalf("%q: read back as %+v", n, si)
		}
		side := sideOf("c1", standby, "services", ti.Entries)
		exact := n == "services@20261126T084500Z"
		if got := len(side.Snapshots); exact && got != 1 || !exact && got != 0 {
			t.Fatalf("%q: %d snapshots %+v", n, got, side.Snapshots)
		}
	}
}

// Anything but exactly one inspection is refused: the text listing, an
// unknown field, two documents, a second document forged after the
// first, an entry of an unknown kind, a negative size.
func TestInspectionRefusesAnythingElse(t *testing.T) {
	for _, out := range []string{
		"--hoctl-next-- /persist/services-standby/services@x\n\tUUID: 0badc0de\n",
		`{"avail":1,"missing_mount":[],"entries":[],"evil":1}`,
		`{"avail":1,"missing_mount":[],"entries":[]}{"avail":2,"missing_mount":[],"entries":[]}`,
		`{"avail":1,"missing_mount":[],"entries":[]}` + "\n" + `{"name":"services@20261126T084500Z","kind":"subvolume","id":5}`,
		`{"avail":1,"missing_mount":[],"entries":[{"name":"a","kind":"pwned\u001b[2J"}]}`,
		`{"avail":1,"missing_mount":[],"entries":[{"name":"","kind":"file"}]}`,
		`{"avail":-1,"missing_mount":[],"entries":[]}`,
		`{"avail":1,"missing_mount":["nosuid\nnodev"],"entries":[]}`,
		"",
	} {
		if in, err := ParseTargetInspection([]byte(out)); err == nil {
			t.Errorf("target %q read as %+v", out, in)
		}
	}
	for _, out := range []string{
		`{"show":"a\nb","entries":[],"estimate":{}}`,
		`{"show":"/s","entries":[],"estimate":{"bytes":-5}}`,
		`{"show":"/s","entries":[],"estimate":{"parent":"x\n{","bytes":5}}`,
		`{"show":"/s","entries":[],"estimate":{},"extra":{}}`,
		`{"show":"/s","entries":[],"estimate":{}} trailing`,
	} {
		if in, err := ParseSourceInspection([]byte(out)); err == nil {
			t.Errorf("source %q read as %+v", out, in)
		}
	}
}

func TestSumFindNew(t *testing.T) {
	out := "inode 257 file offset 0 len 4096 disk start 0 offset 0 gen 9 flags NONE photos/p1.jpg\n" +
		"inode 258 file offset 0 len 8192 disk start 0 offset 0 gen 9 flags NONE a\nname len 99999\n" +
		"transid marker was 10\n"
	if n, err := sumFindNew(strings.NewReader(out)); err != nil || n != 4096+8192 {
		t.Fatalf("%d %v", n, err)
	}
}

// FuzzParseTargetInspection: whatever a target answers, it is refused or
// gives entries that Classify turns into snapshots named exactly
// base@<timestamp>, and problems printed without a raw control character.
func FuzzParseTargetInspection(f *testing.F) {
	for _, n := range HostileNames {
		f.Add(inspectionOf(f, TargetInspection{Avail: 1, Entries: []Entry{{Name: n, Kind: KindSubvolume, ID: 256, UUID: "u"}}}))
		f.Add([]byte(`{"avail":1,"missing_mount":[],"entries":[{"name":` + fmt.Sprintf("%q", n) + `,"kind":"symlink"}]}`))
	}
	f.Fuzz(func(t *testing.T, out []byte) {
		in, err := ParseTargetInspection(out)
		if err != nil {
			return
		}
		if in.Avail < 0 {
			t.Fatalf("avail %d", in.Avail)
		}
		side := sideOf("c1", standby, "services", in.Entries)
		for _, s := range side.Snapshots {
			if b, _, ok := btrfs.ParseSnapshotName(s.Name()); !ok || b != "services" || s.Path != standby+"/"+s.Name() || s.ID == 0 {
				t.Fatalf("snapshot %+v from %q", s, out)
			}
		}
		for _, p := range side.Problems {
			if strings.ContainsAny(p, "\n\r\x1b\a") {
				t.Fatalf("problem printed raw: %q", p)
			}
		}
	})
}

// FuzzParseSourceInspection: a source's answer is refused or holds a
// one-line show, a non-negative estimate from a snapshot name, and
// entries as strict as a listing's.
func FuzzParseSourceInspection(f *testing.F) {
	for _, n := range HostileNames {
		f.Add(inspectionOf(f, SourceInspection{Show: "/persist/services", Nested: n, Entries: []Entry{{Name: n, Kind: KindSubvolume, ID: 256, UUID: "u"}},
			Estimate: Estimate{Parent: n, Bytes: 1}}))
	}
	f.Fuzz(func(t *testing.T, out []byte) {
		in, err := ParseSourceInspection(out)
		if err != nil {
			return
		}
		if strings.Contains(in.Show, "\n") || in.Estimate.Bytes < 0 {
			t.Fatalf("%+v from %q", in, out)
		}
		if p := in.Estimate.Parent; p != "" {
			if _, _, ok := btrfs.ParseSnapshotName(p); !ok {
				t.Fatalf("estimate parent %q", p)
			}
		}
		side := sideOf("zippy", "/persist/services-snapshots", "services", in.Entries)
		for _, s := range side.Snapshots {
			if b, _, ok := btrfs.ParseSnapshotName(s.Name()); !ok || b != "services" || s.ID == 0 {
				t.Fatalf("snapshot %+v from %q", s, out)
			}
		}
	})
}

// The target's inspect op only reads the dir: a restricted key may run
// it for its own base, never for another, and never the source's form,
// which runs btrfs on a subvolume outside the dir.
func TestFilterInspect(t *testing.T) {
	f := Filter{Dir: standby, Base: "services"}
	if req, err := f.Allow(dirOpLine(standby, opInspect, "services")); err != nil || req.native == nil {
		t.Fatalf("the target's inspect: %v", err)
	}
	for _, op := range [][]string{{opInspect, "media"}, {opInspect, "services", "/persist/services"}, {opInspect}, {opInspect, "../x"}} {
		if _, err := f.Allow(dirOpLine(standby, op...)); err == nil {
			t.Errorf("%q allowed", op)
		}
	}
	if _, err := HostOp("/persist/services-snapshots", []string{opInspect, "services", "/persist/other"}); err == nil {
		t.Error("a source inspection of a subvolume not named for the base")
	}
	if _, err := HostOp("/persist/services-snapshots", []string{opInspect, "services", "/persist/services"}); err != nil {
		t.Errorf("the source's inspect: %v", err)
	}
}

// After the send, pruning decides on the side as inspected under the
// host locks, plus the new snapshot: one command per side (the delete),
// not a listing again first.
func TestPruneFromTheLockedInspection(t *testing.T) {
	inv, err := inventory.Parse("i.yaml", []byte(cycleInventory+"    keep: {source: 2, target: 2}\n"))
	if err != nil {
		t.Fatal(err)
	}
	src := &cycleHost{name: "zippy"}
	env := &tasks.Env{Inventory: inv, Connect: func(context.Context, *inventory.Host) (sshexec.Runner, error) { return src, nil }}
	e := EndsOf(inv.Replication["services"])
	var snaps []btrfs.Snapshot
	for i, n := range []string{"services@20261207T110000Z", "services@20261207T111000Z", "services@20261207T112000Z"} {
		_, at, _ := btrfs.ParseSnapshotName(n)
		snaps = append(snaps, btrfs.Snapshot{Subvolume: btrfs.Subvolume{ID: uint64(300 + i), Path: e.SourceDir + "/" + n, ReadOnly: true}, Time: at})
	}
	r := &Run{Ends: e, Inv: inv, newName: "services@20261207T113000Z", fresh: true, src: &Side{Host: "zippy", Dir: e.SourceDir, Snapshots: snaps}}
	out, err := r.prune(context.Background(), env, inv.Host("zippy"), true)
	if err != nil {
		t.Fatal(err)
	}
	if out != "pruned services@20261207T110000Z, services@20261207T111000Z" || len(src.lines) != 1 || src.deletes != 1 ||
		!strings.Contains(src.lines[0], "delete services@20261207T110000Z=300 services@20261207T111000Z=301") {
		t.Fatalf("%q after:\n%q", out, src.lines)
	}
}

// The copy is verified against the new snapshot with both shown at once.
func TestVerifyShowsBothAtOnce(t *testing.T) {
	src, dst := steadyHosts()
	const name = "services@20261207T120000Z"
	src.entry = snapEntry(name, "0b5e4c6e-0000-4000-8000-000000000003", "", 11)
	dst.entry = snapEntry(name, "0b5e4c6e-0000-4000-8000-000000000004", "0b5e4c6e-0000-4000-8000-000000000003", 12)
	b := newBarrier(2)
	src.barrier, dst.barrier = b, b
	inv, err := inventory.Parse("i.yaml", []byte(cycleInventory))
	if err != nil {
		t.Fatal(err)
	}
	env := &tasks.Env{Inventory: inv, Connect: func(_ context.Context, h *inventory.Host) (sshexec.Runner, error) {
		if h.Name == "zippy" {
			return src, nil
		}
		return dst, nil
	}}
	r := &Run{Ends: EndsOf(inv.Replication["services"]), Inv: inv, newName: name}
	if out, err := r.verify(context.Background(), env, inv.Host("c1")); err != nil {
		t.Fatalf("%v\n%q\n%q", err, src.lines, dst.lines)
	} else if !strings.Contains(out, "received UUID 0b5e4c6e-0000-4000-8000-000000000003 matches") {
		t.Fatal(out)
	}
}

// The locks come first, so a missing target dir is found by the lock: it
// still says what to do about it, as the inspection did.
func TestMissingTargetDirFoundByTheLock(t *testing.T) {
	src, dst := steadyHosts()
	dst.lockErr = "ERROR: /persist/services-standby: No such file or directory\n"
	var err error
	cycleRunErr(t, true, src, dst, nil, &err)
	if err == nil || !strings.Contains(err.Error(), "target dir /persist/services-standby does not exist: create it (hoctl run c1 -- mkdir -p /persist/services-standby)") {
		t.Fatalf("err = %v", err)
	}
}

// receiveOnly is a target whose key is forced to `btrfs receive`: every
// command reads its input as a send stream.
type receiveOnly struct{}

func (receiveOnly) Name() string { return "c1" }
func (receiveOnly) Run(_ context.Context, c sshexec.Cmd) (*sshexec.Result, error) {
	fail := func(msg string) (*sshexec.Result, error) {
		if c.Stderr != nil {
			_, _ = io.WriteString(c.Stderr, msg)
		}
		return &sshexec.Result{Host: "c1", ExitCode: 1, Stderr: []byte(msg)}, &sshexec.ExitError{Host: "c1", Code: 1}
	}
	if c.Stdin == nil {
		return fail("ERROR: empty stream is not considered valid\n")
	}
	header := make([]byte, 17)
	n, _ := io.ReadFull(c.Stdin, header)
	if n == 0 {
		return fail("ERROR: empty stream is not considered valid\n")
	}
	if !strings.HasPrefix(string(header[:n]), "btrfs-stream\x00") {
		return fail("ERROR: unexpected header\n")
	}
	return fail("ERROR: a stream\n")
}

// The lock is a run's first command now: a key forced to `btrfs receive`
// is explained at once, as the first inspection did, not after the lock
// waited its bound for a stream on its open input.
func TestLockExplainsReceiveOnlyKey(t *testing.T) {
	_, err := acquireHostLock(context.Background(), receiveOnly{}, standby, "services", "alice", 10*time.Second)
	if err == nil || !strings.Contains(err.Error(), "restricted to `btrfs receive`") {
		t.Fatalf("err = %v", err)
	}
}

// A before check's error shown whole still says it was an interruption,
// an unreachable host or a held lock; only the exit status is hidden.
func TestShownWholeKeepsTheCauses(t *testing.T) {
	exit := &sshexec.ExitError{Host: "c1", Code: 1}
	conn := &sshexec.ConnError{Host: "c1", Err: errors.New("refused")}
	held := &HostLockedError{Host: "c1", Holder: "bob"}
	err := shownWhole(fmt.Errorf("a: %w; %w; %w; %w", exit, context.Canceled, conn, held))
	var ce *sshexec.ConnError
	var he *HostLockedError
	if errors.As(err, new(*sshexec.ExitError)) || !errors.Is(err, context.Canceled) || !errors.As(err, &ce) || !errors.As(err, &he) {
		t.Fatalf("%v: the causes are not what they were", err)
	}
}

// `hoctl --yes replicate` with no arguments: each replication's plan, the
// run's own plan and its step all use one inspection per host, taken
// under the locks (it was four: planEach's plan, the run's plan, the
// step's before check, and under the locks).
func TestEveryReplicationInspectsOnce(t *testing.T) {
	src, dst := steadyHosts()
	inv, err := inventory.Parse("i.yaml", []byte(cycleInventory))
	if err != nil {
		t.Fatal(err)
	}
	now := func() time.Time { return time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC) }
	jobs, err := Plan(context.Background(), inv, nil, Options{Yes: true, Holder: "alice", Now: now})
	if err != nil || len(jobs) != 1 {
		t.Fatalf("%d jobs, %v", len(jobs), err)
	}
	jobs[0].Runbook.Steps = jobs[0].Runbook.Steps[:1]
	jobs[0].Runbook.ClusterLock = false
	ios, _, _, _ := iostreams.Test()
	connect := func(_ context.Context, h *inventory.Host) (sshexec.Runner, error) {
		if h.Name == "zippy" {
			return src, nil
		}
		return dst, nil
	}
	eng := &tasks.Engine{Env: &tasks.Env{Inventory: inv, Connect: connect}, Reporter: tasks.NewReporter(ios, nil), StateDir: t.TempDir(), Yes: true}
	// As the command does: each job's plan shown first, then the waves.
	if p, err := eng.Plan(context.Background(), jobs[0].Runbook, 1); err != nil || p.Refusal() != nil {
		t.Fatalf("plan: %v %v", err, p.Refusal())
	}
	if err := RunAll(context.Background(), eng, Waves(jobs), func(*Job) tasks.Reporter { return tasks.NewReporter(ios, nil) }); err != nil || jobs[0].Err != nil {
		t.Fatalf("%v %v", err, jobs[0].Err)
	}
	for _, h := range []*cycleHost{src, dst} {
		if h.inspections != 1 || h.locks != 1 {
			t.Errorf("%s: inspected %d times, locked %d times; want once each:\n%q", h.name, h.inspections, h.locks, h.lines)
		}
	}
}
