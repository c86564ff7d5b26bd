package tasks

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/hoctl/hoctl/pkg/filecopy"
	"github.com/hoctl/hoctl/pkg/inventory"
	"github.com/hoctl/hoctl/pkg/sshexec"
)

// KindCopy is the journal kind of `hoctl copy`.
const KindCopy = "copy"

func init() { Register(KindCopy, rebuildCopy) }

// CopyStep is a step that puts spec.Src at spec.Dest on hosts (none:
// this machine) with filecopy: its before check reads each host's file
// (the plan says per host what would change), its action writes only
// where something differs, and its after check reads the file back.
// src, when the caller hashed the source already, saves reading it again;
// nil reads it on first use.
func CopyStep(title string, hosts []*inventory.Host, spec filecopy.Spec, src *filecopy.Source) *Step {
	c := &copyOps{spec: spec, src: src, states: map[string]*filecopy.State{}, given: map[string][2]string{}}
	return &Step{
		Title:  title,
		Hosts:  hosts,
		Before: &Func{Desc: "read " + spec.Dest + ": sha256, mode, owner (a regular file, or none in an existing directory; a directory: the file of SRC's name in it)", Fn: c.before},
		Action: &Func{DescFn: c.describe, Fn: c.act},
		After:  &Func{Desc: "read " + spec.Dest + " back: sha256, mode and owner as copied", Fn: c.verify},
	}
}

// copyOps is one copy step's state: the source, hashed once, and what
// each host's before check found (for the plan) and its action gave
// (for the after check).
type copyOps struct {
	spec filecopy.Spec

	mu     sync.Mutex
	src    *filecopy.Source
	states map[string]*filecopy.State
	given  map[string][2]string // host: mode, owner
}

func (c *copyOps) source(ctx context.Context) (*filecopy.Source, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.src != nil {
		return c.src, nil
	}
	src, err := filecopy.ReadSource(ctx, c.spec.Src)
	if err != nil {
		return nil, fmt.Errorf("source: %w", err)
	}
	c.src = src
	return src, nil
}

func runnerFor(ctx context.Context, env *Env, h *inventory.Host) (sshexec.Runner, error) {
	if IsLocal(h) {
		return sshexec.NewLocal(&sshexec.Target{Name: "local", Address: inventory.LocalAddress}), nil
	}
	return env.Connect(ctx, h)
}

// sourceAndRunner is what every phase of a host's copy starts from: the
// local file, read once per run, and the host's runner.
func (c *copyOps) sourceAndRunner(ctx context.Context, env *Env, h *inventory.Host) (*filecopy.Source, sshexec.Runner, error) {
	src, err := c.source(ctx)
	if err != nil {
		return nil, nil, err
	}
	r, err := runnerFor(ctx, env, h)
	if err != nil {
		return nil, nil, err
	}
	return src, r, nil
}

func (c *copyOps) before(ctx context.Context, env *Env, h *inventory.Host) (string, error) {
	src, r, err := c.sourceAndRunner(ctx, env, h)
	if err != nil {
		return "", err
	}
	st, err := filecopy.Inspect(ctx, r, c.spec, 0)
	if err != nil {
		return "", err
	}
	c.mu.Lock()
	c.states[h.Name] = st
	c.mu.Unlock()
	if ch := c.spec.Changes(src, st); len(ch) > 0 {
		return c.into(st.Path) + "would change: " + strings.Join(ch, ", "), nil
	}
	return c.into(st.Path) + "unchanged", nil
}

// into names the file when DEST is a directory on the host, where the
// file of SRC's name goes: the plan and the journal say which file.
func (c *copyOps) into(file string) string {
	if file == "" || file == c.spec.Dest {
		return ""
	}
	return file + ": "
}

// describe is the action for h, precise once the before check has read
// the host's file: what would change there, or that nothing would.
func (c *copyOps) describe(h *inventory.Host) string {
	c.mu.Lock()
	st, src := c.states[h.Name], c.src
	c.mu.Unlock()
	what := "write " + c.spec.Src + " to " + c.spec.Dest + " (temporary file, sync, chmod/chown, rename)"
	if st == nil || src == nil {
		return what + " unless it already has this content, mode and owner"
	}
	what = "write " + c.spec.Src + " to " + st.Path + " (temporary file, sync, chmod/chown, rename)"
	ch := c.spec.Changes(src, st)
	if len(ch) == 0 {
		mode, owner := c.spec.Want(st)
		return fmt.Sprintf("nothing: %s is unchanged (sha256 %s, mode %s, owner %s)", st.Path, short(src.Sum), mode, owner)
	}
	mode, owner := c.spec.Want(st)
	if owner == "" {
		owner = "the connecting user"
	}
	return fmt.Sprintf("%s: %s; %d bytes, sha256 %s, mode %s, owner %s", what, strings.Join(ch, ", "), src.Size, short(src.Sum), mode, owner)
}

