// Package nomadsim is the lab's stand-in for a Nomad server: the job
// endpoints hoctl migrate-jobs calls (parse, plan with a diff, register
// with a check index and a submission, a job's allocations, the leader),
// answering with the official API's types (github.com/hashicorp/nomad/api)
// so that the JSON is Nomad's. Nomad cannot run on these machines; hoctl
// talks to this through the official client library.
//
// Its job parser reads the HCL the lab's tests use (job, group, task,
// config with image, volumes and mount blocks) with hclsyntax; it is not
// Nomad's jobspec parser. A task whose image contains "crashloop" never
// becomes healthy.
package nomadsim

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"reflect"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/hashicorp/nomad/api"
)

// Server is a running simulated Nomad.
type Server struct {
	Addr string

	mu      sync.Mutex
	index   uint64
	jobs    map[string]*stored
	allocs  map[string][]*api.AllocationListStub
	nodes   map[string]*api.NodeListStub
	servers map[string]bool
	// DrainTime is how long a drain takes.
	DrainTime  time.Duration
	drains     []string
	drainStart map[string]time.Time
	srv        *http.Server
	// HealthyAfter is how long a new allocation takes to become healthy.
	HealthyAfter time.Duration
}

type stored struct {
	job    *api.Job
	source string
}

// Start listens on addr (a loopback address).
func Start(addr string) (*Server, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	s := &Server{Addr: ln.Addr().String(), jobs: map[string]*stored{}, allocs: map[string][]*api.AllocationListStub{}, index: 10,
		nodes: map[string]*api.NodeListStub{}, servers: map[string]bool{"c1": true, "c2": true, "c3": true},
		DrainTime: 300 * time.Millisecond, drainStart: map[string]time.Time{},
		HealthyAfter: 300 * time.Millisecond}
	mux := http.NewServeMux()
	mux.HandleFunc("/v1/status/leader", func(w http.ResponseWriter, _ *http.Request) { writeJSON(w, s.Addr) })
	mux.HandleFunc("/v1/jobs/parse", s.parse)
	mux.HandleFunc("/v1/jobs", s.register)
	mux.HandleFunc("/v1/job/", s.job)
	mux.HandleFunc("/v1/nodes", s.nodeList)
	mux.HandleFunc("/v1/node/", s.node)
	mux.HandleFunc("/v1/allocations", s.allocationList)
	mux.HandleFunc("/v1/operator/autopilot/health", s.autopilotHealth)
	s.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	for _, n := range []string{"c1", "c2", "c3"} {
		s.SetNode(n, "ready", true, false)
	}
	go func() { _ = s.srv.Serve(ln) }()
	return s, nil
}

// Close stops the server.
func (s *Server) Close() error { return s.srv.Close() }

// Submitted is the HCL source submitted with a job's current version.
func (s *Server) Submitted(id string) (string, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	j := s.jobs[id]
	if j == nil {
		return "", false
	}
	return j.source, true
}

// Bump registers job id again out of band (another operator), moving its
// modify index.
func (s *Server) Bump(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if j := s.jobs[id]; j != nil {
		s.index++
		j.job.JobModifyIndex = &s.index
	}
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Nomad-Index", "1")
	_ = json.NewEncoder(w).Encode(v)
}

func (s *Server) parse(w http.ResponseWriter, r *http.Request) {
	var req api.JobsParseRequest
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	job, err := parseJob(req.JobHCL)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	writeJSON(w, job)
}

