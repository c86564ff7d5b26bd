package httpapi

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/hoctl/hoctl/pkg/trace"
)

// Failover sends each request to the first of eps (one per address of an
// inventory section, in its order) that accepts a connection, starting
// from the one that answered last: a degraded cluster whose first server
// is down is still reached without editing the inventory. Only a failed
// dial moves on (refused, unreachable, timed out: the request was never
// sent); a server that answers, even with an error, has answered. The
// dials of base must go through Dial for a failed dial to be told from a
// failed request. Each attempt is bounded as Transport bounds a request.
func Failover(eps []Endpoint, base http.RoundTripper, timeout time.Duration, tr *trace.Log) (http.RoundTripper, error) {
	f := &failover{}
	for _, ep := range eps {
		u, err := url.Parse(ep.Address)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", ep.Section, err)
		}
		f.urls = append(f.urls, u)
		f.tries = append(f.tries, &bounded{ep: ep, base: base, timeout: timeout, trace: tr})
	}
	if len(f.tries) == 0 {
		return nil, errors.New("no address to reach the API at")
	}
	return f, nil
}

type failover struct {
	urls  []*url.URL
	tries []*bounded
	mu    sync.Mutex
	cur   int // the address that answered last
}

func (f *failover) RoundTrip(req *http.Request) (*http.Response, error) {
	f.mu.Lock()
	start := f.cur
	f.mu.Unlock()
	var failed []*Error
	for k := range f.tries {
		i := (start + k) % len(f.tries)
		r := req.Clone(req.Context())
		r.URL.Scheme, r.URL.Host, r.Host = f.urls[i].Scheme, f.urls[i].Host, ""
		if k > 0 && req.Body != nil && req.Body != http.NoBody {
			if req.GetBody == nil {
				break // the body is spent: this request cannot be sent again
			}
			b, err := req.GetBody()
			if err != nil {
				break
			}
			r.Body = b
		}
		resp, err := f.tries[i].RoundTrip(r)
		if err == nil {
			f.mu.Lock()
			f.cur = i
			f.mu.Unlock()
			if rec, ok := req.Context().Value(answerKey{}).(*answer); ok {
				rec.set(f.tries[i].ep.Address)
			}
			return resp, nil
		}
		var ae *Error
		if !errors.As(err, &ae) || !errors.As(err, new(*dialError)) || req.Context().Err() != nil {
			return nil, err
		}
		failed = append(failed, ae)
	}
	if len(failed) == 1 && len(f.tries) == 1 {
		return nil, failed[0]
	}
	return nil, &AllError{Tried: failed}
}

// AllError is every address of an API failing to connect, each with its
// own error.
type AllError struct {
	Tried []*Error
}

func (e *AllError) Error() string {
	if len(e.Tried) == 0 {
		return "no address could be tried"
	}
	ep := e.Tried[0].Endpoint
	var parts []string
	for _, t := range e.Tried {
		parts = append(parts, t.Address+" "+t.reason())
	}
	via := ""
	if ep.Via != "" {
		via = " (via " + ep.Via + ")"
	}
	return fmt.Sprintf("no %s API address answered%s: %s; check that %s is running on at least one of them (%s.addresses)",
		ep.Name, via, strings.Join(parts, "; "), ep.Name, ep.Section)
}

func (e *AllError) Unwrap() []error {
	out := make([]error, len(e.Tried))
	for i, t := range e.Tried {
		out[i] = t
	}
	return out
}

// reason is what went wrong with this address, without the advice.
func (e *Error) reason() string {
	switch {
	case errors.Is(e.Err, context.Canceled):
		return "interrupted"
	case e.Timeout > 0:
		return fmt.Sprintf("did not answer within %s", e.Timeout)
	case isRefused(e.Err):
		return "refused the connection"
	case isDNS(e.Err):
		return "does not resolve"
	}
	return "is unreachable (" + reason(e.Err) + ")"
}

// dialError is a connection that was never made: the request was not
// sent, and another address may take it.
type dialError struct{ err error }

func (e *dialError) Error() string { return e.err.Error() }
func (e *dialError) Unwrap() error { return e.err }

// Dial marks dial's failures as such for Failover, and bounds each dial
// by timeout when it is not zero, so that a server that drops packets
// leaves time to try the next one. A nil dial is a plain net.Dialer's.
func Dial(dial func(ctx context.Context, network, addr string) (net.Conn, error), timeout time.Duration) func(ctx context.Context, network, addr string) (net.Conn, error) {
	if dial == nil {
		dial = (&net.Dialer{KeepAlive: 30 * time.Second}).DialContext
	}
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		if timeout > 0 {
			var cancel context.CancelFunc
			ctx, cancel = context.WithTimeout(ctx, timeout)
			defer cancel()
		}
		c, err := dial(ctx, network, addr)
		if err != nil {
			return nil, &dialError{err: err}
		}
		return c, nil
	}
}

type answerKey struct{}

type answer struct {
	mu   sync.Mutex
	addr string
}

func (a *answer) set(s string) {
	a.mu.Lock()
	a.addr = s
	a.mu.Unlock()
}

// RecordAnswer returns a context whose requests note the address that
// answered them, and the function that reads the last one ("" if none),
// for a report that names the server it heard from.
func RecordAnswer(ctx context.Context) (context.Context, func() string) {
	a := &answer{}
	return context.WithValue(ctx, answerKey{}, a), func() string {
		a.mu.Lock()
		defer a.mu.Unlock()
		return a.addr
	}
}
