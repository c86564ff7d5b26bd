// Package filecopy puts a file from this machine on a host: atomically
// (a temporary file beside the destination, synced, given its mode and
// owner, then renamed over it), verified by the host's own SHA-256 of
// what it wrote, and not at all when the host's file already has the
// content, mode and owner asked for. The file streams over the host's
// SSH connection as the command's input; it is never held whole in
// memory. It needs only a POSIX shell and coreutils on the host.
package filecopy

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/hoctl/hoctl/pkg/format"
	"github.com/hoctl/hoctl/pkg/sshexec"
)

// Spec is what to copy where.
type Spec struct {
	// Src is a regular file on this machine.
	Src string
	// Dest is the absolute path on the host: the file, or, as scp and
	// Ansible's copy take it, a directory to put the file in under
	// Src's name. A trailing slash says it must be a directory.
	Dest string
	// Mode ("0644") is the file's mode; empty keeps an existing file's
	// mode and gives a new file DefaultMode.
	Mode string
	// Owner ("user", "user:group", numeric ids allowed) is the file's
	// owner; empty keeps an existing file's and leaves a new file to the
	// connecting user.
	Owner string
}

// DefaultMode is a new file's mode when none is asked for.
const DefaultMode = "0644"

var (
	modeRE  = regexp.MustCompile(`^0?[0-7]{3,4}$`)
	ownerRE = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_.-]*(:[A-Za-z0-9_][A-Za-z0-9_.-]*)?$`)
)

// Validate checks the spec's fields (not the source, see Source).
func (s Spec) Validate() error {
	if !path.IsAbs(s.Dest) || path.Clean(s.Dest) != strings.TrimSuffix(s.Dest, "/") && s.Dest != "/" {
		return fmt.Errorf("destination %q: expected a clean absolute path to a file or a directory", s.Dest)
	}
	if strings.ContainsAny(s.Dest, "\n\x00") || strings.ContainsAny(s.name(), "\n\x00") {
		return fmt.Errorf("destination %q (source %q): a newline or NUL in a path is refused", s.Dest, s.Src)
	}
	if s.Mode != "" {
		if _, err := NormMode(s.Mode); err != nil {
			return err
		}
	}
	if s.Owner != "" && !ownerRE.MatchString(s.Owner) {
		return fmt.Errorf("owner %q: expected user or user:group", s.Owner)
	}
	return nil
}

// name is what the file is called in a directory destination: the
// source's base name ("" without a source: Dest must be the file).
func (s Spec) name() string {
	if s.Src == "" {
		return ""
	}
	return filepath.Base(s.Src)
}

// intoDir says whether Dest can only be a directory.
func (s Spec) intoDir() bool { return strings.HasSuffix(s.Dest, "/") }

// NormMode is mode as four octal digits ("644" and "0644" are "0644").
func NormMode(mode string) (string, error) {
	if !modeRE.MatchString(mode) {
		return "", fmt.Errorf("mode %q: expected octal digits such as 0644 or 0600", mode)
	}
	n, err := strconv.ParseUint(mode, 8, 32)
	if err != nil || n > 0o7777 {
		return "", fmt.Errorf("mode %q: expected at most 07777", mode)
	}
	return fmt.Sprintf("%04o", n), nil
}

// Source is the local file to send: its size and SHA-256, read once,
// streaming.
type Source struct {
	Path string
	Size int64
	Sum  string
}

// ReadSource hashes the file at p; ctx stops a long read.
func ReadSource(ctx context.Context, p string) (*Source, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, err
	}
	defer func() { _ = f.Close() }()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%s: not a regular file", p)
	}
	h := sha256.New()
	n, err := io.Copy(h, &ctxReader{ctx: ctx, r: f})
	if err != nil {
		return nil, fmt.Errorf("%s: %w", p, err)
	}
	return &Source{Path: p, Size: n, Sum: hex.EncodeToString(h.Sum(nil))}, nil
}

// ctxReader stops a copy when ctx ends.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c *ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

// State is the destination as found on a host.
type State struct {
	// Path is the file: Dest, or Dest/<source's name> when Dest is a
	// directory there.
	Path   string
	Exists bool
	Mode   string // four octal digits
	// Owner is user:group by name, OwnerIDs uid:gid.
	Owner, OwnerIDs string
	Size            int64
	Sum             string
}

// inspectScript prints the file's path on one line (dest, or dest/name
// when dest is a directory, as scp and cp do; name "" never goes into a
// directory), then "absent" or "file MODE USER:GROUP UID:GID SIZE
// SHA256"; anything else the file may be is refused with a message on
// stderr and exit 3. A symbolic link is refused too: the rename would
// replace the link, not the file it points to (a link to a directory is
// a directory to put the file in, as for scp).
func inspectScript(dest, name string) string {
	q := sshexec.Quote(dest)
	into := ""
	switch {
	case strings.HasSuffix(dest, "/"):
		into = `if [ ! -d "$d" ]; then echo "$d is not a directory" >&2; exit 3; fi
