package deploy

import (
	"context"
	"fmt"
	"io"
	"os/exec"
	"strings"
	"sync"
	"time"

	nomadapi "github.com/hashicorp/nomad/api"
	"github.com/hoctl/hoctl/pkg/hostout"
	"github.com/hoctl/hoctl/pkg/httpapi"
	"github.com/hoctl/hoctl/pkg/inventory"
	"github.com/hoctl/hoctl/pkg/sshexec"
	"github.com/hoctl/hoctl/pkg/tasks"
)

// nomadNode finds the Nomad client node of h (by name); nil when h is not
// a Nomad client.
func (r *Run) nomadNode(ctx context.Context, h *inventory.Host) (*nomadapi.Client, *nomadapi.NodeListStub, error) {
	if r.Clients.Nomad == nil {
		return nil, nil, nil
	}
	c, err := r.Clients.Nomad(ctx)
	if err != nil {
		return nil, nil, err
	}
	nodes, _, err := c.Nodes().List((&nomadapi.QueryOptions{}).WithContext(ctx))
	if err != nil {
		return nil, nil, httpapi.Clean(err, "nomad nodes")
	}
	for _, n := range nodes {
		if n.Name == h.Name {
			return c, n, nil
		}
	}
	return c, nil, nil
}

func (r *Run) progress(h *inventory.Host, msg string) {
	if r.Opts.Progress != nil {
		r.Opts.Progress(h.Name, msg)
	}
}

// deployHost drains the host's Nomad node, then runs the deploy command
// on this machine, its output streamed.
func (r *Run) deployHost(ctx context.Context, env *tasks.Env, h *inventory.Host) (string, error) {
	var notes []string
	c, node, err := r.nomadNode(ctx, h)
	if err != nil {
		return "", err
	}
	if node == nil {
		notes = append(notes, "not a Nomad client: no drain")
	} else {
		_, err := c.Nodes().UpdateDrainOpts(node.ID, &nomadapi.DrainOptions{DrainSpec: &nomadapi.DrainSpec{Deadline: r.Opts.DrainDeadline, IgnoreSystemJobs: true}},
			(&nomadapi.WriteOptions{}).WithContext(ctx))
		if err != nil {
			return "", fmt.Errorf("draining %s: %w", h.Name, httpapi.Clean(err, ""))
		}
		for {
			n, _, err := c.Nodes().Info(node.ID, (&nomadapi.QueryOptions{}).WithContext(ctx))
			if err != nil {
				return "", fmt.Errorf("draining %s: %w", h.Name, httpapi.Clean(err, ""))
			}
			if n.DrainStrategy == nil {
				break
			}
			r.progress(h, "draining: allocations moving off "+h.Name)
			select {
			case <-ctx.Done():
				return "", ctx.Err()
			case <-time.After(200 * time.Millisecond):
			}
		}
		notes = append(notes, "drained and ineligible")
	}
	var tail tailBuffer
	out := io.Writer(&tail)
	if r.Opts.Output != nil {
		out = &teeWriter{tail: &tail, shown: hostout.New(r.Opts.Output, h.Name+" | ", r.Opts.OutputLock)}
	}
	if r.Opts.Rollback {
		run, err := env.Connect(ctx, h)
		if err != nil {
			return "", err
		}
		_, err = run.Run(ctx, sshexec.Cmd{Script: RollbackCommand, Stdout: out, Stderr: out})
		if tw, ok := out.(*teeWriter); ok {
			tw.shown.Flush()
		}
		if err != nil {
			return "", fmt.Errorf("rollback on %s failed (%w): %s; the node stays drained and ineligible", h.Name, err, tail.last())
		}
		return strings.Join(append(notes, "switched to the previous generation"), "; "), nil
	}
	line, err := r.Command(h)
	if err != nil {
		return "", fmt.Errorf("deploy.command: %w", err)
	}
	release := func() {}
	if r.magic() {
		if err := r.arm(ctx, env, h); err != nil {
			return "", err
		}
		release = r.holdBack(ctx, env, h)
		notes = append(notes, fmt.Sprintf("magic rollback armed (%s from the deploy command's end)", r.Opts.ConfirmTimeout))
	}
	cmd := exec.CommandContext(ctx, "sh", "-c", line)
	cmd.Stdout, cmd.Stderr = out, out
	err = cmd.Run()
	release()
	if tw, ok := out.(*teeWriter); ok {
		tw.shown.Flush() // a last line without a newline
	}
	if err != nil {
		err = fmt.Errorf("deploy command for %s failed (%w): %s; the node stays drained and ineligible", h.Name, err, tail.last())
		if !r.magic() {
			return "", fmt.Errorf("%w. To roll back: hoctl deploy --rollback %s", err, h.Name)
		}
		run, cerr := env.Connect(ctx, h)
		if cerr != nil {
			return "", fmt.Errorf("%w; its magic rollback fires within %s", err, r.Opts.ConfirmTimeout)
		}
		r.mu.Lock()
		deadline := r.armed[h.Name].Add(r.Opts.ConfirmTimeout)
		r.mu.Unlock()
		return "", r.undo(ctx, run, h, deadline, err)
	}
	return strings.Join(append(notes, "deploy command exited 0"), "; "), nil
}

// magic reports whether deploys arm the magic rollback: a --rollback
// switches to a generation that already ran, and arms nothing.
func (r *Run) magic() bool { return r.Opts.ConfirmTimeout > 0 && !r.Opts.Rollback }

// tailBuffer keeps the last lines written, for the error message.
type tailBuffer struct {
	mu  sync.Mutex
	buf []byte
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, p...)
	if len(t.buf) > 4096 {
		t.buf = t.buf[len(t.buf)-4096:]
	}
	return len(p), nil
}

func (t *tailBuffer) last() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	lines := strings.Split(strings.TrimSpace(string(t.buf)), "\n")
	return lines[len(lines)-1]
}

// teeWriter keeps the tail for errors and shows the output.
type teeWriter struct {
	tail  *tailBuffer
	shown *hostout.Writer
}

func (t *teeWriter) Write(b []byte) (int, error) {
	_, _ = t.tail.Write(b)
	return t.shown.Write(b)
}
