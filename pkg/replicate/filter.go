package replicate

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/hoctl/hoctl/pkg/btrfs"
	"github.com/hoctl/hoctl/pkg/iostreams"
	"github.com/hoctl/hoctl/pkg/sshexec"
)

// Filter is the forced command of a replication target's SSH key
// (authorized_keys: command="hoctl target-filter DIR",restrict ...). A key
// restricted to `btrfs receive` alone breaks every other command hoctl
// needs there (the seed's "empty stream"); Filter instead allows exactly
// the commands a replication into Dir sends, parsed as argv and confined
// to Dir and to snapshot names of hoctl's scheme. It never hands the line
// to a shell.
type Filter struct {
	Dir string
	// Base, when set (`hoctl target-filter DIR BASE`), is the one
	// snapshot base the key may name: list, show, delete and receive
	// only <Base>@<time>, so that a key for one replication never
	// touches another's snapshots, whatever dir it was given.
	Base string
}

// ours reports whether a snapshot base is one the filter lets through.
func (f Filter) ours(base string) bool { return f.Base == "" || base == f.Base }

// Request is a command the filter let through.
type Request struct {
	// Pipeline holds one argv, or two when the first feeds the second
	// (decompressing into btrfs receive).
	Pipeline [][]string
	// Watched: hoctl kept the session's input open only so that the
	// command stops when the session ends (sshexec's killable wrapper);
	// the command itself reads nothing.
	Watched bool
	// native, when set, is what runs instead of Pipeline: the filter's own
	// implementation of a command that must not resolve paths in the
	// target dir by name (subvol_linux.go).
	native func(ctx context.Context, stdin io.Reader, stdout, stderr io.Writer) error
	// stream, when set, sits before the pipeline's last command (btrfs
	// receive) and passes on only what it checked (stream.go), saying
	// on warn what it took out.
	stream func(dst io.Writer, src io.Reader, warn io.Writer) error
	// done, when set, runs once the pipeline has ended: it lets go of
	// the target dir the stream check held (one receive at a time, until
	// receive has applied the whole stream, not only until it was read).
	done func()
}

// DeniedError is a command the filter does not allow (a refused
// command line, exit 126 on the host; tasks.RefusedError is a runbook
// step whose before check refused).
type DeniedError struct {
	Line   string
	Reason string
}

func (e *DeniedError) Error() string {
	return fmt.Sprintf("hoctl target-filter: refused %q: %s", e.Line, e.Reason)
}

var baseName = regexp.MustCompile(`^[A-Za-z0-9._+-]+$`)

