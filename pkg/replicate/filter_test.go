package replicate

import (
	"bytes"
	"context"
	"os"
	"path"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hoctl/hoctl/pkg/btrfs"
	"github.com/hoctl/hoctl/pkg/sshexec"
)

const standby = "/persist/services-standby"

// The lines a replication sends to its target, built by the code that
// sends them: a command added to the runbook without the filter learning
// it fails here. The dir primitive's ops are the filter's own code
// (native); the rest run as the argv shown.
func targetLines(t *testing.T) (native, argv []string) {
	t.Helper()
	r := &Run{Ends: Ends{TargetDir: standby, Base: "services"}}
	sub := btrfs.Subvolume{ID: 260, Path: path.Join(standby, "services@20261126T084500Z")}
	native = []string{
		dirOpLine(standby, opList, "services"),
		dirOpLine(standby, opShow, "services@20261126T084500Z"),
		deleteCmd(nil, standby, []btrfs.Subvolume{sub, {ID: 261, Path: path.Join(standby, "services@20261126T090000Z")}}).Line(),
		hostLockCmd(nil, standby, "services", defaultHolder(time.Now())).Line(),
		DirectionCmd(standby, "services", "c1").Line(),
	}
	argv = []string{
		sshexec.QuoteArgv([]string{"stat", "-f", "-c", "%T", standby}),
		sshexec.QuoteArgv([]string{"df", "-B1", "--output=avail", standby}),
		sshexec.QuoteArgv(MountArgv(standby)),
		r.receiverLine(nil),
	}
	r.Ends.Compress = "zstd"
	return native, append(argv, r.receiverLine(nil))
}

// What an older hoctl sends, which a target upgraded first still serves.
func legacyLines() []string {
	snap := path.Join(standby, "services@20261126T084500Z")
	return []string{
		sshexec.QuoteArgv(ListArgv(standby, "services")),
		sshexec.QuoteArgv(HostLockArgv(standby, "services", "alice@ws pid 12, started 2026-11-30T05:00:00Z")),
		sshexec.QuoteArgv([]string{"btrfs", "subvolume", "show", snap}),
		sshexec.QuoteArgv([]string{"btrfs", "subvolume", "delete", snap}),
	}
}

func TestFilterAllowsWhatReplicationSends(t *testing.T) {
	f := Filter{Dir: standby + "/"}
	native, argv := targetLines(t)
	for _, line := range append(native, legacyLines()...) {
		req, err := f.Allow(line)
		if err != nil || req.native == nil {
			t.Errorf("%q: %+v %v, want the filter's own code", line, req, err)
		}
		// The same op, as the unrestricted key's shell hands it to
		// `hoctl target-filter DIR` (SSH_ORIGINAL_COMMAND is the op).
		if op, ok := strings.CutPrefix(line, "SSH_ORIGINAL_COMMAND="); ok {
			inner, err := splitPipeline(op[:strings.Index(op, " hoctl target-filter ")])
			if err != nil || len(inner) != 1 || len(inner[0]) != 1 {
				t.Fatalf("%q: %v", line, err)
			}
			if req, err := f.Allow(inner[0][0]); err != nil || req.native == nil {
				t.Errorf("the op %q: %+v %v", inner[0][0], req, err)
			}
		}
	}
	for _, line := range argv {
		req, err := f.Allow(line)
		if err != nil {
			t.Errorf("refused %q: %v", line, err)
			continue
		}
		if req.Watched {
			t.Errorf("%q: not wrapped, yet watched", line)
		}
		// The receive comes as the unrestricted key's shell runs it:
		// inside `hoctl target-filter DIR` (receiverLine).
		want := line
		if argv, err := splitPipeline(line); err == nil && len(argv) == 1 && len(argv[0]) >= 4 && strings.HasPrefix(argv[0][0], "SSH_ORIGINAL_COMMAND=") {
			want = strings.TrimPrefix(argv[0][0], "SSH_ORIGINAL_COMMAND=")
		}
		if got := sshexec.QuoteArgv(req.Pipeline[len(req.Pipeline)-1]); !strings.HasSuffix(want, got) {
			t.Errorf("%q parsed as %q", line, req.Pipeline)
		}
	}
	req, err := f.Allow(sshexec.KillableForTest(dirOpLine(standby, opList, "services")))
	if err != nil || !req.Watched || req.native == nil {
		t.Fatalf("wrapped listing: %+v %v", req, err)
	}
}

