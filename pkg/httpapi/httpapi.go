// Package httpapi is the HTTP plumbing the Consul and Nomad clients
// share: a transport that bounds every request (a server that accepts TCP
// and never answers must not hang hoctl) and turns transport failures into
// one line naming the API, its address, the via host and what to check.
package httpapi

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"syscall"
	"time"

	"github.com/hoctl/hoctl/pkg/trace"
)

// Endpoint names an API for messages.
type Endpoint struct {
	Name    string // "Consul", "Nomad"
	Section string // the inventory section: "consul", "nomad"
	Address string // as the inventory gives it
	Via     string // the SSH host carrying the connection, or ""
}

// Where names the API and how it is reached: "Consul API at http://... (via c1)".
func (ep Endpoint) Where() string {
	s := ep.Name + " API at " + ep.Address
	if ep.Via != "" {
		s += " (via " + ep.Via + ")"
	}
	return s
}

// Error is an API that could not be reached or did not answer in time.
type Error struct {
	Endpoint
	Timeout time.Duration // non-zero: no answer within it
	Err     error
}

func (e *Error) Error() string {
	on := ""
	if e.Via != "" {
		on = " on " + e.Via
	}
	hostPort := e.Address
	if i := strings.Index(hostPort, "://"); i >= 0 {
		hostPort = hostPort[i+3:]
	}
	hostPort = strings.TrimSuffix(hostPort, "/")
	switch {
	case errors.Is(e.Err, context.Canceled):
		return e.Where() + ": interrupted"
	case e.Timeout > 0:
		return fmt.Sprintf("%s did not answer within %s; check that %s is running and healthy%s (%s.address)",
			e.Where(), e.Timeout, e.Name, on, e.Section)
	case isRefused(e.Err):
		return fmt.Sprintf("%s refused the connection; check that %s is running and listening on %s%s (%s.address)",
			e.Where(), e.Name, hostPort, on, e.Section)
	case isDNS(e.Err):
		return fmt.Sprintf("%s: the name does not resolve%s; check %s.address", e.Where(), on, e.Section)
	}
	return fmt.Sprintf("%s is unreachable (%s); check %s.address and %s.via", e.Where(), reason(e.Err), e.Section, e.Section)
}

func (e *Error) Unwrap() error { return e.Err }

// ViaError is an API whose via host could not be reached over SSH. It
// wraps the host's connection error (exit code 4, like any unreachable
// host).
type ViaError struct {
	Endpoint
	Err error
}

func (e *ViaError) Error() string {
	if errors.Is(e.Err, context.Canceled) {
		return e.Where() + ": interrupted"
	}
	return fmt.Sprintf("%s: cannot reach %s: %s; check that %s is up and answers SSH (%s.via)", e.Where(), e.Via, e.Err, e.Via, e.Section)
}

func (e *ViaError) Unwrap() error { return e.Err }

func isRefused(err error) bool {
	return errors.Is(err, syscall.ECONNREFUSED) || strings.Contains(strings.ToLower(err.Error()), "connection refused")
}

func isDNS(err error) bool {
	var de *net.DNSError
	return errors.As(err, &de)
}

// reason is the innermost message of err, without Go's "dial tcp …:"
// wrapping.
func reason(err error) string {
	for {
		u := errors.Unwrap(err)
		if u == nil {
			return err.Error()
		}
		err = u
	}
}

// Clean returns the *Error inside err, if any, so callers report one line
// instead of the client library's `Get "http://…": …` wrapping; otherwise
// err wrapped with prefix.
func Clean(err error, prefix string) error {
	if err == nil {
		return nil
	}
	var all *AllError
	if errors.As(err, &all) {
		return all
	}
	var ae *Error
	if errors.As(err, &ae) {
		return ae
	}
	var ve *ViaError
	if errors.As(err, &ve) {
		return ve
	}
	if prefix == "" {
		return err
	}
	return fmt.Errorf("%s: %w", prefix, err)
}

