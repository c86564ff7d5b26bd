// Package consulsim is the lab's stand-in for a Consul server: an HTTP
// server implementing the endpoints hoctl calls, with the JSON shapes and
// semantics of Consul's API documentation (status, sessions with TTL and
// lock-delay, KV with acquire/release/cas and blocking queries, catalog
// registration and service health in catalog.go). Consul
// itself cannot be installed on these machines; hoctl still talks to this
// through the official client library, and never knows the difference.
package consulsim

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Server is a running simulated Consul.
type Server struct {
	Addr string

	mu       sync.Mutex
	cond     *sync.Cond // broadcast on every write, for blocking queries
	index    uint64
	kv       map[string]*kvEntry
	sessions map[string]*session
	delays   map[string]time.Time // key → lock-delay end
	leader   string
	services map[string]*instance // node + "/" + service ID
	down     map[string]bool      // nodes whose serfHealth is critical
	servers  map[string]bool      // server name → healthy (autopilot)

	srv *http.Server
	ln  net.Listener
	now func() time.Time
}

type kvEntry struct {
	Key         string
	Value       []byte
	Flags       uint64
	Session     string `json:",omitempty"`
	LockIndex   uint64
	CreateIndex uint64
	ModifyIndex uint64
}

type session struct {
	ID          string
	Name        string
	Node        string
	LockDelay   time.Duration
	Behavior    string
	TTL         string
	CreateIndex uint64
	ModifyIndex uint64
	Checks      []string
	NodeChecks  []string

	ttl     time.Duration
	expires time.Time
}

// Start listens on addr (a loopback address) and serves until Close.
func Start(addr string) (*Server, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	s := &Server{Addr: ln.Addr().String(), kv: map[string]*kvEntry{}, sessions: map[string]*session{}, services: map[string]*instance{}, down: map[string]bool{},
		servers: map[string]bool{"c1": true, "c2": true, "c3": true},
		delays:  map[string]time.Time{}, leader: ln.Addr().String(), index: 1, ln: ln, now: time.Now}
	s.cond = sync.NewCond(&s.mu)
	mux := http.NewServeMux()
	mux.HandleFunc("/v1/status/leader", s.statusLeader)
	mux.HandleFunc("/v1/session/create", s.sessionCreate)
	mux.HandleFunc("/v1/session/destroy/", s.sessionDestroy)
	mux.HandleFunc("/v1/session/renew/", s.sessionRenew)
	mux.HandleFunc("/v1/session/info/", s.sessionInfo)
	mux.HandleFunc("/v1/session/list", s.sessionList)
	mux.HandleFunc("/v1/kv/", s.kvHandler)
	mux.HandleFunc("/v1/catalog/register", s.catalogRegister)
	mux.HandleFunc("/v1/catalog/deregister", s.catalogDeregister)
	mux.HandleFunc("/v1/catalog/service/", s.catalogService)
	mux.HandleFunc("/v1/health/service/", s.healthService)
	mux.HandleFunc("/v1/operator/autopilot/health", s.autopilotHealth)
	mux.HandleFunc("/v1/agent/members", s.agentMembers)
	mux.HandleFunc("/v1/health/node/", s.healthNode)
	s.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = s.srv.Serve(ln) }()
	go s.reaper()
	return s, nil
}

// Close stops the server.
func (s *Server) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	s.mu.Lock()
	s.leader = "-closed-"
	s.cond.Broadcast()
	s.mu.Unlock()
	return s.srv.Shutdown(ctx)
}

// SetLeader sets (or with "" removes) the raft leader /v1/status/leader reports.
func (s *Server) SetLeader(addr string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.leader = addr
}

// InvalidateSession destroys a session as Consul would when its node or a
// check fails: its locks are released and lock-delay applies.
func (s *Server) InvalidateSession(id string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.invalidate(id)
}

// Sessions returns the ids of live sessions.
func (s *Server) Sessions() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for id := range s.sessions {
		out = append(out, id)
	}
	sort.Strings(out)
	return out
}

// Get returns a key's value and holder session, for tests.
func (s *Server) Get(key string) (value, sessionID string, ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e := s.kv[key]
	if e == nil {
		return "", "", false
	}
	return string(e.Value), e.Session, true
}

func (s *Server) bump() uint64 {
	s.index++
	s.cond.Broadcast()
	return s.index
}

// invalidate removes a session; s.mu is held.
func (s *Server) invalidate(id string) bool {
	se := s.sessions[id]
	if se == nil {
		return false
	}
	delete(s.sessions, id)
	idx := s.bump()
	for k, e := range s.kv {
		if e.Session != id {
			continue
		}
		if se.Behavior == "delete" {
			delete(s.kv, k)
		} else {
			e.Session = ""
			e.ModifyIndex = idx
		}
		if se.LockDelay > 0 {
			s.delays[k] = s.now().Add(se.LockDelay)
		}
	}
	return true
}