d=${d%/}/` + sshexec.Quote(name) + "\n"
	case name != "":
		into = `if [ -d "$d" ]; then d=${d%/}/` + sshexec.Quote(name) + "; fi\n"
	}
	return `d=` + q + "\n" + into + `printf '%s\n' "$d"
if [ -L "$d" ]; then echo "$d is a symbolic link: copy to the file it points to" >&2; exit 3; fi
if [ ! -e "$d" ]; then
  p=$(dirname -- "$d")
  if [ ! -d "$p" ]; then echo "directory $p does not exist" >&2; exit 3; fi
  echo absent; exit 0
fi
if [ ! -f "$d" ]; then echo "$d exists and is not a regular file" >&2; exit 3; fi
s=$(sha256sum < "$d") || exit 1
echo "file $(stat -c '%a %U:%G %u:%g %s' -- "$d") ${s%% *}"`
}

// Inspect reads the state of the spec's file on the host: Dest, or the
// file of the source's name in it when Dest is a directory there.
func Inspect(ctx context.Context, r sshexec.Runner, s Spec, timeout time.Duration) (*State, error) {
	if s.intoDir() && s.name() == "" {
		return nil, fmt.Errorf("%s: destination %s is a directory and no source names the file in it", r.Name(), s.Dest)
	}
	res, err := r.Run(ctx, sshexec.Cmd{Script: inspectScript(s.Dest, s.name()), Timeout: timeout})
	if err != nil {
		return nil, hostErr(r, res, err)
	}
	return parseState(r.Name(), string(res.Stdout))
}

func parseState(host, out string) (*State, error) {
	p, line, _ := strings.Cut(out, "\n")
	if !path.IsAbs(p) {
		return nil, fmt.Errorf("%s: unexpected answer reading the destination: %q", host, firstLine(out))
	}
	line = strings.TrimSpace(line)
	if line == "absent" {
		return &State{Path: p}, nil
	}
	f := strings.Fields(line)
	if len(f) != 6 || f[0] != "file" {
		return nil, fmt.Errorf("%s: unexpected answer reading the destination: %q", host, firstLine(line))
	}
	mode, err := NormMode(f[1])
	if err != nil {
		return nil, fmt.Errorf("%s: %w", host, err)
	}
	size, err := strconv.ParseInt(f[4], 10, 64)
	if err != nil || len(f[5]) != 64 {
		return nil, fmt.Errorf("%s: unexpected answer reading the destination: %q", host, firstLine(line))
	}
	return &State{Path: p, Exists: true, Mode: mode, Owner: f[2], OwnerIDs: f[3], Size: size, Sum: f[5]}, nil
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(s, "\n")
	if len(s) > 200 {
		s = s[:200] + "…"
	}
	return s
}

// Want is the mode and owner the file must end with, given what the
// host has now: asked for, else kept, else the defaults (owner "" is the
// connecting user's, left alone).
func (s Spec) Want(st *State) (mode, owner string) {
	mode, owner = DefaultMode, s.Owner
	if s.Mode != "" {
		mode, _ = NormMode(s.Mode)
	} else if st != nil && st.Exists {
		mode = st.Mode
	}
	if owner == "" && st != nil && st.Exists {
		owner = st.Owner
	}
	return mode, owner
}

// ownerMatches reports whether the file's owner is want ("user" or
// "user:group", by name or id).
func ownerMatches(st *State, want string) bool {
	if want == "" {
		return true
	}
	u, g, hasGroup := strings.Cut(want, ":")
	for _, have := range []string{st.Owner, st.OwnerIDs} {
		hu, hg, _ := strings.Cut(have, ":")
		if hu == u && (!hasGroup || hg == g) {
			return true
		}
	}
	return false
}

// Changes is what a copy would change on a host in state st: nothing
// (the file is already as asked), or "new file", "content", "mode 0600
// → 0644", "owner a:b → c:d".
func (s Spec) Changes(src *Source, st *State) []string {
	if !st.Exists {
		return []string{"new file"}
	}
	mode, owner := s.Want(st)
	var out []string
	if st.Sum != src.Sum {
		out = append(out, "content")
	}
	if st.Mode != mode {
		out = append(out, "mode "+st.Mode+" → "+mode)
	}
	if !ownerMatches(st, owner) {
		out = append(out, "owner "+st.Owner+" → "+owner)
	}
	return out
}

// writeScript reads the file on its input into a temporary file beside
// dest (mktemp: mode 0600 until chmod, so no one reads it half written),
// syncs it, sets mode and owner, checks its SHA-256, and renames it over
// dest; the temporary file is removed on any failure.
func writeScript(dest, mode, owner, sum string) string {
	q := sshexec.Quote(dest)
	chown := ""
	if owner != "" {
		chown = "chown -- " + sshexec.Quote(owner) + ` "$t"` + "\n"
	}
	return `set -e