// Options tune a client's transport.
type Options struct {
	// Timeout bounds each request; zero takes the client's default.
	Timeout time.Duration
	// Trace receives a -v line per request: method, path (never the
	// query or headers, where tokens travel), status and time.
	Trace *trace.Log
	// DialTimeout bounds each connection attempt when an API has several
	// addresses, so that one dropping packets leaves time for the next;
	// zero takes a third of Timeout.
	DialTimeout time.Duration
}

// Endpoints are one Endpoint per address of an inventory section.
func Endpoints(name, section string, addrs []string, via string) []Endpoint {
	out := make([]Endpoint, len(addrs))
	for i, a := range addrs {
		out[i] = Endpoint{Name: name, Section: section, Address: a, Via: via}
	}
	return out
}

// DialBound is the bound Dial puts on each connection attempt for n
// addresses: none for one (the request's own bound applies, as it always
// has), else o.DialTimeout or a third of timeout.
func (o Options) DialBound(n int, timeout time.Duration) time.Duration {
	switch {
	case n < 2:
		return 0
	case o.DialTimeout > 0:
		return o.DialTimeout
	}
	return timeout / 3
}

// Transport bounds every request through base: a request without an
// answer (headers and body) within timeout fails with an *Error; a
// blocking query (a "wait" parameter) gets its wait on top. The caller's
// context still ends a request at once.
func Transport(ep Endpoint, base http.RoundTripper, timeout time.Duration, tr *trace.Log) http.RoundTripper {
	return &bounded{ep: ep, base: base, timeout: timeout, trace: tr}
}

type bounded struct {
	ep      Endpoint
	base    http.RoundTripper
	timeout time.Duration
	trace   *trace.Log
}

func (b *bounded) RoundTrip(req *http.Request) (*http.Response, error) {
	bound := b.timeout
	if w := req.URL.Query().Get("wait"); w != "" {
		if d, err := time.ParseDuration(w); err == nil && d > 0 {
			// The server may add up to wait/16 of jitter.
			bound += d + d/16
		}
	}
	if dl, ok := req.Context().Deadline(); ok {
		// The caller's own deadline (a status probe's) is what the
		// operator was promised; report that bound if it comes first.
		// Rounded up to 100ms: the probe's bound as configured, not the
		// few milliseconds spent before this request.
		if left := ceil(time.Until(dl), 100*time.Millisecond); left > 0 && left < bound {
			bound = left
		}
	}
	ctx, cancel := context.WithTimeout(req.Context(), bound)
	start := time.Now()
	resp, err := b.base.RoundTrip(req.WithContext(ctx))
	if err != nil {
		err = b.wrap(req.Context(), ctx, err, bound)
		cancel()
		b.trace.Printf(trace.Verbose, "%s: %s %s failed after %s", b.ep.Section, req.Method, req.URL.Path, trace.Since(start))
		return nil, err
	}
	via := ""
	if b.ep.Via != "" {
		via = " (via " + b.ep.Via + ")"
	}
	b.trace.Printf(trace.Verbose, "%s: %s %s%s: %s in %s", b.ep.Section, req.Method, req.URL.Path, via, resp.Status, trace.Since(start))
	resp.Body = &body{ReadCloser: resp.Body, t: b, parent: req.Context(), ctx: ctx, cancel: cancel, bound: bound}
	return resp, nil
}

func ceil(d, unit time.Duration) time.Duration {
	if r := d % unit; r > 0 {
		return d - r + unit
	}
	return d
}

func (b *bounded) wrap(parent, ctx context.Context, err error, bound time.Duration) error {
	e := &Error{Endpoint: b.ep, Err: err}
	switch {
	case errors.Is(parent.Err(), context.Canceled):
		e.Err = parent.Err()
	case ctx.Err() != nil:
		e.Timeout = bound
	}
	return e
}

// body keeps the deadline over the response body, and releases it on
// Close.
type body struct {
	io.ReadCloser
	t      *bounded
	parent context.Context
	ctx    context.Context
	cancel context.CancelFunc
	bound  time.Duration
}

func (b *body) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if err != nil && !errors.Is(err, io.EOF) && b.ctx.Err() != nil {
		err = b.t.wrap(b.parent, b.ctx, err, b.bound)
	}
	return n, err
}

func (b *body) Close() error {
	err := b.ReadCloser.Close()
	b.cancel()
	return err
}
