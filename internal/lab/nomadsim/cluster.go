package nomadsim

import (
	"encoding/json"
	"net/http"
	"sort"
	"strings"
	"time"

	"github.com/hashicorp/nomad/api"
)

// SetNode adds a client node or changes its state: status "ready" or
// "down", eligibility, drain.
func (s *Server) SetNode(name, status string, eligible, drain bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	elig := "eligible"
	if !eligible {
		elig = "ineligible"
	}
	s.nodes[name] = &api.NodeListStub{ID: "node-" + name, Name: name, Status: status, SchedulingEligibility: elig, Drain: drain, Datacenter: "home"}
}

// SetServer adds a Nomad server or changes its health.
func (s *Server) SetServer(name string, healthy bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.servers[name] = healthy
}

// FailAllocation marks one of a job's allocations failed (a crash).
func (s *Server) FailAllocation(job string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if as := s.allocs[job]; len(as) > 0 {
		as[0].ClientStatus = "failed"
	}
}

func (s *Server) nodeList(w http.ResponseWriter, _ *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := []*api.NodeListStub{}
	for _, n := range s.nodes {
		out = append(out, n)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	writeJSON(w, out)
}

func (s *Server) allocationList(w http.ResponseWriter, _ *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := []*api.AllocationListStub{}
	for _, as := range s.allocs {
		out = append(out, as...)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	writeJSON(w, out)
}

// autopilotHealth answers 429 when unhealthy, as Nomad does.
func (s *Server) autopilotHealth(w http.ResponseWriter, _ *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var names []string
	for n := range s.servers {
		names = append(names, n)
	}
	sort.Strings(names)
	reply := &api.OperatorHealthReply{}
	healthy := 0
	for _, n := range names {
		if s.servers[n] {
			healthy++
		}
		reply.Servers = append(reply.Servers, api.ServerHealth{ID: n, Name: n, Address: n + ":4647", Healthy: s.servers[n], Voter: true, Leader: n == names[0]})
	}
	reply.Healthy = healthy == len(names)
	reply.FailureTolerance = max(0, healthy-(len(names)/2+1))
	w.Header().Set("Content-Type", "application/json")
	if !reply.Healthy {
		w.WriteHeader(http.StatusTooManyRequests)
	}
	_ = json.NewEncoder(w).Encode(reply)
}

// node serves /v1/node/<id>, /v1/node/<id>/drain and
// /v1/node/<id>/eligibility. A drain completes after DrainTime: the node
// stays ineligible with its allocations moved, as Nomad leaves it.
func (s *Server) node(w http.ResponseWriter, r *http.Request) {
	id, what, _ := strings.Cut(strings.TrimPrefix(r.URL.Path, "/v1/node/"), "/")
	s.mu.Lock()
	defer s.mu.Unlock()
	var stub *api.NodeListStub
	for _, n := range s.nodes {
		if n.ID == id {
			stub = n
		}
	}
	if stub == nil {
		http.Error(w, "node not found", http.StatusNotFound)
		return
	}
	switch what {
	case "":
		node := &api.Node{ID: stub.ID, Name: stub.Name, Status: stub.Status, SchedulingEligibility: stub.SchedulingEligibility, Datacenter: stub.Datacenter}
		if stub.Drain {
			if time.Since(s.drainStart[id]) >= s.DrainTime {
				stub.Drain = false
			} else {
				node.DrainStrategy = &api.DrainStrategy{StartedAt: s.drainStart[id]}
			}
		}
		writeJSON(w, node)
	case "drain":
		var req api.NodeUpdateDrainRequest
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		if req.DrainSpec != nil {
			stub.Drain, stub.SchedulingEligibility = true, "ineligible"
			s.drainStart[id] = time.Now()
			s.drains = append(s.drains, stub.Name)
		} else {
			stub.Drain = false
			if req.MarkEligible {
				stub.SchedulingEligibility = "eligible"
			}
		}
		writeJSON(w, &api.NodeDrainUpdateResponse{NodeModifyIndex: 1})
	case "eligibility":
		var req api.NodeUpdateEligibilityRequest
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		stub.SchedulingEligibility = req.Eligibility
		writeJSON(w, &api.NodeEligibilityUpdateResponse{NodeModifyIndex: 1})
	default:
		http.NotFound(w, r)
	}
}

// Node is a node's state: status, eligibility, draining.
func (s *Server) Node(name string) (status, eligibility string, drain bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if n := s.nodes[name]; n != nil {
		return n.Status, n.SchedulingEligibility, n.Drain
	}
	return "", "", false
}

// Drained lists the nodes drained so far, in order.
func (s *Server) Drained() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.drains...)
}
