package replicate

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"path"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/hoctl/hoctl/pkg/sshexec"
)

// A replication's lock on the hosts themselves: two runs of one
// replication started on different machines (a timer on the source and
// an operator's workstation) each hold a local lock of their own, so
// each run also holds an flock on a file beside the snapshots on both
// hosts, <dir>/.hoctl-replicate-<name>.lock, for its whole run. The same
// two files serve both directions (the source's snapshot dir is where the
// other direction receives). A long-lived command on the run's own SSH
// connection holds it; it ends, and the lock goes, when hoctl closes its
// input or the connection drops.

// hostLockExit is the lock command's status when another run holds it.
const hostLockExit = 75

// hostLockScript is the lock command an older hoctl sends (HostLockArgv);
// the target filter recognises it and takes the lock with its own code
// (targetDir.lock), as this hoctl does through the dir primitive's lock
// op. It is kept only so that a target upgraded first still serves an
// older workstation.
const hostLockScript = `dd of="$1" oflag=nofollow conv=notrunc count=0 status=none || exit 1
exec 9<"$1"
if ! flock -n 9; then printf 'held by: '; dd if="$1" iflag=nofollow bs=512 count=1 status=none; exit 75; fi
printf '%s\n' "$3" | dd of="$1" oflag=nofollow status=none || exit 1
echo "locked $(dd if="$2" iflag=nofollow bs=256 count=1 status=none 2>/dev/null | head -n 1)"
exec cat >/dev/null`

// HostLockFile is the lock file of replication name in dir.
func HostLockFile(dir, name string) string {
	return path.Join(dir, ".hoctl-replicate-"+name+".lock")
}

// DirectionFile records, on both hosts, which end of replication name is
// its source since the last failover (failover writes it): the direction
// guard without Consul.
func DirectionFile(dir, name string) string {
	return path.Join(dir, ".hoctl-replicate-"+name+".direction")
}

// HostLockArgv is an older hoctl's lock command (hostLockScript). The
// target filter recognises exactly this argv and runs its own equivalent
// (no shell).
func HostLockArgv(dir, name, holder string) []string {
	return []string{"sh", "-c", hostLockScript, "hoctl-lock", HostLockFile(dir, name), DirectionFile(dir, name), holder}
}

// hostLockCmd takes the lock of replication name in dir for holder,
// through the dir primitive.
func hostLockCmd(r sshexec.Runner, dir, name, holder string) sshexec.Cmd {
	return dirCmd(r, dir, opLock, name, holder)
}

