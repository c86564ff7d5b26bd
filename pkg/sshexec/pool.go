package sshexec

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/hoctl/hoctl/pkg/trace"
	"golang.org/x/crypto/ssh"
)

// MaxSessionsPerHost caps concurrent sessions on one connection, below
// OpenSSH's default MaxSessions of 10 so hoctl never trips it.
const MaxSessionsPerHost = 8

// Pool holds one connection per host for the life of a hoctl run.
type Pool struct {
	trace *trace.Log
	keys  *hostKeys
	ring  *keyring
	eager bool

	mu     sync.Mutex
	conns  map[string]*entry
	closed bool
}

type entry struct {
	ready chan struct{}
	conn  *Conn
	err   error
}

// PoolOptions configure a Pool.
type PoolOptions struct {
	// AgentSocket is SSH_AUTH_SOCK; empty disables the agent.
	AgentSocket string
	// EagerExecutor sends even a connection's first command to the
	// executor, for callers that run many commands per host (runbooks);
	// otherwise the first command takes a session of its own.
	EagerExecutor bool
	// Trace receives -v lines (nil: quiet).
	Trace *trace.Log
}

// NewPool returns an empty pool. Close it when the run ends.
func NewPool(o PoolOptions) *Pool {
	return &Pool{keys: newHostKeys(), ring: newKeyring(o.AgentSocket), conns: map[string]*entry{}, eager: o.EagerExecutor, trace: o.Trace}
}

// Close closes every connection.
func (p *Pool) Close() error {
	p.mu.Lock()
	p.closed = true
	conns := p.conns
	p.conns = map[string]*entry{}
	p.mu.Unlock()
	for _, e := range conns {
		<-e.ready
		if e.conn != nil {
			_ = e.conn.client.Close()
		}
	}
	p.ring.close()
	return nil
}

// Runner returns a Runner for t, connecting on first use. Concurrent
// callers for one host share a single dial; a connection that died is
// redialled on the next call.
func (p *Pool) Runner(ctx context.Context, t *Target) (Runner, error) {
	if t.IsLocal() {
		return &Local{target: t, trace: p.trace}, nil
	}
	return p.conn(ctx, t)
}

