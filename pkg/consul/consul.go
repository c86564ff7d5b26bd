// Package consul is hoctl's access to the cluster's Consul HTTP API,
// through the official client library, directly or through an SSH tunnel
// to the inventory's consul.via host; and the cluster-wide lock built on a
// Consul session and a KV acquire.
package consul

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"time"

	"github.com/hashicorp/consul/api"
	"github.com/hoctl/hoctl/pkg/httpapi"
	"github.com/hoctl/hoctl/pkg/inventory"
	"github.com/hoctl/hoctl/pkg/sshexec"
)

// NewClient returns a Consul client for the inventory's consul section.
// via, when not nil, carries every connection (consul.via); getenv reads
// the token named by token_env. The token is given to the client only:
// hoctl never prints or journals it. Every request is bounded by o.Timeout
// (DefaultTimeout when zero) on top of its caller's context.
func NewClient(cfg *inventory.API, via sshexec.Dialer, getenv func(string) string, o httpapi.Options) (*api.Client, error) {
	if cfg == nil {
		return nil, errors.New("the inventory has no consul section")
	}
	addrs := cfg.URLs()
	u, err := url.Parse(addrs[0])
	if err != nil {
		return nil, fmt.Errorf("consul.address: %w", err)
	}
	timeout := o.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	c := api.DefaultNonPooledConfig()
	c.Address, c.Scheme = u.Host, u.Scheme
	if cfg.TokenEnv != "" {
		c.Token = getenv(cfg.TokenEnv)
	}
	tr := c.Transport
	if via != nil {
		tr.DialContext = via.DialContext
		tr.Proxy = nil
	}
	tr.DialContext = httpapi.Dial(tr.DialContext, o.DialBound(len(addrs), timeout))
	rt, err := httpapi.Failover(httpapi.Endpoints("Consul", "consul", addrs, cfg.Via), tr, timeout, o.Trace)
	if err != nil {
		return nil, err
	}
	c.HttpClient = &http.Client{Transport: rt}
	return api.NewClient(c)
}

// DefaultTimeout bounds a request when the caller gives no bound: the
// default connect_timeout plus keepalive, as for an SSH host.
const DefaultTimeout = 15 * time.Second

// LockPrefix is where hoctl's cluster locks live in the KV store.
const LockPrefix = "hoctl/locks/"

// Lock is a held cluster-wide lock: a Consul session (TTL, renewed in the
// background, lock-delay on loss) holding hoctl/locks/<scope>.
type Lock struct {
	client  *api.Client
	key     string
	session string
	lost    chan struct{}
	cancel  context.CancelFunc
}

// HeldError is a lock someone else holds (or lock-delay still protects).
type HeldError struct {
	Scope  string
	Holder string
}

func (e *HeldError) Error() string {
	if e.Holder == "" {
		return fmt.Sprintf("cluster lock %q is not available (held, or its lock-delay after a lost holder has not passed)", e.Scope)
	}
	return fmt.Sprintf("cluster lock %q is held by %s", e.Scope, e.Holder)
}

// LockOptions tune a lock; zero values take Consul's documented defaults.
type LockOptions struct {
	TTL       time.Duration // default 15s
	LockDelay time.Duration // default 15s
}

// Acquire takes hoctl/locks/<scope> without waiting. holder is stored as
// the value so the next operator sees who has it.
func Acquire(ctx context.Context, client *api.Client, scope, holder string, o LockOptions) (*Lock, error) {
	if o.TTL == 0 {
		o.TTL = 15 * time.Second
	}
	if o.LockDelay == 0 {
		o.LockDelay = 15 * time.Second
	}
	wo := (&api.WriteOptions{}).WithContext(ctx)
	leader, err := client.Status().LeaderWithQueryOptions((&api.QueryOptions{}).WithContext(ctx))
	if err != nil {
		return nil, httpapi.Clean(err, "consul")
	}
	if leader == "" {
		return nil, errors.New("consul has no leader: refusing to take a cluster lock")
	}
	sid, _, err := client.Session().Create(&api.SessionEntry{
		Name: "hoctl lock " + scope, TTL: o.TTL.String(), LockDelay: o.LockDelay, Behavior: api.SessionBehaviorRelease,
	}, wo)
	if err != nil {
		return nil, httpapi.Clean(err, "consul session")
	}
	key := LockPrefix + scope
	ok, _, err := client.KV().Acquire(&api.KVPair{Key: key, Value: []byte(holder), Session: sid}, wo)
	if err != nil || !ok {
		_ = destroySession(client, sid)
		if err != nil {
			return nil, httpapi.Clean(err, "consul acquire "+key)
		}
		he := &HeldError{Scope: scope}
		if p, _, err := client.KV().Get(key, (&api.QueryOptions{}).WithContext(ctx)); err == nil && p != nil && p.Session != "" {
			he.Holder = string(p.Value)
		}
		return nil, he
	}
	rctx, cancel := context.WithCancel(context.Background())
	l := &Lock{client: client, key: key, session: sid, lost: make(chan struct{}), cancel: cancel}
	once := make(chan struct{})
	markLost := func() {
		select {
		case <-once:
		default:
			close(once)
			close(l.lost)
		}
	}
	go func() {
		// Renew until released; a renewal that finds the session gone
		// means the lock is lost.
		err := client.Session().RenewPeriodic(o.TTL.String(), sid, (&api.WriteOptions{}).WithContext(rctx), nil)
		if err != nil && rctx.Err() == nil {
			markLost()
		}
	}()
	go func() {
		// Watch the key: when it no longer names our session (destroyed,
		// expired, released by someone), the lock is lost.
		var index uint64
		for rctx.Err() == nil {
			p, meta, err := client.KV().Get(key, (&api.QueryOptions{WaitIndex: index, WaitTime: 30 * time.Second}).WithContext(rctx))
			if rctx.Err() != nil {
				return
			}
			if err != nil {
				time.Sleep(500 * time.Millisecond)
				continue
			}
			if p == nil || p.Session != sid {
				markLost()
				return
			}
			index = meta.LastIndex
		}
	}()
	return l, nil
}

// Lost is closed when the lock is lost.
func (l *Lock) Lost() <-chan struct{} { return l.lost }

// Session is the Consul session holding the lock.
func (l *Lock) Session() string { return l.session }

// releaseBound caps each clean-up call: they run after Ctrl-C too, and a
// Consul that does not answer must not hold hoctl up for long. It is not
// shorter because a release given up on is worse than a wait: the session
// then lives to its TTL, and its invalidation starts lock-delay, so the
// next operator is refused for up to TTL×2 + lock-delay. A loaded cluster
// can take over a second to commit the write.
const releaseBound = 5 * time.Second

// Release gives the lock up and destroys the session. Each call gets its
// own bound: a release that timed out must not also cost the destroy.
func (l *Lock) Release() error {
	l.cancel()
	ctx, cancel := context.WithTimeout(context.Background(), releaseBound)
	_, _, err := l.client.KV().Release(&api.KVPair{Key: l.key, Session: l.session}, (&api.WriteOptions{}).WithContext(ctx))
	cancel()
	derr := destroySession(l.client, l.session)
	if err != nil {
		return httpapi.Clean(err, "consul release")
	}
	return httpapi.Clean(derr, "consul release")
}

func destroySession(client *api.Client, sid string) error {
	ctx, cancel := context.WithTimeout(context.Background(), releaseBound)
	defer cancel()
	_, err := client.Session().Destroy(sid, (&api.WriteOptions{}).WithContext(ctx))
	return err
}
