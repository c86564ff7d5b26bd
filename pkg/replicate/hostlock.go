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

// hostLockScript holds the flock on $1 and writes the holder ($3) into it
// until its input ends; once locked it says so with the direction a
// failover recorded in $2 ("locked c1"). Files are opened by the shell
// only to read (never truncated) and written by dd with O_NOFOLLOW, so a
// symlink a send stream planted under their names is never written
// through.
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

// DirectionArgv writes host into a DirectionFile without following a
// link.
func DirectionArgv(dir, name string) []string {
	return []string{"dd", "of=" + DirectionFile(dir, name), "oflag=nofollow", "status=none"}
}

// HostLockArgv takes the lock of replication name in dir for holder. The
// target filter recognises exactly this argv and runs its own equivalent
// (no shell).
func HostLockArgv(dir, name, holder string) []string {
	return []string{"sh", "-c", hostLockScript, "hoctl-lock", HostLockFile(dir, name), DirectionFile(dir, name), holder}
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

// HostLock is a held host lock.
type HostLock struct {
	// Direction is the source host a failover recorded there, if any.
	Direction string

	in   *io.PipeWriter
	done chan struct{}
	once sync.Once
}

// Release ends the lock command, and with it the lock.
func (l *HostLock) Release() {
	l.once.Do(func() {
		_ = l.in.Close()
		<-l.done
	})
}

// AcquireHostLock takes replication name's lock in dir on r, without
// waiting. The lock command outlives ctx's cancellation only as long as
// the connection does; Release ends it.
func AcquireHostLock(ctx context.Context, r sshexec.Runner, dir, name, holder string) (*HostLock, error) {
	pr, pw := io.Pipe()
	outR, outW := io.Pipe()
	var stderr strings.Builder
	l := &HostLock{in: pw, done: make(chan struct{})}
	var res *sshexec.Result
	var runErr error
	go func() {
		defer close(l.done)
		// Its own context: the lock lasts the run, not the step that took it.
		res, runErr = r.Run(context.WithoutCancel(ctx), sshexec.Cmd{Argv: HostLockArgv(dir, name, holder), Stdin: pr, Stdout: outW,
			Stderr: &lockedBuilder{b: &stderr}, Timeout: 1 << 62})
		_ = outW.Close()
	}()
	first := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(outR)
		var lines []string
		for sc.Scan() {
			lines = append(lines, sc.Text())
			if d, ok := strings.CutPrefix(sc.Text()+" ", "locked "); ok {
				l.Direction = strings.TrimSpace(d)
				first <- "locked"
				_, _ = io.Copy(io.Discard, outR)
				return
			}
		}
		first <- strings.Join(lines, " ")
	}()
	select {
	case out := <-first:
		if out == "locked" {
			return l, nil
		}
		<-l.done
		file := HostLockFile(dir, name)
		var ee *sshexec.ExitError
		if errors.As(runErr, &ee) && ee.Code == hostLockExit || res != nil && res.ExitCode == hostLockExit {
			h := strings.TrimSpace(strings.TrimPrefix(out, "held by:"))
			if h == "" {
				h = "another hoctl run"
			}
			return nil, &HostLockedError{Host: r.Name(), File: file, Holder: h}
		}
		why := strings.TrimSpace(stderr.String())
		if why == "" && runErr != nil {
			why = runErr.Error()
		}
		return nil, fmt.Errorf("%s: taking the replication lock %s: %s", r.Name(), file, why)
	case <-ctx.Done():
		l.Release()
		return nil, ctx.Err()
	}
}

type lockedBuilder struct {
	mu sync.Mutex
	b  *strings.Builder
}

func (w *lockedBuilder) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}
