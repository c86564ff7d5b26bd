package replicate

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/hoctl/hoctl/pkg/btrfs"
	"github.com/hoctl/hoctl/pkg/sshexec"
)

// The replication dir primitive. Names in a replication dir are data a
// send stream may have planted (through `..` from its subvolume, which
// `btrfs receive -C` keeps inside the dir): a name with newlines and tabs
// forges entries in any listing read as text, a symlink named like a
// snapshot leads a path-based `btrfs subvolume delete` outside the dir,
// and a FIFO or a device under the lock's name hangs or is written by
// anything that opens it by path. So every operation hoctl does in a
// replication dir, on the unrestricted key as through the target filter,
// is one of the ops below, run by hoctl's own code on the host
// (subvol_linux.go): the dir is opened once, each entry by its single
// name relative to the dir's descriptor with O_NOFOLLOW (and O_PATH or
// O_NONBLOCK, so that opening never blocks or touches a device), checked
// on that descriptor, and acted on through it. Listings come back as JSON
// lines, so a name is a string, never a line to split.
//
// The op travels as the target filter's own command line, which a
// filtered key's forced command receives and an unrestricted key's shell
// runs:
//
//	SSH_ORIGINAL_COMMAND='hoctl-dir list services' hoctl target-filter /persist/services-standby
//
// so hoctl must be installed on both hosts of a replication (docs/replicate.md).

// Ops of the dir primitive (the first word after opPrefix).
const (
	opPrefix    = "hoctl-dir"
	opList      = "list"      // list BASE: every entry named BASE@*, one Entry per line
	opShow      = "show"      // show NAME: one Entry (a subvolume directly in the dir)
	opDelete    = "delete"    // delete NAME=ID...: each a subvolume directly in the dir, deleted by that id
	opLock      = "lock"      // lock REPLICATION HOLDER: the host lock, held until stdin ends
	opDirection = "direction" // direction REPLICATION HOST: records HOST as the source
	// and opInspect (inspect.go): inspect BASE, the dir's free space,
	// mount options and entries as one JSON document
)

// HostLockTimeout bounds taking a host lock: the lock is tried once,
// never waited for, and a host whose lock command has not answered by
// then (a hung filesystem, an overloaded host) fails the run.
const HostLockTimeout = 30 * time.Second

// Kinds of entry (Entry.Kind).
const (
	KindSubvolume = "subvolume" // a subvolume root directly in the dir
	KindDirectory = "directory" // any other directory
	KindSymlink   = "symlink"
	KindFile      = "file"
	KindFIFO      = "FIFO"
	KindBlock     = "block device"
	KindChar      = "character device"
	KindSocket    = "socket"
	KindGone      = "gone" // vanished while listed
)

var knownKinds = map[string]bool{KindSubvolume: true, KindDirectory: true, KindSymlink: true, KindFile: true, KindFIFO: true,
	KindBlock: true, KindChar: true, KindSocket: true, KindGone: true}

// Entry is one name in a replication dir, as the primitive saw it
// through its own descriptor. Subvolume fields are set only for
// KindSubvolume.
type Entry struct {
	Name         string    `json:"name"`
	Kind         string    `json:"kind"`
	ID           uint64    `json:"id,omitempty"`
	Gen          uint64    `json:"gen,omitempty"`
	UUID         string    `json:"uuid,omitempty"`
	ParentUUID   string    `json:"parent_uuid,omitempty"`
	ReceivedUUID string    `json:"received_uuid,omitempty"`
	ReadOnly     bool      `json:"readonly,omitempty"`
	Created      time.Time `json:"created,omitzero"`
}

// dirOpLine is the target filter's command line for op in dir.
func dirOpLine(dir string, op ...string) string { return dirOpLineBy("hoctl", dir, op...) }

// dirOpLineBy is dirOpLine with the program that runs it: "hoctl" on a
// host's PATH, or this very binary for a host whose address is "local"
// (a timer on the source host runs hoctl there, whatever its PATH).
func dirOpLineBy(prog, dir string, op ...string) string {
	return "SSH_ORIGINAL_COMMAND=" + sshexec.Quote(sshexec.QuoteArgv(append([]string{opPrefix}, op...))) +
		" " + sshexec.Quote(prog) + " target-filter " + sshexec.Quote(dir)
}

// dirCmd runs op of the primitive on dir, on r (nil: as a plan shows it).
func dirCmd(r sshexec.Runner, dir string, op ...string) sshexec.Cmd {
	return sshexec.Cmd{Script: dirOpLineBy(hoctlOn(r), dir, op...)}
}