func short(sum string) string {
	if len(sum) > 12 {
		return sum[:12] + "…"
	}
	return sum
}

func (c *copyOps) act(ctx context.Context, env *Env, h *inventory.Host) (string, error) {
	src, r, err := c.sourceAndRunner(ctx, env, h)
	if err != nil {
		return "", err
	}
	start, last := time.Now(), time.Time{}
	var sent int64
	progress := func(n int64) {
		sent += n
		if now := time.Now(); now.Sub(last) >= 250*time.Millisecond {
			last = now
			ReportProgress(ctx, filecopy.ProgressText(sent, src.Size, now.Sub(start)))
		}
	}
	res, err := filecopy.Copy(ctx, r, c.spec, src, copyTimeout(ctx), progress)
	if err != nil {
		return "", err
	}
	c.mu.Lock()
	c.given[h.Name] = [2]string{res.Mode, res.Owner}
	c.mu.Unlock()
	return c.into(res.Path) + res.Note(), nil
}

// copyTimeout is what is left of the step's time limit (Func puts it on
// ctx); 0 leaves the host's command_timeout.
func copyTimeout(ctx context.Context) time.Duration {
	if d, ok := ctx.Deadline(); ok {
		return time.Until(d)
	}
	return 0
}

func (c *copyOps) verify(ctx context.Context, env *Env, h *inventory.Host) (string, error) {
	src, r, err := c.sourceAndRunner(ctx, env, h)
	if err != nil {
		return "", err
	}
	c.mu.Lock()
	given, ok := c.given[h.Name]
	c.mu.Unlock()
	if !ok {
		// A resumed run whose action ran before: check against the spec.
		st, err := filecopy.Inspect(ctx, r, c.spec, 0)
		if err != nil {
			return "", err
		}
		given[0], given[1] = c.spec.Want(st)
	}
	if err := filecopy.Verify(ctx, r, c.spec, src, given[0], given[1], 0); err != nil {
		return "", err
	}
	return "sha256 " + short(src.Sum) + " verified", nil
}

// CopyRunbook is `hoctl copy`: one copy step on hosts, journaled and
// resumable as its kind.
func CopyRunbook(hosts []*inventory.Host, spec filecopy.Spec, src *filecopy.Source) *Runbook {
	names := make([]string, len(hosts))
	for i, h := range hosts {
		names[i] = h.Name
	}
	title := "copy " + filepath.Base(spec.Src) + " to " + spec.Dest
	step := CopyStep(title, hosts, spec, src)
	params := map[string]string{"src": spec.Src, "dest": spec.Dest, "targets": strings.Join(names, ",")}
	if spec.Mode != "" {
		params["mode"] = spec.Mode
	}
	if spec.Owner != "" {
		params["owner"] = spec.Owner
	}
	if src != nil {
		params["sha256"] = src.Sum
	}
	return &Runbook{Name: title + " on " + strings.Join(names, ", "), Steps: []*Step{step}, Kind: KindCopy,
		Params: params, Resumable: true}
}

// rebuildCopy resumes a copy on the hosts it had not finished, refusing
// a source that changed since (unless --force).
func rebuildCopy(ctx context.Context, r *Rebuild) (*Runbook, error) {
	p := r.Run.Params
	spec := filecopy.Spec{Src: p["src"], Dest: p["dest"], Mode: p["mode"], Owner: p["owner"]}
	src, err := filecopy.ReadSource(ctx, spec.Src)
	if err != nil {
		return nil, &RefusedError{Reason: fmt.Sprintf("source of run %s: %v", r.Run.ID, err), Err: err}
	}
	if src.Sum != p["sha256"] && !r.Force {
		return nil, Refusef("%s changed since run %s started (sha256 %s, was %s): check it, then use --force", spec.Src, r.Run.ID, short(src.Sum), short(p["sha256"]))
	}
	target := p["targets"]
	if r.Limit != "" {
		target += ",&" + r.Limit
	}
	hosts, err := r.Inventory.Select(target)
	if err != nil {
		return nil, err
	}
	rb := CopyRunbook(hosts, spec, src)
	rb.Params["targets"] = p["targets"]
	return rb, nil
}