// holderText is what a holder may say of itself: printable, one line.
var holderText = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9 _.,:;@()+/=-]{0,199}$`)

// HostLockedError is a replication another run holds on a host.
type HostLockedError struct {
	Host, File, Holder string
}

func (e *HostLockedError) Error() string {
	return fmt.Sprintf("%s: replication lock %s is held by %s: another run of this replication is going on (a timer on the source, or another workstation); wait for it", e.Host, e.File, e.Holder)
}

// DirectionError is a replication run against the direction a failover
// recorded.
type DirectionError struct {
	Name, Source, Target, Where string
}

func (e *DirectionError) Error() string {
	return fmt.Sprintf("replication %s runs %s → %s since a failover (%s): run hoctl replicate %s %s",
		e.Name, e.Source, e.Target, e.Where, e.Source, e.Target)
}

// recordedSource reports whether Consul's record of the direction
// (Options.Recorded) names this run's source: then a direction file
// naming the target predates the failover that wrote the record (which
// could not reach that host), and is stale. No reader, no record or no
// answer from Consul is no: the file stands.
func (r *Run) recordedSource(ctx context.Context) bool {
	if r.Opts.Recorded == nil {
		return false
	}
	kv, err := r.Opts.Recorded(ctx)
	if err != nil {
		return false
	}
	src, _, ok, err := kv.Get(ctx, DirectionKey(r.Ends.Name))
	return err == nil && ok && src == r.Ends.SourceHost
}

// HostLock is a held host lock.
type HostLock struct {
	// Direction is the source host a failover recorded there, if any.
	Direction string

	in     *io.PipeWriter
	cancel context.CancelFunc
	done   chan struct{}
	once   sync.Once
}

// Release ends the lock command, and with it the lock.
func (l *HostLock) Release() {
	l.once.Do(func() {
		_ = l.in.Close()
		<-l.done
		l.cancel()
	})
}

// abandon stops a lock command that never answered: its input closed and
// the remote command cancelled, whatever it is blocked in.
func (l *HostLock) abandon() {
	l.once.Do(func() {
		_ = l.in.Close()
		l.cancel()
		<-l.done
	})
}

// AcquireHostLock takes replication name's lock in dir on r, without
// waiting for another holder: a held lock fails at once, saying who holds
// it, and a lock command that has not answered within HostLockTimeout
// fails the run. The lock is the dir primitive's (a regular file directly
// in dir, never a link, FIFO or device). The lock command outlives ctx's
// cancellation only as long as the connection does; Release ends it.
func AcquireHostLock(ctx context.Context, r sshexec.Runner, dir, name, holder string) (*HostLock, error) {
	return acquireHostLock(ctx, r, dir, name, holder, HostLockTimeout)
}

func acquireHostLock(ctx context.Context, r sshexec.Runner, dir, name, holder string, bound time.Duration) (*HostLock, error) {
	pr, pw := io.Pipe()
	outR, outW := io.Pipe()
	// The host's answer is its own: what is kept of it is bounded
	// (maxLockAnswer), however much it writes.
	stderr := sshexec.NewHeadTail(maxLockAnswer, maxLockAnswer)
	// Its own context: the lock lasts the run, not the step that took it.
	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	l := &HostLock{in: pw, cancel: cancel, done: make(chan struct{})}
	var res *sshexec.Result
	var runErr error
	cmd := hostLockCmd(r, dir, name, holder)
	cmd.Stdin, cmd.Stdout, cmd.Stderr, cmd.Timeout = pr, outW, stderr, 1<<62
	go func() {
		defer close(l.done)
		res, runErr = r.Run(runCtx, cmd)
		_ = outW.Close()
	}()
	// The lock is the first command a run sends. A key forced to `btrfs
	// receive` runs receive on whatever hoctl sends, and would wait on the
	// lock's open input for a stream until the bound: the input starts
	// with a line that is no send stream, so such a key fails at once
	// ("unexpected header"). hoctl's own lock discards its input.
	go func() { _, _ = io.WriteString(pw, notAStream) }()
	timer := time.NewTimer(bound)
	defer timer.Stop()
	first := make(chan string, 1)
	go func() {
		// Lines are read at most maxLockAnswer bytes each (the rest of a
		// longer one is dropped) and the output is read to its end, so
		// the command is never left blocked on a reader that stopped.
		br := bufio.NewReaderSize(outR, 4096)
		var said, line []byte
		for {
			frag, err := br.ReadSlice('\n')
			line = append(line, frag[:min(len(frag), maxLockAnswer-len(line))]...)
			if errors.Is(err, bufio.ErrBufferFull) {
				continue
			}
			text := strings.TrimRight(string(line), "\n")
			line = line[:0]
			if d, ok := strings.CutPrefix(text+" ", "locked "); ok {
				l.Direction = strings.TrimSpace(d)
				first <- "locked"
				_, _ = io.Copy(io.Discard, outR)
				return
			}
			if text != "" && len(said) < maxLockAnswer {
				said = append(said, text[:min(len(text), maxLockAnswer-len(said))]+" "...)
			}
			if err != nil {
				break
			}
		}
		first <- strings.TrimSpace(string(said))
	}()
	select {
	case out := <-first:
		if out == "locked" {
			return l, nil
		}
		l.abandon() // the command has ended: this only waits for it
		file := HostLockFile(dir, name)
		var ee *sshexec.ExitError
		if errors.As(runErr, &ee) && ee.Code == hostLockExit || res != nil && res.ExitCode == hostLockExit {
			h := strings.TrimSpace(strings.TrimPrefix(out, "held by:"))
			if h == "" {
				h = "another hoctl run"
			}
			return nil, &HostLockedError{Host: r.Name(), File: file, Holder: h}
		}
		why := strings.TrimSpace(string(stderr.Bytes()))
		if strings.Contains(why, "unexpected header") || strings.Contains(why, "empty stream is not considered valid") {
			return nil, restrictedKeyError(r.Name())
		}
		if res == nil {
			res = &sshexec.Result{}
		}
		res.Stderr = []byte(why)
		return nil, fmt.Errorf("taking the replication lock %s: %w", file, dirOpError(r.Name(), res, runErr))
	case <-timer.C:
		l.abandon()
		return nil, fmt.Errorf("%s: taking the replication lock %s: no answer within %s (the host or its filesystem hangs)", r.Name(), HostLockFile(dir, name), bound)
	case <-ctx.Done():
		l.abandon()
		return nil, ctx.Err()
	}
}

// notAStream is what the lock command's input starts with: longer than a
// send stream's header, and not one.
const notAStream = "hoctl: the replication lock's input, not a send stream\n"

// maxLockAnswer bounds what is kept of the lock command's answer: its
// output line and its error text.
const maxLockAnswer = 4096