// parseJob reads the subset of a jobspec the lab uses.
func parseJob(src string) (*api.Job, error) {
	f, diags := hclsyntax.ParseConfig([]byte(src), "job.hcl", hcl.InitialPos)
	if diags.HasErrors() {
		return nil, fmt.Errorf("1 error occurred:\n\t* %s", diags.Error())
	}
	raw := func(e hclsyntax.Expression) string {
		r := e.Range()
		return strings.Trim(src[r.Start.Byte:r.End.Byte], `"`)
	}
	for _, b := range f.Body.(*hclsyntax.Body).Blocks {
		if b.Type != "job" || len(b.Labels) != 1 {
			continue
		}
		id := b.Labels[0]
		typ := "service"
		if a := b.Body.Attributes["type"]; a != nil {
			typ = raw(a.Expr)
		}
		job := &api.Job{ID: &id, Name: &id, Type: &typ}
		for _, g := range b.Body.Blocks {
			if g.Type != "group" || len(g.Labels) != 1 {
				continue
			}
			name, count := g.Labels[0], 1
			if a := g.Body.Attributes["count"]; a != nil {
				_, _ = fmt.Sscan(raw(a.Expr), &count)
			}
			tg := &api.TaskGroup{Name: &name, Count: &count}
			for _, t := range g.Body.Blocks {
				if t.Type != "task" || len(t.Labels) != 1 {
					continue
				}
				task := &api.Task{Name: t.Labels[0], Config: map[string]any{}}
				if a := t.Body.Attributes["driver"]; a != nil {
					task.Driver = raw(a.Expr)
				}
				for _, c := range t.Body.Blocks {
					if c.Type != "config" {
						continue
					}
					for n, a := range c.Body.Attributes {
						if tup, ok := a.Expr.(*hclsyntax.TupleConsExpr); ok {
							var items []any
							for _, e := range tup.Exprs {
								items = append(items, raw(e))
							}
							task.Config[n] = items
						} else {
							task.Config[n] = raw(a.Expr)
						}
					}
					var mounts []any
					for _, m := range c.Body.Blocks {
						if m.Type == "mount" {
							mm := map[string]any{}
							for n, a := range m.Body.Attributes {
								mm[n] = raw(a.Expr)
							}
							mounts = append(mounts, mm)
						}
					}
					if len(mounts) > 0 {
						task.Config["mount"] = mounts
					}
				}
				tg.Tasks = append(tg.Tasks, task)
			}
			job.TaskGroups = append(job.TaskGroups, tg)
		}
		return job, nil
	}
	return nil, fmt.Errorf("1 error occurred:\n\t* no job block")
}

// job serves /v1/job/<id>, /v1/job/<id>/plan and /v1/job/<id>/allocations.
func (s *Server) job(w http.ResponseWriter, r *http.Request) {
	rest := strings.TrimPrefix(r.URL.Path, "/v1/job/")
	id, what, _ := strings.Cut(rest, "/")
	s.mu.Lock()
	defer s.mu.Unlock()
	switch what {
	case "plan":
		var req api.JobPlanRequest
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil || req.Job == nil {
			http.Error(w, "bad plan request", http.StatusBadRequest)
			return
		}
		var old *api.Job
		var modify uint64
		if st := s.jobs[id]; st != nil {
			old, modify = st.job, *st.job.JobModifyIndex
		}
		resp := &api.JobPlanResponse{JobModifyIndex: modify, Annotations: &api.PlanAnnotations{DesiredTGUpdates: map[string]*api.DesiredUpdates{}}}
		if req.Diff {
			resp.Diff = diffJobs(old, req.Job)
		}
		for _, tg := range req.Job.TaskGroups {
			u := &api.DesiredUpdates{}
			switch {
			case old == nil:
				u.Place = uint64(*tg.Count)
			case resp.Diff != nil && resp.Diff.Type == "None":
				u.Ignore = uint64(*tg.Count)
			default:
				u.DestructiveUpdate = uint64(*tg.Count)
			}
			resp.Annotations.DesiredTGUpdates[*tg.Name] = u
		}
		writeJSON(w, resp)
	case "allocations":
		out := s.allocs[id]
		now := time.Now()
		for _, a := range out {
			created := time.Unix(0, a.CreateTime)
			if a.ClientStatus == "pending" && now.Sub(created) >= s.HealthyAfter {
				healthy := !crashloop(s.jobs[id].job)
				a.ClientStatus = "running"
				if !healthy {
					a.ClientStatus = "failed"
				}
				a.DeploymentStatus = &api.AllocDeploymentStatus{Healthy: &healthy}
			}
		}
		if out == nil {
			out = []*api.AllocationListStub{}
		}
		writeJSON(w, out)
	case "":
		st := s.jobs[id]
		if st == nil {
			http.Error(w, "job not found", http.StatusNotFound)
			return
		}
		writeJSON(w, st.job)
	default:
		http.NotFound(w, r)
	}
}