// DirectionCmd records, in dir on the host it runs on, that host source
// is replication name's source (failover writes it on both hosts): through
// the primitive, so only ever into a regular file directly in dir.
func DirectionCmd(dir, name, source string) sshexec.Cmd {
	return dirCmd(nil, dir, opDirection, name, source)
}

// hostName is what a direction file may name: an inventory host.
var hostName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,252}$`)

// deleteArg names a subvolume to delete and the id it must still have.
func deleteArg(s btrfs.Subvolume) string {
	return s.Name() + "=" + strconv.FormatUint(s.ID, 10)
}

// ErrNoHoctl is a host without hoctl on its PATH.
var ErrNoHoctl = errors.New("hoctl is not installed there (not on the PATH of its SSH sessions): replication runs hoctl's own directory primitive on both hosts, which never follows a name a send stream planted (docs/replicate.md, \"hoctl on the hosts\")")

// dirOpError explains a failed op: hoctl missing, an older filter, or
// what the primitive said.
func dirOpError(host string, res *sshexec.Result, err error) error {
	if err == nil {
		err = errors.New("the command ended without its answer")
	}
	var ee *sshexec.ExitError
	if errors.As(err, &ee) {
		switch {
		case ee.Code == 127 && res != nil && strings.Contains(string(res.Stderr), "hoctl"):
			return fmt.Errorf("%s: %w", host, ErrNoHoctl)
		case ee.Code == 126 && res != nil && strings.Contains(string(res.Stderr), "target-filter: refused"):
			return fmt.Errorf("%s: its hoctl target-filter is older than this hoctl (it refuses the directory primitive): install this version there", host)
		}
	}
	return &opError{Host: host, Msg: strings.TrimPrefix(sshexec.FirstLine(res, err), "ERROR: "), Err: err}
}

// opError is what the primitive said on a host; it unwraps to the
// command's error (an *sshexec.ExitError when it ran and failed).
type opError struct {
	Host, Msg string
	Err       error
}

func (e *opError) Error() string { return e.Host + ": " + e.Msg }
func (e *opError) Unwrap() error { return e.Err }

// maxEntries bounds a listing: a dir holding more names under one base
// is refused rather than read into memory.
const maxEntries = 100000

// ParseEntries reads the primitive's listing: one JSON Entry per line.
// Anything else is an error for the whole listing (it came from hoctl on
// the host, so a line that is not an Entry means something else
// answered), never a guess.
func ParseEntries(out []byte) ([]Entry, error) {
	var entries []Entry
	for n, line := range bytes.Split(out, []byte("\n")) {
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		if len(entries) >= maxEntries {
			return nil, fmt.Errorf("more than %d entries", maxEntries)
		}
		var e Entry
		dec := json.NewDecoder(bytes.NewReader(line))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&e); err != nil || dec.More() {
			return nil, fmt.Errorf("listing line %d is not an entry: %q", n+1, truncate(string(line), 80))
		}
		if e.Name == "" || !knownKinds[e.Kind] {
			return nil, fmt.Errorf("listing line %d: an entry without a name or of an unknown kind %q", n+1, truncate(e.Kind, 40))
		}
		entries = append(entries, e)
	}
	return entries, nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}

// Classify splits a listing of dir into base's snapshots (subvolumes
// directly in dir named exactly base@<timestamp>) and everything else,
// described for the operator with its name quoted: ignored, never
// deleted, never guessed at.
func Classify(entries []Entry, dir, base string) (snaps []btrfs.Subvolume, foreign []string) {
	for _, e := range entries {
		b, _, ok := btrfs.ParseSnapshotName(e.Name)
		exact := ok && b == base && !strings.ContainsAny(e.Name, "/\x00")
		if e.Kind == KindSubvolume && exact && e.UUID != "" && e.ID != 0 {
			snaps = append(snaps, btrfs.Subvolume{ID: e.ID, Gen: e.Gen, UUID: e.UUID, ParentUUID: e.ParentUUID,
				ReceivedUUID: e.ReceivedUUID, Path: dir + "/" + e.Name, ReadOnly: e.ReadOnly, Created: e.Created})
			continue
		}
		why := "not named " + base + "@<UTC time>"
		if exact {
			why = "named like a snapshot, but not a subvolume directly in the dir"
		}
		foreign = append(foreign, fmt.Sprintf("%q: %s, %s: ignored, never deleted (something planted it, a send stream perhaps: check and remove it by hand)", e.Name, e.Kind, why))
	}
	return snaps, foreign
}