// Allow parses line (SSH_ORIGINAL_COMMAND) and says whether it is one of
// a replication's target commands.
func (f Filter) Allow(line string) (*Request, error) {
	dir := path.Clean(f.Dir)
	if !path.IsAbs(dir) || dir == "/" {
		return nil, fmt.Errorf("hoctl target-filter: the target dir must be an absolute path below /, not %q", f.Dir)
	}
	if f.Base != "" && !baseName.MatchString(f.Base) {
		return nil, fmt.Errorf("hoctl target-filter: the snapshot base must be a name such as services, not %q", f.Base)
	}
	cmd, watched := sshexec.Unwrap(line)
	refuse := func(why string) (*Request, error) { return nil, &DeniedError{Line: cmd, Reason: why} }
	pipeline, err := splitPipeline(cmd)
	if err != nil {
		return refuse(err.Error())
	}
	snapshot := func(p string) bool {
		if path.Dir(p) != dir || path.Clean(p) != p {
			return false
		}
		base, _, ok := btrfs.ParseSnapshotName(path.Base(p))
		return ok && baseName.MatchString(base) && f.ours(base)
	}
	// Receive always runs confined to dir (--chroot), also when an older
	// hoctl asks without it: the stream's paths are the sender's to choose.
	receive := ReceiveArgv(dir)
	isReceive := func(argv []string) bool {
		return slices.Equal(argv, receive) || slices.Equal(argv, []string{"btrfs", "receive", dir})
	}
	req := &Request{Pipeline: pipeline, Watched: watched}
	var held *targetDir
	req.done = func() {
		if held != nil {
			held.close()
		}
	}
	checked := func(dst io.Writer, src io.Reader, warn io.Writer) error {
		d, err := openTargetDir(dir)
		if err != nil {
			return &StreamError{Offset: -1, Reason: err.Error()}
		}
		held = d // closed by done, after receive ended
		if err := d.dedicated(); err != nil {
			return &StreamError{Offset: -1, Reason: err.Error()}
		}
		if err := d.exclusive(); err != nil {
			return &StreamError{Offset: -1, Reason: err.Error()}
		}
		// A stream may plant a setuid file or a device node inside the
		// dir, and then write to the device: only the mount keeps them
		// inert.
		if missing := d.missingMountOptions(); len(missing) > 0 {
			return &StreamError{Offset: -1, Reason: fmt.Sprintf("%s is mounted without %s: a send stream could plant a setuid file or a device node there, and write to the device; mount it nosuid,nodev (docs/security.md)",
				dir, strings.Join(missing, ","))}
		}
		return checkStreamWith(dst, src, d.streamUUIDs, f.Base, d, &streamPaths{}, warn)
	}
	if len(pipeline) == 2 {
		if slices.Equal(pipeline[0], DecompressArgv) && isReceive(pipeline[1]) {
			req.Pipeline[1] = receive
			req.stream = checked
			return req, nil
		}
		return refuse("the only pipeline allowed is " + sshexec.QuoteArgv(DecompressArgv) + " | " + sshexec.QuoteArgv(receive))
	}
	if len(pipeline) != 1 {
		return refuse("not a single command")
	}
	argv := pipeline[0]
	if (len(argv) == 4 || len(argv) == 5) && strings.HasPrefix(argv[0], "SSH_ORIGINAL_COMMAND=") && argv[1] == "hoctl" && argv[2] == "target-filter" {
		// The dir primitive's own line (dirOpLine, receiverLine): what an
		// unrestricted key's shell runs, and what this filter then runs
		// itself, with the line's base if it names one (never another
		// than the filter's own).
		if path.Clean(argv[3]) != dir {
			return refuse("the primitive's dir is not " + dir)
		}
		if len(argv) == 5 {
			if !baseName.MatchString(argv[4]) || !f.ours(argv[4]) {
				return refuse("the line's base is not " + f.Base)
			}
			f.Base = argv[4]
		}
		inner := strings.TrimPrefix(argv[0], "SSH_ORIGINAL_COMMAND=")
		op, err := splitPipeline(inner)
		if err == nil && len(op) >= 1 && len(op[0]) >= 1 && op[0][0] != opPrefix {
			// The receive (receiverLine): the checked receive, or nothing;
			// never the filter's line nested in itself.
			if strings.HasPrefix(op[0][0], "SSH_ORIGINAL_COMMAND=") {
				return refuse("the filter's line inside itself")
			}
			req, err := f.Allow(inner)
			if err != nil || req.stream == nil || req.Watched {
				return refuse("neither an op of the dir primitive nor the receive into " + dir)
			}
			req.Watched = watched
			return req, nil
		}
		if err != nil || len(op) != 1 || len(op[0]) < 2 || op[0][0] != opPrefix {
			return refuse("not an op of the dir primitive")
		}
		native, why := f.dirOp(dir, op[0][1:])
		if native == nil {
			return refuse(why)
		}
		return &Request{Watched: watched, native: native}, nil
	}
	if len(argv) > 1 && argv[0] == opPrefix {
		native, why := f.dirOp(dir, argv[1:])
		if native == nil {
			return refuse(why)
		}
		return &Request{Watched: watched, native: native}, nil
	}
	switch {
	case slices.Equal(argv, []string{"stat", "-f", "-c", "%T", dir}),
		slices.Equal(argv, []string{"df", "-B1", "--output=avail", dir}),
		slices.Equal(argv, MountArgv(dir)):
		return req, nil
	case isReceive(argv):
		req.Pipeline[0] = receive
		req.stream = checked
		return req, nil
	case len(argv) == 4 && slices.Equal(argv[:3], []string{"btrfs", "subvolume", "show"}) && snapshot(argv[3]):
		req.native = inDir(dir, func(d *targetDir, _ io.Reader, stdout, _ io.Writer) error {
			return d.show(path.Base(argv[3]), stdout)
		})
		return req, nil
	case len(argv) > 3 && slices.Equal(argv[:3], []string{"btrfs", "subvolume", "delete"}):
		for _, p := range argv[3:] {
			if !snapshot(p) {
				return refuse(fmt.Sprintf("deletes only snapshots <name>@<UTC time> directly in %s, not %q", dir, p))
			}
		}
		req.native = inDir(dir, func(d *targetDir, _ io.Reader, stdout, _ io.Writer) error {
			for _, p := range argv[3:] {
				if err := d.destroy(path.Base(p)); err != nil {
					return err
				}
				fmt.Fprintf(stdout, "Delete subvolume '%s'\n", p)
			}
			return nil
		})
		return req, nil
	case len(argv) == 7 && slices.Equal(argv[:4], []string{"sh", "-c", hostLockScript, "hoctl-lock"}):
		name, ok := strings.CutPrefix(path.Base(argv[4]), ".hoctl-replicate-")
		name, ok2 := strings.CutSuffix(name, ".lock")
		if ok && ok2 && baseName.MatchString(name) && slices.Equal(argv, HostLockArgv(dir, name, argv[6])) && holderText.MatchString(argv[6]) {
			req.native = inDir(dir, func(d *targetDir, stdin io.Reader, stdout, _ io.Writer) error {
				return d.lock(context.Background(), path.Base(argv[4]), path.Base(argv[5]), argv[6], stdin, stdout)
			})
			return req, nil
		}
		return refuse("not the replication lock of " + dir)
	case len(argv) > 9 && argv[0] == "find":
		base, _ := strings.CutSuffix(argv[len(argv)-9], "@*")
		if baseName.MatchString(base) && f.ours(base) && (slices.Equal(argv, ListArgv(dir, base)) || slices.Equal(argv, legacyListArgv(dir, base))) {
			req.native = inDir(dir, func(d *targetDir, _ io.Reader, stdout, stderr io.Writer) error {
				return d.list(base, stdout, stderr)
			})
			return req, nil
		}
	}
	return refuse(fmt.Sprintf("not a command replication into %s sends (see docs/replicate.md, \"Restricted target keys\")", dir))
}