func crashloop(j *api.Job) bool {
	for _, tg := range j.TaskGroups {
		for _, t := range tg.Tasks {
			if img, _ := t.Config["image"].(string); strings.Contains(img, "crashloop") {
				return true
			}
		}
	}
	return false
}

// register is PUT /v1/jobs, honouring EnforceIndex the way Nomad does.
func (s *Server) register(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPut && r.Method != http.MethodPost {
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	var req api.JobRegisterRequest
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil || req.Job == nil || req.Job.ID == nil {
		http.Error(w, "bad register request", http.StatusBadRequest)
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	id := *req.Job.ID
	var current uint64
	if st := s.jobs[id]; st != nil {
		current = *st.job.JobModifyIndex
	}
	if req.EnforceIndex && req.JobModifyIndex != current {
		if current == 0 {
			http.Error(w, fmt.Sprintf("Enforcing job modify index %d: job does not exist", req.JobModifyIndex), http.StatusInternalServerError)
		} else {
			http.Error(w, fmt.Sprintf("Enforcing job modify index %d: job exists with conflicting job modify index: %d", req.JobModifyIndex, current), http.StatusInternalServerError)
		}
		return
	}
	s.index++
	idx := s.index
	version := uint64(0)
	if st := s.jobs[id]; st != nil && st.job.Version != nil {
		version = *st.job.Version + 1
	}
	req.Job.JobModifyIndex, req.Job.Version = &idx, &version
	src := ""
	if req.Submission != nil {
		src = req.Submission.Source
	}
	s.jobs[id] = &stored{job: req.Job, source: src}
	var allocs []*api.AllocationListStub
	for _, tg := range req.Job.TaskGroups {
		for i := 0; i < *tg.Count; i++ {
			allocs = append(allocs, &api.AllocationListStub{ID: fmt.Sprintf("%s-%d-%d", id, idx, i), JobID: id, JobVersion: version,
				TaskGroup: *tg.Name, ClientStatus: "pending", CreateIndex: idx, ModifyIndex: idx, CreateTime: time.Now().UnixNano()})
		}
	}
	s.allocs[id] = allocs
	writeJSON(w, &api.JobRegisterResponse{EvalID: fmt.Sprintf("eval-%d", idx), EvalCreateIndex: idx, JobModifyIndex: idx})
}

// diffJobs compares two jobs' task configs the way `nomad job plan`
// shows them: per group and task, the config fields that change.
func diffJobs(old, cur *api.Job) *api.JobDiff {
	d := &api.JobDiff{ID: *cur.ID, Type: "None"}
	if old == nil {
		d.Type = "Added"
		return d
	}
	oldTasks := map[string]*api.Task{}
	for _, tg := range old.TaskGroups {
		for _, t := range tg.Tasks {
			oldTasks[*tg.Name+"/"+t.Name] = t
		}
	}
	for _, tg := range cur.TaskGroups {
		tgd := &api.TaskGroupDiff{Type: "None", Name: *tg.Name}
		for _, t := range tg.Tasks {
			td := &api.TaskDiff{Type: "None", Name: t.Name}
			o := oldTasks[*tg.Name+"/"+t.Name]
			if o == nil {
				td.Type = "Added"
			} else {
				var fields []*api.FieldDiff
				keys := map[string]bool{}
				for k := range o.Config {
					keys[k] = true
				}
				for k := range t.Config {
					keys[k] = true
				}
				var names []string
				for k := range keys {
					names = append(names, k)
				}
				sort.Strings(names)
				for _, k := range names {
					if !reflect.DeepEqual(o.Config[k], t.Config[k]) {
						fields = append(fields, &api.FieldDiff{Type: "Edited", Name: k, Old: fmt.Sprint(o.Config[k]), New: fmt.Sprint(t.Config[k])})
					}
				}
				if len(fields) > 0 {
					td.Type = "Edited"
					td.Annotations = []string{"forces create/destroy update"}
					td.Objects = []*api.ObjectDiff{{Type: "Edited", Name: "Config", Fields: fields}}
				}
			}
			if td.Type != "None" {
				tgd.Type = "Edited"
			}
			tgd.Tasks = append(tgd.Tasks, td)
		}
		if tgd.Type != "None" {
			d.Type = "Edited"
		}
		d.TaskGroups = append(d.TaskGroups, tgd)
	}
	return d
}
