package sshexec

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hoctl/hoctl/pkg/trace"
	"golang.org/x/crypto/ssh"
)

// cancelGrace is how long a cancelled remote command gets to exit after
// SIGTERM before its session is torn down, and then how long hoctl waits
// for the torn-down session before it stops waiting: together they keep
// --timeout and Ctrl-C honoured within a second.
const cancelGrace = 400 * time.Millisecond

// Conn is an SSH connection to one host. It is safe for concurrent use;
// at most MaxSessionsPerHost commands run on it at once, the others wait.
type Conn struct {
	trace  *trace.Log
	target *Target
	client *ssh.Client
	sem    chan struct{}

	deadOnce sync.Once
	dead     chan struct{}
	deadErr  error

	// The connection's executor (see executor.go): one command at a time,
	// others take sessions.
	execMu     sync.Mutex
	exec       *executor
	noExecutor atomic.Bool
	commands   atomic.Int64
	eager      bool // the first command may use the executor too
}

// Name implements Runner.
func (c *Conn) Name() string { return c.target.Name }

// Target returns what the connection was made to.
func (c *Conn) Target() *Target { return c.target }

func (c *Conn) markDead(err error) {
	c.deadOnce.Do(func() {
		c.deadErr = err
		close(c.dead)
	})
}

func (c *Conn) isDead() bool {
	select {
	case <-c.dead:
		return true
	default:
		return false
	}
}

// keepalive proves the host still answers; without it a host that dies
// silently leaves every session blocked forever (golang/go#19338). A reply
// must come within one keepalive period, so a hung host is noticed within
// that period and its sessions fail.
func (c *Conn) keepalive() {
	half := c.target.Keepalive / 2
	tick := time.NewTicker(half)
	defer tick.Stop()
	for {
		select {
		case <-c.dead:
			return
		case <-tick.C:
		}
		replied := make(chan error, 1)
		go func() {
			_, _, err := c.client.SendRequest("keepalive@openssh.com", true, nil)
			replied <- err
		}()
		timer := time.NewTimer(half)
		select {
		case err := <-replied:
			timer.Stop()
			if err != nil {
				c.markDead(err)
				_ = c.client.Close()
				return
			}
		case <-timer.C:
			c.markDead(fmt.Errorf("no keepalive reply within %s", c.target.Keepalive))
			_ = c.client.Close()
			return
		case <-c.dead:
			timer.Stop()
			return
		}
	}
}

func (c *Conn) lost() error {
	err := c.deadErr
	if err == nil {
		err = errors.New("connection closed")
	}
	return &ConnError{Host: c.target.Name, Addr: c.target.HostPort(), Reason: ReasonLost, Err: err}
}

// Run implements Runner.
func (c *Conn) Run(ctx context.Context, cmd Cmd) (*Result, error) {
	done := traceRun(c.trace, c.target, cmd)
	res, err := c.run(ctx, cmd)
	done(res, err)
	return res, err
}