// reaper expires sessions whose TTL ran out. Consul may wait up to twice
// the TTL; so does this.
func (s *Server) reaper() {
	for {
		time.Sleep(100 * time.Millisecond)
		s.mu.Lock()
		if s.leader == "-closed-" {
			s.mu.Unlock()
			return
		}
		for id, se := range s.sessions {
			if se.ttl > 0 && s.now().After(se.expires) {
				s.invalidate(id)
			}
		}
		s.mu.Unlock()
	}
}

func writeJSON(w http.ResponseWriter, index uint64, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Consul-Index", strconv.FormatUint(index, 10))
	w.Header().Set("X-Consul-KnownLeader", "true")
	w.Header().Set("X-Consul-LastContact", "0")
	_ = json.NewEncoder(w).Encode(v)
}

func (s *Server) statusLeader(w http.ResponseWriter, _ *http.Request) {
	s.mu.Lock()
	leader := s.leader
	s.mu.Unlock()
	writeJSON(w, 0, leader)
}

func newID() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:])
}

// parseDuration accepts Consul's forms: "15s", "15000ms", or a number of
// nanoseconds.
func parseDuration(v any) (time.Duration, error) {
	switch x := v.(type) {
	case nil:
		return 0, nil
	case string:
		if x == "" {
			return 0, nil
		}
		return time.ParseDuration(x)
	case float64:
		return time.Duration(x), nil
	}
	return 0, fmt.Errorf("bad duration %v", v)
}

func (s *Server) sessionCreate(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPut {
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	var body map[string]any
	data, _ := io.ReadAll(r.Body)
	if len(data) > 0 {
		if err := json.Unmarshal(data, &body); err != nil {
			http.Error(w, "Request decode failed: "+err.Error(), http.StatusBadRequest)
			return
		}
	}
	se := &session{ID: newID(), Behavior: "release", LockDelay: 15 * time.Second, Node: "lab"}
	if v, ok := body["Name"].(string); ok {
		se.Name = v
	}
	if v, ok := body["Behavior"].(string); ok && v != "" {
		if v != "release" && v != "delete" {
			http.Error(w, "Invalid Behavior setting '"+v+"'", http.StatusBadRequest)
			return
		}
		se.Behavior = v
	}
	if v, ok := body["LockDelay"]; ok {
		d, err := parseDuration(v)
		if err != nil || d > 60*time.Second {
			http.Error(w, "Request decode failed: bad LockDelay", http.StatusBadRequest)
			return
		}
		se.LockDelay = d
	}
	if v, ok := body["TTL"].(string); ok && v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d < 10*time.Second || d > 24*time.Hour {
			http.Error(w, "Invalid Session TTL '"+v+"', must be between [10s=24h0m0s]", http.StatusBadRequest)
			return
		}
		se.TTL, se.ttl = v, d
	}
	s.mu.Lock()
	se.CreateIndex = s.bump()
	se.ModifyIndex = se.CreateIndex
	se.expires = s.now().Add(2 * se.ttl)
	s.sessions[se.ID] = se
	idx := s.index
	s.mu.Unlock()
	writeJSON(w, idx, map[string]string{"ID": se.ID})
}

func (s *Server) sessionDestroy(w http.ResponseWriter, r *http.Request) {
	id := strings.TrimPrefix(r.URL.Path, "/v1/session/destroy/")
	s.mu.Lock()
	s.invalidate(id)
	idx := s.index
	s.mu.Unlock()
	writeJSON(w, idx, true)
}

func (s *Server) sessionRenew(w http.ResponseWriter, r *http.Request) {
	id := strings.TrimPrefix(r.URL.Path, "/v1/session/renew/")
	s.mu.Lock()
	se := s.sessions[id]
	if se == nil {
		s.mu.Unlock()
		http.Error(w, "Session id '"+id+"' not found", http.StatusNotFound)
		return
	}
	se.expires = s.now().Add(2 * se.ttl)
	out := *se
	idx := s.index
	s.mu.Unlock()
	writeJSON(w, idx, []session{out})
}

func (s *Server) sessionInfo(w http.ResponseWriter, r *http.Request) {
	id := strings.TrimPrefix(r.URL.Path, "/v1/session/info/")
	s.mu.Lock()
	out := []session{}
	if se := s.sessions[id]; se != nil {
		out = append(out, *se)
	}
	idx := s.index
	s.mu.Unlock()
	writeJSON(w, idx, out)
}

func (s *Server) sessionList(w http.ResponseWriter, _ *http.Request) {
	s.mu.Lock()
	out := []session{}
	for _, se := range s.sessions {
		out = append(out, *se)
	}
	idx := s.index
	s.mu.Unlock()
	writeJSON(w, idx, out)
}

