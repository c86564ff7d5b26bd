package sshexec

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/ssh"
)

// An executor is one long-lived shell per connection that runs commands
// sent to it over its stdin, so that a command costs the host two forks
// instead of a new SSH session (sshd forking a session process and
// starting the login shell); docs/ssh.md#the-executor and
// docs/benchmarks.md say what that saves. A connection's first command
// still takes a session of its own (a one-shot `hoctl run` gains nothing
// from an executor) unless the pool is eager (runbooks), and the
// executor starts with the second.
//
// Protocol, per command: hoctl writes a random marker line, the command
// line, and the marker again. The executor runs the command in the
// background in a subshell with stdin /dev/null, bracketed by "M start"
// and "M end RC" on stdout and "M start" / "M end" on stderr, and goes back
// to reading its stdin. hoctl forwards what lies between the markers and
// sends the next command only after both end markers, so commands never
// overlap. When stdin ends (hoctl cancels a command by closing the
// executor, or the connection dies) the executor kills its process group,
// which is the session's alone: the running command dies with it.
//
// Limits, by design: commands with input use a session of their own; a
// command that leaves a background process writing to its stdout can leak
// that output into a later command of the same executor (a session would
// instead hang until that process exits); output before a command's start
// marker is dropped. A host whose account cannot run the executor (a
// forced command, a restricted shell) never answers its ready line, and
// the connection falls back to sessions.
//
// The script is run by the account's login shell, like any session's
// command, so commands see the same shell (bash on NixOS) either way.
const executorScript = `exec 3<&0 </dev/null
printf '%s ready\n' READY
while IFS= read -r m <&3; do
  c=
  while IFS= read -r l <&3; do [ "$l" = "$m" ] && break; c="$c$l
"; done
  { printf '%s start\n' "$m"; printf '%s start\n' "$m" >&2; (eval "$c") </dev/null; r=$?; printf '%s end %d\n' "$m" "$r"; printf '%s end\n' "$m" >&2; } &
done
kill -TERM 0`

type executor struct {
	sess  *ssh.Session
	stdin io.WriteCloser
	out   *demux
	err   *demux
	dead  chan struct{} // closed when the session ends
}

func randomMarker() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return "hoctl-" + hex.EncodeToString(b)
}

// startExecutor opens the executor session and waits for its ready line.
func (c *Conn) startExecutor(ctx context.Context) (*executor, error) {
	sess, err := c.client.NewSession()
	if err != nil {
		return nil, err
	}
	stdin, err := sess.StdinPipe()
	if err != nil {
		_ = sess.Close()
		return nil, err
	}
	stdout, err := sess.StdoutPipe()
	if err != nil {
		_ = sess.Close()
		return nil, err
	}
	stderr, err := sess.StderrPipe()
	if err != nil {
		_ = sess.Close()
		return nil, err
	}
	ready := randomMarker()
	if err := sess.Start(strings.Replace(executorScript, "READY", ready, 1)); err != nil {
		_ = sess.Close()
		return nil, err
	}
	e := &executor{sess: sess, stdin: stdin, out: newDemux(stdout), err: newDemux(stderr), dead: make(chan struct{})}
	go func() { _ = sess.Wait(); close(e.dead) }()
	go e.out.pump()
	go e.err.pump()
	wait := time.NewTimer(c.target.ConnectTimeout)
	defer wait.Stop()
	select {
	case <-e.out.waitFor(ready + " ready\n"):
		return e, nil
	case <-wait.C:
	case <-e.dead:
	case <-ctx.Done():
	}
	e.close()
	return nil, errors.New("executor did not start")
}

func (e *executor) close() {
	_ = e.stdin.Close()
	_ = e.sess.Close()
}

// errNotStarted is an executor that ended before the command began: it is
// safe to run the command another way.
var errNotStarted = errors.New("executor ended before the command started")

// run sends one command and forwards its output until both end markers.
func (e *executor) run(ctx context.Context, line string, stdout, stderr io.Writer) (int, error) {
	m := randomMarker()
	outDone := e.out.expect(m, stdout, true)
	errDone := e.err.expect(m, stderr, false)
	if _, err := io.WriteString(e.stdin, m+"\n"+line+"\n"+m+"\n"); err != nil {
		return -1, errNotStarted
	}
	// Whatever happens, nothing may write to this command's writers once
	// run returns: the caller reads them.
	defer e.out.detach(m)
	defer e.err.detach(m)
	var code int
	var gotOut, gotErr bool
	for !gotOut || !gotErr {
		select {
		case r := <-outDone:
			code, gotOut = r, true
		case <-errDone:
			gotErr = true
		case <-e.dead:
			if !e.out.started(m) {
				return -1, errNotStarted
			}
			return -1, errors.New("executor session ended during the command")
		case <-ctx.Done():
			return -1, ctx.Err()
		}
	}
	return code, nil
}

// demux reads one output stream of the executor and hands the bytes
// between a command's markers to that command's writer.
type demux struct {
	r io.Reader

	mu      sync.Mutex
	buf     []byte
	waiters map[string]chan struct{} // raw sequences awaited (the ready line)
	cur     *expectation
	changed chan struct{}
}

type expectation struct {
	marker  string
	w       io.Writer
	started bool
	withRC  bool
	done    chan int
}

func newDemux(r io.Reader) *demux {
	return &demux{r: r, waiters: map[string]chan struct{}{}, changed: make(chan struct{}, 1)}
}

func (d *demux) waitFor(seq string) <-chan struct{} {
	ch := make(chan struct{})
	d.mu.Lock()
	d.waiters[seq] = ch
	d.process()
	d.mu.Unlock()
	return ch
}

