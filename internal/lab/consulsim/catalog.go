package consulsim

import (
	"encoding/json"
	"net/http"
	"sort"
	"strings"
)

// instance is one registered service instance with its check, as the
// catalog register endpoint takes it.
type instance struct {
	Node        string
	Address     string
	ID          string
	Service     string
	ServiceAddr string
	Port        int
	CheckID     string
	CheckName   string
	Status      string
	ModifyIndex uint64
}

type registerReq struct {
	Node    string
	Address string
	Service *struct {
		ID      string
		Service string
		Address string
		Port    int
	}
	Check *struct {
		CheckID   string
		Name      string
		Status    string
		ServiceID string
	}
}

// catalogRegister is PUT /v1/catalog/register: what a node's agent does
// for a service definition (the lab's nfs-server shim calls it).
func (s *Server) catalogRegister(w http.ResponseWriter, r *http.Request) {
	var req registerReq
	if r.Method != http.MethodPut || json.NewDecoder(r.Body).Decode(&req) != nil || req.Node == "" || req.Service == nil {
		http.Error(w, "bad register request", http.StatusBadRequest)
		return
	}
	in := &instance{Node: req.Node, Address: req.Address, ID: req.Service.ID, Service: req.Service.Service,
		ServiceAddr: req.Service.Address, Port: req.Service.Port, Status: "passing"}
	if in.ID == "" {
		in.ID = in.Service
	}
	if req.Check != nil {
		in.CheckID, in.CheckName, in.Status = req.Check.CheckID, req.Check.Name, req.Check.Status
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	in.ModifyIndex = s.bump()
	s.services[in.Node+"/"+in.ID] = in
	writeJSON(w, s.index, true)
}

// catalogDeregister is PUT /v1/catalog/deregister {Node, ServiceID}.
func (s *Server) catalogDeregister(w http.ResponseWriter, r *http.Request) {
	var req struct{ Node, ServiceID string }
	if r.Method != http.MethodPut || json.NewDecoder(r.Body).Decode(&req) != nil || req.Node == "" {
		http.Error(w, "bad deregister request", http.StatusBadRequest)
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for k, in := range s.services {
		if in.Node == req.Node && (req.ServiceID == "" || in.ID == req.ServiceID) {
			delete(s.services, k)
		}
	}
	s.bump()
	writeJSON(w, s.index, true)
}

// SetNodeDown marks a node's serfHealth critical (or passing again), as
// Consul's gossip does when a node stops answering: its instances stop
// passing. The lab's faults (Kill, Hang) do not reach this server; tests
// say what gossip would have noticed.
func (s *Server) SetNodeDown(node string, down bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.down[node] = down
	s.bump()
}

func (s *Server) instances(service string) []*instance {
	var out []*instance
	for _, in := range s.services {
		if in.Service == service {
			out = append(out, in)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Node < out[j].Node })
	return out
}

// catalogService is GET /v1/catalog/service/<name>.
func (s *Server) catalogService(w http.ResponseWriter, r *http.Request) {
	name := strings.TrimPrefix(r.URL.Path, "/v1/catalog/service/")
	s.mu.Lock()
	defer s.mu.Unlock()
	out := []map[string]any{}
	for _, in := range s.instances(name) {
		out = append(out, map[string]any{"Node": in.Node, "Address": in.Address, "ServiceID": in.ID, "ServiceName": in.Service,
			"ServiceAddress": in.ServiceAddr, "ServicePort": in.Port, "ModifyIndex": in.ModifyIndex})
	}
	writeJSON(w, s.index, out)
}

// healthService is GET /v1/health/service/<name>[?passing]: each instance
// with its node's serfHealth check and its own check.
func (s *Server) healthService(w http.ResponseWriter, r *http.Request) {
	name := strings.TrimPrefix(r.URL.Path, "/v1/health/service/")
	passingOnly := r.URL.Query().Has("passing")
	s.mu.Lock()
	defer s.mu.Unlock()
	out := []map[string]any{}
	for _, in := range s.instances(name) {
		serf := "passing"
		if s.down[in.Node] {
			serf = "critical"
		}
		if passingOnly && (serf != "passing" || in.Status != "passing") {
			continue
		}
		out = append(out, map[string]any{
			"Node":    map[string]any{"Node": in.Node, "Address": in.Address},
			"Service": map[string]any{"ID": in.ID, "Service": in.Service, "Address": in.ServiceAddr, "Port": in.Port},
			"Checks": []map[string]any{
				{"Node": in.Node, "CheckID": "serfHealth", "Name": "Serf Health Status", "Status": serf},
				{"Node": in.Node, "CheckID": in.CheckID, "Name": in.CheckName, "Status": in.Status, "ServiceID": in.ID, "ServiceName": in.Service},
			},
		})
	}
	writeJSON(w, s.index, out)
}

// SetServer adds a Consul server or changes its health; autopilot's
// failure tolerance follows (healthy servers beyond a quorum).
func (s *Server) SetServer(name string, healthy bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.servers[name] = healthy
	s.bump()
}

// autopilotHealth is GET /v1/operator/autopilot/health: 200 when healthy,
// 429 when not, as Consul answers.
func (s *Server) autopilotHealth(w http.ResponseWriter, _ *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var names []string
	for n := range s.servers {
		names = append(names, n)
	}
	sort.Strings(names)
	healthy := 0
	servers := []map[string]any{}
	for _, n := range names {
		serf := "alive"
		if !s.servers[n] {
			serf = "failed"
		} else {
			healthy++
		}
		servers = append(servers, map[string]any{"ID": n, "Name": n, "Address": n + ":8300", "SerfStatus": serf, "Healthy": s.servers[n], "Voter": true, "Leader": n == names[0]})
	}
	tolerance := healthy - (len(names)/2 + 1)
	if tolerance < 0 {
		tolerance = 0
	}
	reply := map[string]any{"Healthy": healthy == len(names), "FailureTolerance": tolerance, "Servers": servers}
	w.Header().Set("Content-Type", "application/json")
	if healthy != len(names) {
		w.WriteHeader(http.StatusTooManyRequests)
	}
	_ = json.NewEncoder(w).Encode(reply)
}

// agentMembers is GET /v1/agent/members: the servers and every node with
// a registered service; Status 1 is alive, 4 failed (serf's codes).
func (s *Server) agentMembers(w http.ResponseWriter, _ *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	seen := map[string]bool{}
	out := []map[string]any{}
	add := func(name string, alive bool) {
		if seen[name] {
			return
		}
		seen[name] = true
		status := 1
		if !alive {
			status = 4
		}
		out = append(out, map[string]any{"Name": name, "Addr": "127.0.0.1", "Port": 8301, "Status": status, "Tags": map[string]string{}})
	}
	for n, ok := range s.servers {
		add(n, ok && !s.down[n])
	}
	for _, in := range s.services {
		add(in.Node, !s.down[in.Node])
	}
	sort.Slice(out, func(i, j int) bool { return out[i]["Name"].(string) < out[j]["Name"].(string) })
	writeJSON(w, s.index, out)
}

// healthNode is GET /v1/health/node/<node>: the node's serfHealth check
// and its services' checks.
func (s *Server) healthNode(w http.ResponseWriter, r *http.Request) {
	node := strings.TrimPrefix(r.URL.Path, "/v1/health/node/")
	s.mu.Lock()
	defer s.mu.Unlock()
	serf := "passing"
	if s.down[node] || !s.servers[node] && !s.hasNode(node) {
		serf = "critical"
	}
	out := []map[string]any{{"Node": node, "CheckID": "serfHealth", "Name": "Serf Health Status", "Status": serf}}
	for _, in := range s.services {
		if in.Node == node {
			out = append(out, map[string]any{"Node": node, "CheckID": in.CheckID, "Name": in.CheckName, "Status": in.Status, "ServiceID": in.ID, "ServiceName": in.Service})
		}
	}
	writeJSON(w, s.index, out)
}

func (s *Server) hasNode(node string) bool {
	for _, in := range s.services {
		if in.Node == node {
			return true
		}
	}
	return false
}