func (p *Pool) conn(ctx context.Context, t *Target) (*Conn, error) {
	key := t.User + "@" + t.HostPort() + "/" + t.Name
	for {
		p.mu.Lock()
		if p.closed {
			p.mu.Unlock()
			return nil, errors.New("connection pool closed")
		}
		e, ok := p.conns[key]
		if !ok {
			e = &entry{ready: make(chan struct{})}
			p.conns[key] = e
			p.mu.Unlock()
			start := time.Now()
			e.conn, e.err = p.dial(ctx, t)
			if e.err != nil {
				p.trace.Printf(trace.Verbose, "%s: not connected after %s: %s", t.Name, trace.Since(start), e.err)
			}
			close(e.ready)
			if e.err != nil {
				p.mu.Lock()
				if p.conns[key] == e {
					delete(p.conns, key)
				}
				p.mu.Unlock()
			}
			return e.conn, e.err
		}
		p.mu.Unlock()
		select {
		case <-e.ready:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		if e.err != nil {
			return nil, e.err
		}
		if !e.conn.isDead() {
			return e.conn, nil
		}
		p.mu.Lock()
		if p.conns[key] == e {
			delete(p.conns, key)
		}
		p.mu.Unlock()
	}
}

func (p *Pool) dial(ctx context.Context, t *Target) (*Conn, error) {
	addr := t.HostPort()
	cerr := func(r Reason, err error) error { return &ConnError{Host: t.Name, Addr: addr, Reason: r, Err: err} }
	algos, err := p.keys.algorithms(t)
	if err != nil {
		return nil, cerr(ReasonKnownHosts, err)
	}
	tr := p.trace
	var hostKey, authKey ssh.PublicKey
	var used func(ssh.PublicKey)
	if tr.Enabled(trace.Verbose) {
		used = func(k ssh.PublicKey) { authKey = k }
	}
	methods, err := p.ring.methods(t, used)
	if err != nil {
		return nil, err
	}
	cfg := &ssh.ClientConfig{
		User:              t.User,
		Auth:              methods,
		HostKeyCallback:   p.keys.callback(t),
		HostKeyAlgorithms: algos,
		Timeout:           t.ConnectTimeout,
		ClientVersion:     "SSH-2.0-hoctl",
	}
	start := time.Now()
	if tr.Enabled(trace.Verbose) {
		check := cfg.HostKeyCallback
		cfg.HostKeyCallback = func(h string, r net.Addr, k ssh.PublicKey) error { hostKey = k; return check(h, r, k) }
		jump := ""
		if t.Jump != nil {
			jump = " through jump host " + t.Jump.Name
		}
		tr.Printf(trace.Verbose, "%s: connecting to %s@%s%s (connect_timeout %s, host_key_policy %s, known_hosts %s)",
			t.Name, t.User, addr, jump, t.ConnectTimeout, t.HostKeyPolicy, strings.Join(t.KnownHosts, ", "))
		tr.Printf(trace.Verbose, "%s: keys to offer: %s", t.Name, p.ring.describeKeys(t))
		if algos != nil {
			tr.Printf(trace.Debug, "%s: asking for the host key types on file: %s", t.Name, strings.Join(algos, ", "))
		}
	}

	var raw net.Conn
	if t.Jump != nil {
		jc, err := p.conn(ctx, t.Jump)
		if err != nil {
			return nil, cerr(ReasonUnreachable, fmt.Errorf("via jump host: %w", err))
		}
		dctx, cancel := context.WithTimeout(ctx, t.ConnectTimeout)
		raw, err = jc.client.DialContext(dctx, "tcp", addr)
		cancel()
		if err != nil {
			r := classifyDial(err)
			return nil, cerr(r, &dialDetail{msg: joinDetail("via "+t.Jump.Name, dialText(r, err, t.ConnectTimeout)), err: err})
		}
	} else {
		d := net.Dialer{Timeout: t.ConnectTimeout}
		raw, err = d.DialContext(ctx, "tcp", addr)
		if err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			r := classifyDial(err)
			return nil, cerr(r, &dialDetail{msg: dialText(r, err, t.ConnectTimeout), err: err})
		}
		raw = quickAck(raw)
	}

	// Bound the whole handshake: a host that accepts TCP but never speaks
	// (a hung sshd) must fail within connect_timeout, and Ctrl-C must not
	// wait for it either.
	var timedOut, cancelled bool
	var tmu sync.Mutex
	timer := time.AfterFunc(t.ConnectTimeout, func() { tmu.Lock(); timedOut = true; tmu.Unlock(); _ = raw.Close() })
	stop := context.AfterFunc(ctx, func() { tmu.Lock(); cancelled = true; tmu.Unlock(); _ = raw.Close() })
	c, chans, reqs, err := ssh.NewClientConn(raw, addr, cfg)
	timer.Stop()
	stop()
	tmu.Lock()
	to, cc := timedOut, cancelled
	tmu.Unlock()
	if err != nil {
		_ = raw.Close()
		var hke *HostKeyError
		switch {
		case cc:
			return nil, ctx.Err()
		case to:
			return nil, cerr(ReasonTimeout, fmt.Errorf("no SSH handshake within %s (host hung?)", t.ConnectTimeout))
		case errors.As(err, &hke):
			return nil, cerr(hke.Reason(), hke)
		case strings.Contains(err.Error(), "unable to authenticate"):
			return nil, cerr(ReasonAuth, fmt.Errorf("%s rejected the offered keys for user %s%s", addr, t.User, p.ring.encryptedHint(t)))
		case strings.Contains(err.Error(), "no common algorithm for host key") && algos != nil:
			if onlyCerts(algos) {
				return nil, cerr(ReasonHostCert, errors.New("the server presents no host certificate, but known_hosts trusts only a @cert-authority for it"))
			}
			return nil, cerr(ReasonHostKeyChanged, fmt.Errorf("the server offers none of the host key types on file (%s)", strings.Join(algos, ", ")))
		default:
			return nil, cerr(ReasonLost, err)
		}
	}
	traceConnected(tr, t, c, hostKey, authKey, trace.Since(start))
	client := ssh.NewClient(c, chans, reqs)
	conn := &Conn{
		trace:  tr,
		target: t,
		client: client,
		sem:    make(chan struct{}, MaxSessionsPerHost),
		dead:   make(chan struct{}),
		eager:  p.eager,
	}
	go func() {
		_ = client.Wait()
		conn.markDead(errors.New("connection closed"))
	}()
	go conn.keepalive()
	return conn, nil
}

// dialDetail is a dial failure as the operator reads it: what the reason
// does not already say (nothing for "connection refused", the bound for a
// timeout), not Go's "dial tcp 127.0.14.5:22: connect: …" wrapping. The
// original error stays reachable with errors.Is/As.
type dialDetail struct {
	msg string
	err error
}

func (d *dialDetail) Error() string { return d.msg }
func (d *dialDetail) Unwrap() error { return d.err }

func dialText(r Reason, err error, timeout time.Duration) string {
	var dnsErr *net.DNSError
	switch {
	case r == ReasonRefused:
		return ""
	case r == ReasonTimeout:
		return fmt.Sprintf("no answer within %s", timeout)
	case errors.As(err, &dnsErr):
		return dnsErr.Err
	}
	// The innermost cause: "no route to host", or a jump host's reason.
	for {
		u := errors.Unwrap(err)
		if u == nil {
			return err.Error()
		}
		err = u
	}
}

func joinDetail(a, b string) string {
	if b == "" {
		return a
	}
	return a + ": " + b
}

func classifyDial(err error) Reason {
	var dnsErr *net.DNSError
	var ne net.Error
	switch {
	case errors.Is(err, syscall.ECONNREFUSED):
		return ReasonRefused
	case errors.As(err, &dnsErr):
		return ReasonResolve
	case errors.As(err, &ne) && ne.Timeout(), errors.Is(err, context.DeadlineExceeded), errors.Is(err, os.ErrDeadlineExceeded):
		return ReasonTimeout
	case errors.Is(err, syscall.EHOSTUNREACH), errors.Is(err, syscall.ENETUNREACH):
		return ReasonUnreachable
	case strings.Contains(err.Error(), "connect failed"):
		// A jump host's refusal to open the forwarded channel.
		return ReasonRefused
	}
	return ReasonUnreachable
}

func onlyCerts(algos []string) bool {
	for _, a := range algos {
		if !strings.Contains(a, "-cert-") {
			return false
		}
	}
	return true
}