// The dir primitive's ops: exactly these, on this dir, with names of
// hoctl's scheme and plain holder and host text.
func TestFilterDirOpsRefused(t *testing.T) {
	f := Filter{Dir: standby}
	for _, line := range []string{
		dirOpLine("/persist", opList, "services"),
		dirOpLine(standby+"/..", opList, "services"),
		dirOpLine(standby, opList, "*"),
		dirOpLine(standby, opList, "../x"),
		dirOpLine(standby, opShow, "../services@20261126T084500Z"),
		dirOpLine(standby, opShow, "services@20261126T084500Z/x"),
		dirOpLine(standby, opShow, "services@x"),
		dirOpLine(standby, opDelete),
		dirOpLine(standby, opDelete, "services@20261126T084500Z"),
		dirOpLine(standby, opDelete, "services@20261126T084500Z=0"),
		dirOpLine(standby, opDelete, "services@20261126T084500Z=x"),
		dirOpLine(standby, opDelete, "../services@20261126T084500Z=256"),
		dirOpLine(standby, opDelete, "services@20261126T084500Z\n=256"),
		dirOpLine(standby, opLock, "services", "x\ny"),
		dirOpLine(standby, opLock, "../x", "holder"),
		dirOpLine(standby, opDirection, "services", "c1\nzippy"),
		dirOpLine(standby, opDirection, "services", "../c1"),
		dirOpLine(standby, opDirection, "services"),
		dirOpLine(standby, "rm", "-rf", "/"),
		"SSH_ORIGINAL_COMMAND='hoctl-dir list services' sh target-filter " + standby,
		"SSH_ORIGINAL_COMMAND='hoctl-dir list services' hoctl target-filter " + standby + " extra",
		"SSH_ORIGINAL_COMMAND='id' hoctl target-filter " + standby,
		"SSH_ORIGINAL_COMMAND='hoctl-dir list services; id' hoctl target-filter " + standby,
		"PATH=/tmp hoctl target-filter " + standby,
		"SSH_ORIGINAL_COMMAND='stat -f -c %T " + standby + "' hoctl target-filter " + standby,
		"SSH_ORIGINAL_COMMAND='btrfs receive -C /persist' hoctl target-filter " + standby,
		"SSH_ORIGINAL_COMMAND='btrfs receive -C " + standby + "' hoctl target-filter /persist",
		"SSH_ORIGINAL_COMMAND=\"SSH_ORIGINAL_COMMAND='btrfs receive -C " + standby + "' hoctl target-filter " + standby + "\" hoctl target-filter " + standby,
	} {
		if req, err := f.Allow(line); err == nil {
			t.Errorf("allowed %q: %+v", line, req)
		}
	}
}

// Whatever form of receive is asked, the filter runs it confined to the
// dir: an older hoctl's plain `btrfs receive DIR` too.
func TestFilterAlwaysReceivesChrooted(t *testing.T) {
	f := Filter{Dir: standby}
	for _, line := range []string{"btrfs receive " + standby, "btrfs receive -C " + standby, "zstd -d -q -c | btrfs receive " + standby} {
		req, err := f.Allow(line)
		if err != nil {
			t.Fatalf("%q: %v", line, err)
		}
		if got := req.Pipeline[len(req.Pipeline)-1]; !slices.Equal(got, []string{"btrfs", "receive", "-C", standby}) {
			t.Errorf("%q runs %q, not confined by --chroot", line, got)
		}
	}
	for _, line := range []string{"btrfs receive -C /", "btrfs receive -C /persist", "btrfs receive -e " + standby, "btrfs receive --chroot=/ " + standby} {
		if _, err := f.Allow(line); err == nil {
			t.Errorf("allowed %q", line)
		}
	}
}