// dirOp is one op of the dir primitive (dirop.go) on dir, or why not.
func (f Filter) dirOp(dir string, op []string) (native func(context.Context, io.Reader, io.Writer, io.Writer) error, why string) {
	snapName := func(n string) bool {
		base, _, ok := btrfs.ParseSnapshotName(n)
		return ok && baseName.MatchString(base) && f.ours(base)
	}
	switch {
	case len(op) == 2 && op[0] == opList && baseName.MatchString(op[1]) && f.ours(op[1]):
		return inDir(dir, func(d *targetDir, _ io.Reader, stdout, _ io.Writer) error { return d.listEntries(op[1], stdout) }), ""
	case len(op) == 2 && op[0] == opInspect && baseName.MatchString(op[1]) && f.ours(op[1]):
		return inDir(dir, func(d *targetDir, _ io.Reader, stdout, _ io.Writer) error { return d.inspectTarget(op[1], stdout) }), ""
	case len(op) == 2 && op[0] == opShow && snapName(op[1]):
		return inDir(dir, func(d *targetDir, _ io.Reader, stdout, _ io.Writer) error { return d.showEntry(op[1], stdout) }), ""
	case len(op) > 1 && op[0] == opDelete:
		type del struct {
			name string
			id   uint64
		}
		var dels []del
		for _, a := range op[1:] {
			n, idText, ok := strings.Cut(a, "=")
			id, err := strconv.ParseUint(idText, 10, 64)
			if !ok || err != nil || id == 0 || !snapName(n) {
				return nil, fmt.Sprintf("deletes only snapshots <name>@<UTC time>=<subvolume id> directly in %s, not %q", dir, a)
			}
			dels = append(dels, del{n, id})
		}
		return inDir(dir, func(d *targetDir, _ io.Reader, stdout, _ io.Writer) error {
			for _, x := range dels {
				if err := d.destroyID(x.name, x.id); err != nil {
					return err
				}
				fmt.Fprintf(stdout, "deleted %s\n", x.name)
			}
			return nil
		}), ""
	case len(op) == 3 && op[0] == opLock && baseName.MatchString(op[1]) && holderText.MatchString(op[2]):
		lock, direction := path.Base(HostLockFile(dir, op[1])), path.Base(DirectionFile(dir, op[1]))
		return inDir(dir, func(d *targetDir, stdin io.Reader, stdout, _ io.Writer) error {
			return d.lock(context.Background(), lock, direction, op[2], stdin, stdout)
		}), ""
	case len(op) == 3 && op[0] == opDirection && baseName.MatchString(op[1]) && hostName.MatchString(op[2]):
		return inDir(dir, func(d *targetDir, _ io.Reader, _, _ io.Writer) error {
			return d.writeDirection(path.Base(DirectionFile(dir, op[1])), op[2])
		}), ""
	}
	return nil, fmt.Sprintf("not an op of the dir primitive on %s", dir)
}