d=` + q + `
t=$(mktemp -- "$(dirname -- "$d")/.$(basename -- "$d").hoctl-XXXXXX")
trap 'rm -f -- "$t"' EXIT
cat > "$t"
sync -- "$t"
chmod ` + mode + ` -- "$t"
` + chown + `s=$(sha256sum < "$t")
if [ "${s%% *}" != ` + sum + ` ]; then echo "the written file's sha256 is ${s%% *}, not ` + sum + ` (the transfer was cut short, or the source changed)" >&2; exit 1; fi
mv -fT -- "$t" "$d"
trap - EXIT
sync -- "$(dirname -- "$d")" 2>/dev/null || true`
}

// Result is what Copy did on one host.
type Result struct {
	// Path is the file written (or left alone): see State.Path.
	Path string
	// Changed is empty when the host's file already was as asked.
	Changed []string
	Bytes   int64
	// Mode and Owner are what the file was given (or already had):
	// what Verify checks.
	Mode, Owner string
}

// Note is a one-line summary for the operator and the journal.
func (r *Result) Note() string {
	if len(r.Changed) == 0 {
		return "unchanged"
	}
	return fmt.Sprintf("written (%s, %d bytes)", strings.Join(r.Changed, ", "), r.Bytes)
}

// Copy makes the host's file (Dest, or the source's name in it when Dest
// is a directory there) the source's content with the spec's mode and
// owner, unless it already is. It reads the host's state first (the
// plan's state may be minutes old), then streams the file. progress, if
// set, is told of bytes as they are sent.
func Copy(ctx context.Context, r sshexec.Runner, s Spec, src *Source, timeout time.Duration, progress func(int64)) (*Result, error) {
	st, err := Inspect(ctx, r, s, timeout)
	if err != nil {
		return nil, err
	}
	changes := s.Changes(src, st)
	mode, owner := s.Want(st)
	if len(changes) == 0 {
		return &Result{Path: st.Path, Mode: mode, Owner: owner}, nil
	}
	f, err := os.Open(src.Path)
	if err != nil {
		return nil, err
	}
	defer func() { _ = f.Close() }()
	in := &countReader{r: bufio.NewReaderSize(f, 64<<10), progress: progress}
	res, err := r.Run(ctx, sshexec.Cmd{Script: writeScript(st.Path, mode, owner, src.Sum), Stdin: in, Timeout: timeout})
	if err != nil {
		return nil, hostErr(r, res, err)
	}
	return &Result{Path: st.Path, Changed: changes, Bytes: in.n, Mode: mode, Owner: owner}, nil
}

// hostErr is a failed script's reason: the host and the first line of
// its stderr, which says what was wrong (the exit status adds nothing);
// an unreachable host or a time limit stays the error it is.
func hostErr(r sshexec.Runner, res *sshexec.Result, err error) error {
	var ee *sshexec.ExitError
	if errors.As(err, &ee) && res != nil && strings.TrimSpace(string(res.Stderr)) != "" {
		return errors.New(sshexec.HostError(r.Name(), errors.New(sshexec.FirstLine(res, err))))
	}
	return err
}

type countReader struct {
	r        io.Reader
	n        int64
	progress func(int64)
}

func (c *countReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	if c.progress != nil && n > 0 {
		c.progress(int64(n))
	}
	return n, err
}

// ErrMismatch is a destination that, read back, is not what was asked.
var ErrMismatch = errors.New("the file on the host is not what was copied")

// Verify reads the destination back on the host and checks its SHA-256,
// and its mode and owner against those Copy gave it (mode, owner).
func Verify(ctx context.Context, r sshexec.Runner, s Spec, src *Source, mode, owner string, timeout time.Duration) error {
	st, err := Inspect(ctx, r, s, timeout)
	if err != nil {
		return err
	}
	if !st.Exists {
		return fmt.Errorf("%s: %s: %w: it does not exist", r.Name(), st.Path, ErrMismatch)
	}
	want := Spec{Src: s.Src, Dest: s.Dest, Mode: mode, Owner: owner}
	if c := want.Changes(src, st); len(c) > 0 {
		return fmt.Errorf("%s: %s: %w: %s differ(s) (sha256 %s, mode %s, owner %s)", r.Name(), st.Path, ErrMismatch, strings.Join(c, ", "), st.Sum, st.Mode, st.Owner)
	}
	return nil
}

// ProgressText is a transfer's progress line: bytes sent of the total,
// percent, rate and time left.
func ProgressText(sent, total int64, elapsed time.Duration) string {
	rate := float64(sent) / max(elapsed.Seconds(), 0.001)
	s := format.Bytes(sent)
	if total > 0 {
		s += fmt.Sprintf(" of %s (%d%%)", format.Bytes(total), sent*100/total)
	}
	s += ", " + format.Bytes(int64(rate)) + "/s"
	if total > sent && rate > 0 {
		s += ", ETA " + time.Duration(float64(total-sent)/rate*float64(time.Second)).Round(time.Second).String()
	}
	return s
}