// The host lock: exactly hoctl's own command for this dir, run by the
// filter itself; never another file, dir, script or holder text.
func TestFilterHostLock(t *testing.T) {
	f := Filter{Dir: standby}
	req, err := f.Allow(sshexec.QuoteArgv(HostLockArgv(standby, "services", "alice@ws pid 12, started 2026-11-30T05:00:00Z")))
	if err != nil || req.native == nil {
		t.Fatalf("the lock command: %+v %v", req, err)
	}
	bad := [][]string{
		HostLockArgv("/persist", "services", "x"),
		HostLockArgv(standby, "../services", "x"),
		HostLockArgv(standby, "services", "x\ny"),
		HostLockArgv(standby, "services", "$(id)"),
		HostLockArgv(standby, "services", "/etc/passwd"),
		append(HostLockArgv(standby, "services", "x")[:2], "id", "hoctl-lock", HostLockFile(standby, "services"), DirectionFile(standby, "services"), "x"),
		{"sh", "-c", hostLockScript, "hoctl-lock", HostLockFile(standby, "services"), "/etc/shadow", "x"},
	}
	for _, argv := range bad {
		if _, err := f.Allow(sshexec.QuoteArgv(argv)); err == nil {
			t.Errorf("allowed %q", argv)
		}
	}
}

func TestMissingMountOptions(t *testing.T) {
	for opts, want := range map[string]string{
		"rw,relatime,ssd,space_cache=v2,subvolid=5,subvol=/\n": "nosuid,nodev",
		"rw,nosuid,relatime": "nodev",
		"rw,nosuid,nodev,noexec,relatime,subvol=/services-standby\n": "",
	} {
		if got := strings.Join(MissingMountOptions(opts), ","); got != want {
			t.Errorf("%q: missing %q, want %q", opts, got, want)
		}
	}
}

func TestFilterRefuses(t *testing.T) {
	f := Filter{Dir: standby}
	for _, line := range []string{
		"",
		"sh -c id",
		"btrfs receive /persist",
		"btrfs receive /persist/services-standby/../x",
		"btrfs receive /persist/services-standby; rm -rf /",
		"btrfs receive /persist/services-standby && id",
		"btrfs receive /persist/services-standby > /etc/passwd",
		"btrfs receive $(id)",
		"btrfs receive `id`",
		"btrfs receive \"/persist/services-standby$HOME\"",
		"btrfs subvolume delete /persist/services-standby",
		"btrfs subvolume delete /persist/services-standby/services",
		"btrfs subvolume delete /persist/services-standby/services@manual",
		"btrfs subvolume delete /persist/services-standby/../services@20261126T084500Z",
		"btrfs subvolume delete /persist/services-standby/services@20261126T084500Z /persist/services@20261126T084500Z",
		"btrfs subvolume delete /persist/services-standby/*",
		"btrfs subvolume show /etc",
		"btrfs subvolume snapshot /persist/services-standby/services@20261126T084500Z /persist/services-standby/x",
		"stat -f -c %T /",
		"cat /etc/shadow | btrfs receive /persist/services-standby",
		"zstd -d -q -c | btrfs receive /persist/services-standby | cat",
		"find /persist/services-standby -mindepth 1 -maxdepth 1 -name 'services@*' -delete",
		"find / -mindepth 1 -maxdepth 1 -name 'services@*' -printf '--hoctl-next-- %p\\n' -exec btrfs subvolume show '{}' ';'",
		"find /persist/services-standby -mindepth 1 -maxdepth 1 -name '*@*' -printf '--hoctl-next-- %p\\n' -exec btrfs subvolume show '{}' ';'",
		"btrfs receive '/persist/services-standby",
		"# btrfs receive /persist/services-standby",
		"~/btrfs receive /persist/services-standby",
		"btrfs receive /persist/services-standby\nid",
		"exec 3<&0 </dev/null; id",
	} {
		if req, err := f.Allow(line); err == nil {
			t.Errorf("allowed %q as %q", line, req.Pipeline)
		}
	}
	if _, err := (Filter{Dir: "/"}).Allow("btrfs receive /"); err == nil {
		t.Error("a filter confined to / confines nothing")
	}
}