func (c *Conn) run(ctx context.Context, cmd Cmd) (*Result, error) {
	// One deadline for the command, whichever way it runs.
	ctx, cancel := withCommandTimeout(ctx, cmd, c.target.CommandTimeout)
	defer cancel()
	secrets, err := secretNames(cmd)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", c.target.Name, err)
	}
	if res, err, ok := c.executorRun(ctx, cmd); ok {
		return res, err
	}

	select {
	case c.sem <- struct{}{}:
		defer func() { <-c.sem }()
	case <-ctx.Done():
		return nil, c.wrapCtx(ctx)
	case <-c.dead:
		return nil, c.lost()
	}

	sess, err := c.client.NewSession()
	if err != nil {
		if c.isDead() {
			return nil, c.lost()
		}
		return nil, &ConnError{Host: c.target.Name, Addr: c.target.HostPort(), Reason: ReasonLost, Err: fmt.Errorf("open session: %w", err)}
	}
	defer func() { _ = sess.Close() }()

	res := &Result{Host: c.target.Name}
	capt := newCapture()
	outW, errW := &cutWriter{w: capt.stdout(cmd)}, &cutWriter{w: capt.stderr(cmd)}
	sess.Stdout, sess.Stderr = outW, errW
	// Stdin is copied by our own goroutine: the session's Wait would
	// otherwise wait for a reader that may never end (a pipe whose other
	// side is still running). Without input, stdin stays open until the
	// command ends: its EOF is what stops the remote side if we go away
	// (see killable).
	stdin, err := sess.StdinPipe()
	if err != nil {
		return nil, err
	}
	// Closed from the copier, on cancellation and on return. x/crypto's
	// channel must not see Close during a Write, so both go through one
	// lock; closers that may find a Write blocked (a full window) close
	// asynchronously, and the session's own Close then unblocks it.
	in := &lockedWriter{w: stdin}
	defer func() { go func() { _ = in.Close() }() }()
	// Secrets are read from stdin first, before killable takes it over.
	line := readSecrets(secrets) + killable(withBecome(cmd.Line(), c.target.Become, secrets), cmd.Stdin != nil)
	start := time.Now()
	if err := sess.Start(line); err != nil {
		if c.isDead() {
			return nil, c.lost()
		}
		return nil, &ConnError{Host: c.target.Name, Addr: c.target.HostPort(), Reason: ReasonLost, Err: fmt.Errorf("start: %w", err)}
	}
	if len(secrets) > 0 {
		// A few bytes, well inside the channel's window.
		go func() { _, _ = io.WriteString(in, secretInput(cmd, secrets)) }()
	}
	if cmd.Stdin != nil {
		go func() {
			_, _ = io.Copy(in, cmd.Stdin)
			_ = in.Close()
		}()
	}
	done := make(chan error, 1)
	go func() { done <- sess.Wait() }()

	var ctxErr error
	select {
	case err = <-done:
	case <-ctx.Done():
		ctxErr = c.wrapCtx(ctx)
		outW.cut.Store(true)
		errW.cut.Store(true)
		_ = sess.Signal(ssh.SIGTERM)
		// Ending stdin makes the watcher kill the group where the signal
		// was refused.
		go func() { _ = in.Close() }()
		select {
		case err = <-done:
		case <-time.After(cancelGrace):
			_ = sess.Close()
			select {
			case err = <-done:
			case <-time.After(cancelGrace):
				// The server keeps the channel open; stop waiting for it.
				err = errors.New("remote command did not stop")
			}
		}
	case <-c.dead:
		_ = sess.Close()
		<-done //nolint:errcheck // the session died with the connection; c.lost() says why
		return nil, c.lost()
	}
	res.Duration = time.Since(start)
	capt.fill(res, cmd)
	if ctxErr != nil {
		res.ExitCode = -1
		return res, ctxErr
	}
	return res, c.exitErr(res, err, capt.stderrTail())
}

func (c *Conn) wrapCtx(ctx context.Context) error { return ctxError(c.target.Name, ctx) }

func (c *Conn) exitErr(res *Result, err error, stderrTail []byte) error {
	if err == nil {
		return nil
	}
	var ee *ssh.ExitError
	if errors.As(err, &ee) {
		res.ExitCode = ee.ExitStatus()
		res.Signal = ee.Signal()
		return &ExitError{Host: c.target.Name, Code: res.ExitCode, Signal: res.Signal, Stderr: tail(stderrTail, 3)}
	}
	res.ExitCode = -1
	if c.isDead() {
		return c.lost()
	}
	var em *ssh.ExitMissingError
	if errors.As(err, &em) {
		return &ConnError{Host: c.target.Name, Addr: c.target.HostPort(), Reason: ReasonLost, Err: errors.New("remote command ended without an exit status")}
	}
	return fmt.Errorf("%s: %w", c.target.Name, err)
}

// Ping measures one SSH-level round trip on the established connection: a
// keepalive request and its reply, with no process started on the host.
func (c *Conn) Ping(ctx context.Context) (time.Duration, error) {
	start := time.Now()
	done := make(chan error, 1)
	go func() {
		_, _, err := c.client.SendRequest("keepalive@openssh.com", true, nil)
		done <- err
	}()
	select {
	case err := <-done:
		if err != nil {
			return 0, c.lost()
		}
		return time.Since(start), nil
	case <-ctx.Done():
		return 0, c.wrapCtx(ctx)
	case <-c.dead:
		return 0, c.lost()
	}
}

// lockedWriter serialises Write and Close on a session's stdin.
type lockedWriter struct {
	mu     sync.Mutex
	w      io.WriteCloser
	closed bool
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return 0, io.ErrClosedPipe
	}
	return l.w.Write(p)
}

func (l *lockedWriter) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return nil
	}
	l.closed = true
	return l.w.Close()
}

// DialContext opens a TCP connection from the host (an SSH direct-tcpip
// channel), for tunnelling HTTP APIs through it (consul.via, nomad.via).
func (c *Conn) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	conn, err := c.client.DialContext(ctx, network, addr)
	if err != nil {
		return nil, fmt.Errorf("%s: tunnel to %s: %w", c.target.Name, addr, err)
	}
	return conn, nil
}