// exitStatus is a native command's non-zero status that is no error.
type exitStatus int

func (e exitStatus) Error() string { return fmt.Sprintf("exit status %d", int(e)) }

// inDir runs fn on the target dir, held open for it.
func inDir(dir string, fn func(d *targetDir, stdin io.Reader, stdout, stderr io.Writer) error) func(context.Context, io.Reader, io.Writer, io.Writer) error {
	return func(_ context.Context, stdin io.Reader, stdout, stderr io.Writer) error {
		d, err := openTargetDir(dir)
		if err != nil {
			return err
		}
		defer d.close()
		return fn(d, stdin, stdout, stderr)
	}
}

// splitPipeline splits a command line into argvs the way a POSIX shell
// would for the simple lines hoctl sends: words, single and double quotes,
// backslash escapes and `|` between commands. Anything that would make a
// shell do more (expansions, redirections, lists, globs, comments) is an
// error rather than a guess.
func splitPipeline(line string) ([][]string, error) {
	var (
		out     [][]string
		argv    []string
		word    strings.Builder
		inWord  bool
		quote   rune
		escaped bool
	)
	endWord := func() {
		if inWord {
			argv = append(argv, word.String())
			word.Reset()
			inWord = false
		}
	}
	for _, r := range line {
		switch {
		case escaped:
			word.WriteRune(r)
			escaped = false
		case quote == '\'':
			if r == '\'' {
				quote = 0
			} else {
				word.WriteRune(r)
			}
		case quote == '"':
			switch r {
			case '"':
				quote = 0
			case '$', '`', '\\':
				return nil, fmt.Errorf("%q inside double quotes", r)
			default:
				word.WriteRune(r)
			}
		case r == '\\':
			escaped, inWord = true, true
		case r == '\'' || r == '"':
			quote, inWord = r, true
		case r == ' ' || r == '\t':
			endWord()
		case r == '|':
			endWord()
			if len(argv) == 0 {
				return nil, errors.New("empty command in a pipeline")
			}
			out = append(out, argv)
			argv = nil
		case strings.ContainsRune("\n;&<>()$`*?[]{}", r) || !inWord && strings.ContainsRune("~#", r):
			return nil, fmt.Errorf("%q outside quotes", r)
		default:
			word.WriteRune(r)
			inWord = true
		}
	}
	if quote != 0 || escaped {
		return nil, errors.New("unterminated quote")
	}
	endWord()
	if len(argv) == 0 {
		return nil, errors.New("empty command")
	}
	return append(out, argv), nil
}