func TestFilterExecReportsTheFirstFailingStage(t *testing.T) {
	var out, errOut bytes.Buffer
	req := &Request{Pipeline: [][]string{{"sh", "-c", "echo data; exit 3"}, {"cat"}}}
	code, err := req.Exec(context.Background(), strings.NewReader(""), &out, &errOut)
	if err != nil || code != 3 || out.String() != "data\n" {
		t.Fatalf("code %d, err %v, out %q", code, err, out.String())
	}
	req = &Request{Pipeline: [][]string{{"cat"}}}
	code, err = req.Exec(context.Background(), strings.NewReader("stdin reaches the command"), &out, &errOut)
	if err != nil || code != 0 || !strings.HasSuffix(out.String(), "stdin reaches the command") {
		t.Fatalf("code %d, err %v, out %q", code, err, out.String())
	}
}

func TestFilterExecStopsAWatchedCommandWhenInputEnds(t *testing.T) {
	req := &Request{Pipeline: [][]string{{"sleep", "60"}}, Watched: true}
	code, err := req.Exec(context.Background(), strings.NewReader(""), &bytes.Buffer{}, &bytes.Buffer{})
	if err != nil || code == 0 {
		t.Fatalf("the sleep should have been killed: code %d, err %v", code, err)
	}
}

func FuzzFilter(f *testing.F) {
	native, argv := targetLines(&testing.T{})
	for _, l := range append(append(native, argv...), legacyLines()...) {
		f.Add(l)
	}
	for _, n := range HostileNames {
		f.Add(dirOpLine(standby, opShow, n))
		f.Add(dirOpLine(standby, opDelete, n+"=256"))
		f.Add("btrfs subvolume delete " + sshexec.Quote(path.Join(standby, n)))
	}
	f.Add("btrfs subvolume delete /persist/services-standby/services@20261126T084500Z")
	f.Add("btrfs receive \"/persist/services-standby\"")
	f.Add(`btrfs receive /persist/services\-standby`)
	f.Fuzz(func(t *testing.T, line string) {
		req, err := Filter{Dir: standby}.Allow(line)
		if err != nil {
			return
		}
		for _, argv := range req.Pipeline {
			if argv[0] != "btrfs" && argv[0] != "zstd" && argv[0] != "find" && argv[0] != "stat" && argv[0] != "df" && argv[0] != "findmnt" &&
				(argv[0] != "sh" || req.native == nil) {
				t.Fatalf("%q runs %q", line, argv)
			}
			for _, a := range argv[1:] {
				if strings.HasPrefix(a, "/") && a != standby && path.Dir(a) != standby {
					t.Fatalf("%q reaches %q outside %s", line, a, standby)
				}
			}
			// What was allowed, quoted again, is allowed as the same argv.
			again, err := Filter{Dir: standby}.Allow(sshexec.QuoteArgv(argv))
			if len(req.Pipeline) == 1 && (err != nil || !slices.Equal(again.Pipeline[0], argv)) {
				t.Fatalf("%q: requoted %q not allowed the same: %v", line, argv, err)
			}
		}
	})
}

// A host whose address is "local" (a timer on the source) runs the
// primitive with this very binary, whatever the unit's PATH.
func TestDirOpLocalRunsThisBinary(t *testing.T) {
	exe, err := os.Executable()
	if err != nil {
		t.Skip(err)
	}
	local := sshexec.NewLocal(&sshexec.Target{Name: "zippy", Address: "local"})
	if got := dirCmd(local, "/persist", opList, "services").Line(); !strings.Contains(got, sshexec.Quote(exe)+" target-filter /persist") {
		t.Errorf("local: %s", got)
	}
	if got := dirCmd(nil, "/persist", opList, "services").Line(); !strings.Contains(got, " hoctl target-filter /persist") {
		t.Errorf("remote: %s", got)
	}
}
