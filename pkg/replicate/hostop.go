package replicate

import (
	"context"
	"fmt"
	"io"
	"os"
	"path"
	"regexp"
	"strings"

	"github.com/hoctl/hoctl/pkg/btrfs"
	"github.com/hoctl/hoctl/pkg/sshexec"
)

// Host ops: the dir primitive's operations that reach outside the
// replication dir by design, so that no restricted key may ever ask for
// them. snapshot reads the replicated subvolume (the operator's path) into
// the dir, send reads two snapshots of the dir out to the session, and
// promote writes a writable subvolume at the service's path. They run as
// `hoctl dir-op DIR OP...` through an unrestricted key's shell only: the
// target filter's forced command never runs dir-op, and its own
// `hoctl-dir` ops do not include these (filter.go refuses them). The dir's
// entries they touch are opened and checked exactly as the primitive's
// other ops do (subvol_linux.go), and acted on through descriptors.
const (
	opSnapshot = "snapshot" // snapshot SUBVOLUME NAME: a read-only snapshot of SUBVOLUME as NAME in the dir
	opSend     = "send"     // send NAME [PARENT=UUID]: NAME's send stream on stdout
	opPromote  = "promote"  // promote NAME=UUID SUBVOLUME ASIDE MARKER: SUBVOLUME a writable snapshot of NAME
	// and opInspect with a subvolume (inspect.go): inspect BASE SUBVOLUME
)

// uuidPattern is a subvolume UUID as listings show it.
var uuidPattern = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`)

// hostOpArgv is the command line of a host op in dir, run by prog.
func hostOpArgv(prog, dir string, op ...string) []string {
	return append([]string{prog, "dir-op", dir}, op...)
}

// hoctlOn is the hoctl a command on r runs: "hoctl" on a host's PATH, or
// this very binary for a host whose address is "local" (nil: as a plan
// shows it).
func hoctlOn(r sshexec.Runner) string {
	if _, local := r.(*sshexec.Local); local {
		if exe, err := os.Executable(); err == nil {
			return exe
		}
	}
	return "hoctl"
}

// PromoteCmd makes sub a writable snapshot of the received copy name in
// dir, whose UUID must be uuid; whatever is at sub is renamed to aside
// first; marker is written into sub's marker file.
func PromoteCmd(r sshexec.Runner, dir, name, uuid, sub, aside, marker string) sshexec.Cmd {
	return sshexec.Cmd{Argv: hostOpArgv(hoctlOn(r), dir, opPromote, name+"="+uuid, sub, aside, marker)}
}

// snapshotCmd makes the read-only snapshot name of sub in dir.
func snapshotCmd(r sshexec.Runner, dir, sub, name string) sshexec.Cmd {
	return sshexec.Cmd{Argv: hostOpArgv(hoctlOn(r), dir, opSnapshot, sub, name)}
}

// HostOp parses `hoctl dir-op DIR OP...`: a host op, or any op of the
// dir primitive (the filter's own, run here without a filter).
func HostOp(dir string, op []string) (*Request, error) {
	dir = path.Clean(dir)
	if !path.IsAbs(dir) || dir == "/" {
		return nil, fmt.Errorf("hoctl dir-op: the dir must be an absolute path below /, not %q", dir)
	}
	refuse := func() (*Request, error) {
		return nil, fmt.Errorf("hoctl dir-op: not an op of the dir primitive: %q", sshexec.QuoteArgv(op))
	}
	if len(op) == 0 {
		return refuse()
	}
	snapName := func(n string) bool {
		base, _, ok := btrfs.ParseSnapshotName(n)
		return ok && baseName.MatchString(base)
	}
	absPath := func(p string) bool { return path.IsAbs(p) && path.Clean(p) == p && p != "/" }
	nameUUID := func(a string) (string, string, bool) {
		n, u, ok := strings.Cut(a, "=")
		return n, u, ok && snapName(n) && uuidPattern.MatchString(u)
	}
	native := func(fn func(ctx context.Context, d *targetDir, stdout, stderr io.Writer) error) (*Request, error) {
		return &Request{native: func(ctx context.Context, _ io.Reader, stdout, stderr io.Writer) error {
			d, err := openTargetDir(dir)
			if err != nil {
				return err
			}
			defer d.close()
			return fn(ctx, d, stdout, stderr)
		}}, nil
	}
	switch {
	case len(op) == 3 && op[0] == opSnapshot && absPath(op[1]) && snapName(op[2]) && strings.HasPrefix(op[2], path.Base(op[1])+"@"):
		// Named for the subvolume it snapshots: never into another
		// replication's set of snapshots.
		return native(func(_ context.Context, d *targetDir, stdout, _ io.Writer) error {
			return d.snapshotInto(op[1], op[2], stdout)
		})
	case len(op) == 3 && op[0] == opInspect && baseName.MatchString(op[1]) && absPath(op[2]) && path.Base(op[2]) == op[1]:
		// The source's inspection: it reads the subvolume whose
		// snapshots the dir holds, and nothing else.
		return native(func(ctx context.Context, d *targetDir, stdout, _ io.Writer) error {
			return d.inspectSource(ctx, op[1], op[2], stdout)
		})
	case (len(op) == 2 || len(op) == 3) && op[0] == opSend && snapName(op[1]):
		parent, parentUUID := "", ""
		if len(op) == 3 {
			var ok bool
			if parent, parentUUID, ok = nameUUID(op[2]); !ok {
				return refuse()
			}
		}
		return native(func(ctx context.Context, d *targetDir, stdout, stderr io.Writer) error {
			return d.send(ctx, op[1], parent, parentUUID, stdout, stderr)
		})
	case len(op) == 5 && op[0] == opPromote && absPath(op[2]) && absPath(op[3]) && !strings.ContainsAny(op[4], "\n\x00"):
		name, uuid, ok := nameUUID(op[1])
		if !ok {
			return refuse()
		}
		return native(func(_ context.Context, d *targetDir, stdout, _ io.Writer) error {
			if err := promoteMount(op[2]); err != nil {
				return err
			}
			return d.promote(name, uuid, op[2], op[3], op[4], stdout)
		})
	}
	if run, _ := (Filter{Dir: dir}).dirOp(dir, op); run != nil {
		return &Request{native: run}, nil
	}
	return refuse()
}