// Exec runs an allowed request with the filter's own standard streams and
// returns its exit status: the last command's, or the first failing one's
// in a pipeline (a failed decompression must not pass for a receive that
// merely saw its input end). A watched request reads nothing and is
// killed when stdin ends, which is what hoctl's wrapper would have done.
func (r *Request) Exec(ctx context.Context, stdin io.Reader, stdout, stderr io.Writer) (int, error) {
	if r.done != nil {
		defer r.done()
	}
	if r.native != nil {
		err := r.native(ctx, stdin, stdout, stderr)
		var status exitStatus
		switch {
		case err == nil:
			return 0, nil
		case errors.As(err, &status):
			return int(status), nil
		}
		fmt.Fprintln(stderr, "ERROR:", err)
		return 1, nil
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if _, ok := stderr.(*os.File); !ok {
		stderr = iostreams.SyncWriter(stderr) // the stages write to it at once
	}
	cmds := make([]*exec.Cmd, len(r.Pipeline))
	for i, argv := range r.Pipeline {
		cmds[i] = exec.CommandContext(ctx, argv[0], argv[1:]...)
		cmds[i].Stderr = stderr
	}
	if !r.Watched {
		cmds[0].Stdin = stdin
	}
	for i := 0; i+1 < len(cmds); i++ {
		pr, err := cmds[i].StdoutPipe()
		if err != nil {
			return 0, err
		}
		cmds[i+1].Stdin = pr
	}
	last := cmds[len(cmds)-1]
	last.Stdout = stdout
	var (
		streamSrc io.Reader
		streamDst *os.File
		streamIn  *os.File
	)
	if r.stream != nil && !r.Watched {
		pr, pw, err := os.Pipe()
		if err != nil {
			return 1, err
		}
		streamSrc, last.Stdin, streamDst, streamIn = last.Stdin, pr, pw, pr
		defer func() { _ = pw.Close() }()
	}
	for i, c := range cmds {
		if err := c.Start(); err != nil {
			for _, started := range cmds[:i] {
				_ = started.Process.Kill()
				_ = started.Wait()
			}
			return 127, err
		}
	}
	// The checked stream: receive gets only what the check passed, and a
	// refused stream stops receive before it finishes the subvolume.
	streamDone := make(chan error, 1)
	if streamDst != nil {
		_ = streamIn.Close() // receive's now
		go func() {
			err := r.stream(streamDst, streamSrc, stderr)
			_ = streamDst.Close()
			var refused *StreamError
			if errors.As(err, &refused) {
				cancel()
			} else if c, ok := streamSrc.(io.Closer); ok && err != nil {
				_ = c.Close() // receive stopped reading: so does the stage before it
			}
			streamDone <- err
		}()
	} else {
		streamDone <- nil
	}
	// Before any Wait: Wait closes a stage's output pipe, which the check
	// may still be reading.
	streamErr := <-streamDone
	// Watched only once every stage has started: input that ends at once
	// would otherwise cancel the context before Start, which then refuses
	// to run the command and the filter reported 127 "context canceled"
	// instead of a stopped command.
	if r.Watched {
		go func() {
			_, _ = io.Copy(io.Discard, stdin)
			cancel()
		}()
	}
	status := 0
	for _, c := range cmds {
		err := c.Wait()
		var ee *exec.ExitError
		switch {
		case err == nil:
		case errors.As(err, &ee):
			code := ee.ExitCode()
			if code < 0 {
				code = 128 + 15 // killed: reported like a shell would
			}
			if status == 0 {
				status = code
			}
		default:
			return 1, err
		}
	}
	var refused *StreamError
	if errors.As(streamErr, &refused) {
		return 1, refused
	}
	return status, nil
}