// waitFor blocks a query with ?index=N until the store's index passes N
// or ?wait= (default 5m, as Consul) elapses; s.mu is held.
func (s *Server) waitFor(r *http.Request) {
	q := r.URL.Query()
	after, err := strconv.ParseUint(q.Get("index"), 10, 64)
	if err != nil || after == 0 {
		return
	}
	wait := 5 * time.Minute
	if d, err := time.ParseDuration(q.Get("wait")); err == nil && d > 0 {
		wait = min(d, 10*time.Minute)
	}
	deadline := time.Now().Add(wait)
	timer := time.AfterFunc(wait, func() { s.mu.Lock(); s.cond.Broadcast(); s.mu.Unlock() })
	defer timer.Stop()
	stop := context.AfterFunc(r.Context(), func() { s.mu.Lock(); s.cond.Broadcast(); s.mu.Unlock() })
	defer stop()
	for s.index <= after && time.Now().Before(deadline) && r.Context().Err() == nil && s.leader != "-closed-" {
		s.cond.Wait()
	}
}

func (s *Server) kvHandler(w http.ResponseWriter, r *http.Request) {
	key := strings.TrimPrefix(r.URL.Path, "/v1/kv/")
	q := r.URL.Query()
	s.mu.Lock()
	defer s.mu.Unlock()
	switch r.Method {
	case http.MethodGet:
		s.waitFor(r)
		var out []kvEntry
		if q.Has("recurse") {
			for k, e := range s.kv {
				if strings.HasPrefix(k, key) {
					out = append(out, *e)
				}
			}
			sort.Slice(out, func(i, j int) bool { return out[i].Key < out[j].Key })
		} else if e := s.kv[key]; e != nil {
			out = append(out, *e)
		}
		if len(out) == 0 {
			w.Header().Set("X-Consul-Index", strconv.FormatUint(s.index, 10))
			w.WriteHeader(http.StatusNotFound)
			return
		}
		if q.Has("raw") {
			w.Header().Set("X-Consul-Index", strconv.FormatUint(s.index, 10))
			_, _ = w.Write(out[0].Value)
			return
		}
		writeJSON(w, s.index, out)
	case http.MethodPut:
		data, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		flags, _ := strconv.ParseUint(q.Get("flags"), 10, 64)
		e := s.kv[key]
		switch {
		case q.Has("acquire"):
			sid := q.Get("acquire")
			if s.sessions[sid] == nil {
				http.Error(w, "invalid session \""+sid+"\"", http.StatusInternalServerError)
				return
			}
			if until, ok := s.delays[key]; ok && s.now().Before(until) {
				writeJSON(w, s.index, false) // lock-delay in force
				return
			}
			if e != nil && e.Session != "" && e.Session != sid {
				writeJSON(w, s.index, false)
				return
			}
			idx := s.bump()
			if e == nil {
				e = &kvEntry{Key: key, CreateIndex: idx}
				s.kv[key] = e
			}
			if e.Session != sid {
				e.LockIndex++
			}
			e.Session, e.Value, e.Flags, e.ModifyIndex = sid, data, flags, idx
			writeJSON(w, s.index, true)
		case q.Has("release"):
			sid := q.Get("release")
			if e == nil || e.Session != sid {
				writeJSON(w, s.index, false)
				return
			}
			e.Session, e.Value, e.Flags = "", data, flags
			e.ModifyIndex = s.bump()
			writeJSON(w, s.index, true)
		default:
			if q.Has("cas") {
				cas, err := strconv.ParseUint(q.Get("cas"), 10, 64)
				if err != nil {
					http.Error(w, "bad cas", http.StatusBadRequest)
					return
				}
				if (cas == 0 && e != nil) || (cas != 0 && (e == nil || e.ModifyIndex != cas)) {
					writeJSON(w, s.index, false)
					return
				}
			}
			idx := s.bump()
			if e == nil {
				e = &kvEntry{Key: key, CreateIndex: idx}
				s.kv[key] = e
			}
			e.Value, e.Flags, e.ModifyIndex = data, flags, idx
			writeJSON(w, s.index, true)
		}
	case http.MethodDelete:
		e := s.kv[key]
		if q.Has("cas") {
			cas, _ := strconv.ParseUint(q.Get("cas"), 10, 64)
			if e == nil || e.ModifyIndex != cas {
				writeJSON(w, s.index, false)
				return
			}
		}
		if q.Has("recurse") {
			for k := range s.kv {
				if strings.HasPrefix(k, key) {
					delete(s.kv, k)
				}
			}
		} else {
			delete(s.kv, key)
		}
		s.bump()
		writeJSON(w, s.index, true)
	default:
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
	}
}