func (d *demux) expect(marker string, w io.Writer, withRC bool) <-chan int {
	ex := &expectation{marker: marker, w: w, withRC: withRC, done: make(chan int, 1)}
	d.mu.Lock()
	d.cur = ex
	d.process()
	d.mu.Unlock()
	return ex.done
}

// detach stops forwarding output to the command with marker m.
func (d *demux) detach(m string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.cur != nil && d.cur.marker == m {
		d.cur = nil
	}
}

// started reports whether the command with marker m has begun.
func (d *demux) started(m string) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.cur == nil || d.cur.marker != m || d.cur.started
}

func (d *demux) pump() {
	b := make([]byte, 32<<10)
	for {
		n, err := d.r.Read(b)
		if n > 0 {
			d.mu.Lock()
			d.buf = append(d.buf, b[:n]...)
			d.process()
			d.mu.Unlock()
		}
		if err != nil {
			return
		}
	}
}

// process consumes d.buf as far as it can; d.mu is held.
func (d *demux) process() {
	for seq, ch := range d.waiters {
		if i := bytes.Index(d.buf, []byte(seq)); i >= 0 {
			d.buf = d.buf[i+len(seq):]
			close(ch)
			delete(d.waiters, seq)
		}
	}
	ex := d.cur
	if ex == nil {
		// Between commands: anything here is stray output; keep only what
		// could be the start of a marker line.
		d.buf = keepTail(d.buf, 128)
		return
	}
	if !ex.started {
		start := []byte(ex.marker + " start\n")
		i := bytes.Index(d.buf, start)
		if i < 0 {
			d.buf = keepTail(d.buf, len(start)-1)
			return
		}
		d.buf = d.buf[i+len(start):]
		ex.started = true
	}
	end := []byte(ex.marker + " end")
	i := bytes.Index(d.buf, end)
	if i < 0 {
		// Forward all but what could be the beginning of the end marker.
		safe := len(d.buf) - (len(end) - 1)
		if safe > 0 {
			_, _ = ex.w.Write(d.buf[:safe])
			d.buf = d.buf[safe:]
		}
		return
	}
	nl := bytes.IndexByte(d.buf[i:], '\n')
	if nl < 0 {
		if i > 0 {
			_, _ = ex.w.Write(d.buf[:i])
			d.buf = d.buf[i:]
		}
		return // the rest of the end line has not arrived yet
	}
	_, _ = ex.w.Write(d.buf[:i])
	code := 0
	if ex.withRC {
		code, _ = strconv.Atoi(string(bytes.TrimSpace(d.buf[i+len(end) : i+nl])))
	}
	d.buf = d.buf[i+nl+1:]
	d.cur = nil
	ex.done <- code
}

func keepTail(b []byte, n int) []byte {
	if len(b) <= n {
		return b
	}
	return append([]byte(nil), b[len(b)-n:]...)
}

// executorRun runs cmd through the connection's executor when it is idle
// and usable, reporting ok=false when the caller should use a session.
// ctx already carries the command's deadline (Conn.Run).
func (c *Conn) executorRun(ctx context.Context, cmd Cmd) (res *Result, err error, ok bool) {
	// A connection's first command takes a session: most connections of
	// a one-shot `hoctl run` carry one command, and the executor would
	// only add its start-up to it.
	// Secrets take a session: its input carries them (see Cmd.Secrets).
	if (c.commands.Add(1) == 1 && !c.eager) || cmd.Stdin != nil || len(cmd.Secrets) > 0 || c.noExecutor.Load() {
		return nil, nil, false
	}
	if !c.execMu.TryLock() {
		return nil, nil, false // busy with another command: use a session
	}
	defer c.execMu.Unlock()
	if c.noExecutor.Load() {
		return nil, nil, false // found unusable while we waited
	}
	if c.exec == nil {
		// The executor holds one session slot for its life.
		select {
		case c.sem <- struct{}{}:
		case <-ctx.Done():
			return nil, c.wrapCtx(ctx), true
		case <-c.dead:
			return nil, c.lost(), true
		}
		e, err := c.startExecutor(ctx)
		if err != nil {
			<-c.sem
			if ctx.Err() != nil {
				return nil, c.wrapCtx(ctx), true
			}
			if c.isDead() {
				return nil, c.lost(), true
			}
			c.noExecutor.Store(true)
			return nil, nil, false
		}
		c.exec = e
	}
	capt := newCapture()
	start := time.Now()
	code, rerr := c.exec.run(ctx, withBecome(cmd.Line(), c.target.Become, nil), capt.stdout(cmd), capt.stderr(cmd))
	res = &Result{Host: c.target.Name, ExitCode: code, Duration: time.Since(start)}
	capt.fill(res, cmd)
	if rerr != nil {
		// Cancelled, timed out or broken: closing the executor's input
		// makes it kill the command's process group. A new one starts
		// with the next command.
		c.exec.close()
		c.exec = nil
		<-c.sem
		res.ExitCode = -1
		switch {
		case ctx.Err() != nil:
			return res, c.wrapCtx(ctx), true
		case c.isDead():
			return nil, c.lost(), true
		case errors.Is(rerr, errNotStarted):
			return nil, nil, false // nothing ran: a session will do it
		}
		return res, fmt.Errorf("%s: %w", c.target.Name, rerr), true
	}
	if code != 0 {
		return res, &ExitError{Host: c.target.Name, Code: code, Stderr: tail(capt.stderrTail(), 3)}, true
	}
	return res, nil, true
}
