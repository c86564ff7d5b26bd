// Package nomad is hoctl's access to the Nomad HTTP API through the
// official client library (directly or through an SSH tunnel to
// nomad.via): parsing a job on the server, planning it with a diff,
// registering it with the plan's check index and its HCL source, and
// waiting for Nomad's verdict on the deployment it started (health.go).
package nomad

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"time"

	"github.com/hashicorp/nomad/api"
	"github.com/hoctl/hoctl/pkg/httpapi"
	"github.com/hoctl/hoctl/pkg/inventory"
	"github.com/hoctl/hoctl/pkg/sshexec"
)

// NewClient returns a Nomad client for the inventory's nomad section; via
// carries every connection when not nil; the token comes from token_env
// and is never printed. Every request is bounded by o.Timeout
// (DefaultTimeout when zero) on top of its caller's context.
func NewClient(cfg *inventory.API, via sshexec.Dialer, getenv func(string) string, o httpapi.Options) (*api.Client, error) {
	if cfg == nil {
		return nil, errors.New("the inventory has no nomad section")
	}
	addrs := cfg.URLs()
	u, err := url.Parse(addrs[0])
	if err != nil {
		return nil, fmt.Errorf("nomad.address: %w", err)
	}
	timeout := o.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	c := api.DefaultConfig()
	c.Address = u.String()
	if cfg.TokenEnv != "" {
		c.SecretID = getenv(cfg.TokenEnv)
	}
	tr := &http.Transport{Proxy: nil, MaxIdleConnsPerHost: 2}
	if via != nil {
		tr.DialContext = via.DialContext
	}
	tr.DialContext = httpapi.Dial(tr.DialContext, o.DialBound(len(addrs), timeout))
	rt, err := httpapi.Failover(httpapi.Endpoints("Nomad", "nomad", addrs, cfg.Via), tr, timeout, o.Trace)
	if err != nil {
		return nil, err
	}
	c.HttpClient = &http.Client{Transport: rt}
	return api.NewClient(c)
}

// DefaultTimeout bounds a request when the caller gives no bound: the
// default connect_timeout plus keepalive, as for an SSH host.
const DefaultTimeout = 15 * time.Second

// Jobs is what migrate-jobs asks of Nomad.
type Jobs struct {
	Client *api.Client
	// Checks, when set, names an allocation's failing Consul checks in
	// the report of an unhealthy job.
	Checks CheckReporter
}

// Parse has the server parse HCL into a job (as `nomad job run` does).
func (j *Jobs) Parse(ctx context.Context, hcl string) (*api.Job, error) {
	// ParseHCLOpts takes no context; the raw call to its endpoint does.
	var job api.Job
	_, err := j.Client.Raw().Write("/v1/jobs/parse", &api.JobsParseRequest{JobHCL: hcl, Canonicalize: true}, &job, (&api.WriteOptions{}).WithContext(ctx))
	if err != nil {
		return nil, httpapi.Clean(err, "nomad: parse")
	}
	if job.ID == nil {
		return nil, errors.New("nomad: parse returned a job without an ID")
	}
	return &job, nil
}

// Plan plans job with a diff.
func (j *Jobs) Plan(ctx context.Context, job *api.Job) (*api.JobPlanResponse, error) {
	p, _, err := j.Client.Jobs().PlanOpts(job, &api.PlanOptions{Diff: true}, (&api.WriteOptions{}).WithContext(ctx))
	if err != nil {
		return nil, httpapi.Clean(err, "nomad: plan "+*job.ID)
	}
	return p, nil
}

// ConflictError is a register refused because the job changed since it
// was planned: someone else submitted it. hoctl reports it; it does not
// plan and submit again on its own.
type ConflictError struct {
	Job string
	Err error
}

func (e *ConflictError) Error() string {
	return fmt.Sprintf("nomad: %s changed since it was planned (%v): look at `nomad job history %s`, then run again", e.Job, e.Err, e.Job)
}

// Register submits job only if its modify index is still index (the
// plan's, like `nomad job run -check-index`), with its HCL source kept on
// the server. It returns the job's new modify index and its evaluation.
func (j *Jobs) Register(ctx context.Context, job *api.Job, index uint64, source string) (Registration, error) {
	resp, _, err := j.Client.Jobs().RegisterOpts(job, &api.RegisterOptions{EnforceIndex: true, ModifyIndex: index,
		Submission: &api.JobSubmission{Source: source, Format: "hcl2"}}, (&api.WriteOptions{}).WithContext(ctx))
	if err != nil {
		if strings.Contains(err.Error(), "Enforcing job modify index") {
			return Registration{}, &ConflictError{Job: *job.ID, Err: err}
		}
		return Registration{}, httpapi.Clean(err, "nomad: register "+*job.ID)
	}
	return Registration{Job: *job.ID, Index: resp.JobModifyIndex, EvalID: resp.EvalID}, nil
}

// writeFields writes the fields that changed: Nomad's diff of an edited
// object lists every field, the unchanged ones with type None.
func writeFields(b *strings.Builder, prefix string, fields []*api.FieldDiff) {
	for _, f := range fields {
		if f.Type == "None" {
			continue
		}
		fmt.Fprintf(b, "\n    %s%s: %q => %q", prefix, f.Name, f.Old, f.New)
	}
}

func writeObject(b *strings.Builder, prefix string, o *api.ObjectDiff) {
	if o.Type == "None" {
		return
	}
	writeFields(b, prefix+o.Name+".", o.Fields)
	for _, sub := range o.Objects {
		writeObject(b, prefix+o.Name+".", sub)
	}
}

// DiffSummary renders a plan's diff in a few lines, as `nomad job plan`.
func DiffSummary(p *api.JobPlanResponse) string {
	if p.Diff == nil {
		return "no diff"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s job %q", strings.ToLower(p.Diff.Type), p.Diff.ID)
	for _, tg := range p.Diff.TaskGroups {
		for _, t := range tg.Tasks {
			if t.Type == "None" {
				continue
			}
			fmt.Fprintf(&b, "\n  %s task %s/%s", strings.ToLower(t.Type), tg.Name, t.Name)
			if t.Type != "Edited" {
				continue // an added or deleted task: every field is new or gone
			}
			writeFields(&b, "", t.Fields)
			for _, o := range t.Objects {
				writeObject(&b, "", o)
			}
		}
	}
	if p.Annotations != nil {
		var groups []string
		for g := range p.Annotations.DesiredTGUpdates {
			groups = append(groups, g)
		}
		sort.Strings(groups)
		for _, g := range groups {
			u := p.Annotations.DesiredTGUpdates[g]
			fmt.Fprintf(&b, "\n  group %s: %d create, %d destroy/create, %d in place, %d ignore", g, u.Place, u.DestructiveUpdate, u.InPlaceUpdate, u.Ignore)
		}
	}
	return b.String()
}
