// Package sshexectest stands in for hosts in unit tests: each command a
// runner is given is recorded in order and answered by a function of the
// host and the command, with no network and no shell.
package sshexectest

import (
	"context"
	"io"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hoctl/hoctl/pkg/inventory"
	"github.com/hoctl/hoctl/pkg/sshexec"
)

// Reply is how a host answers a command.
type Reply struct {
	Stdout, Stderr string
	Code           int
	// Err, when set, is the command's error instead of an exit status:
	// the connection failed (an *sshexec.ConnError), or with a Code, the
	// command was cut short (a timeout) and its result comes with it.
	Err error
}

// Call is one command a host was given.
type Call struct {
	Host string
	Cmd  sshexec.Cmd
}

// Line is the call as "host: command line".
func (c Call) Line() string { return c.Host + ": " + c.Cmd.Line() }

// Hosts answers the commands of any number of hosts. Its zero value
// answers every command with exit 0 and no output.
type Hosts struct {
	// Answer gives a command's reply; a command given Secrets sees them
	// in c.Secrets, as the host's shell would.
	Answer func(host string, c sshexec.Cmd) Reply
	// Delay holds each command this long, or until its context ends.
	Delay time.Duration

	mu      sync.Mutex
	calls   []Call
	running atomic.Int64
	peak    atomic.Int64
}

// Runner is host's runner.
func (h *Hosts) Runner(host string) sshexec.Runner { return &runner{hosts: h, name: host} }

// Connect is a tasks.Env's Connect: host's runner, never an error.
func (h *Hosts) Connect(_ context.Context, host *inventory.Host) (sshexec.Runner, error) {
	return h.Runner(host.Name), nil
}

// Calls are the commands given so far, in the order they started.
func (h *Hosts) Calls() []Call {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.calls)
}

// Reset forgets the calls so far.
func (h *Hosts) Reset() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.calls = nil
}

// Lines are the calls as "host: command line".
func (h *Hosts) Lines() []string {
	var out []string
	for _, c := range h.Calls() {
		out = append(out, c.Line())
	}
	return out
}

// Peak is the most commands that ran at once.
func (h *Hosts) Peak() int { return int(h.peak.Load()) }

type runner struct {
	hosts *Hosts
	name  string
}

func (r *runner) Name() string { return r.name }

// Run records c and answers it as the real runners do: output to the
// command's writers when it has them, else in the Result, and an
// *sshexec.ExitError for a non-zero exit.
func (r *runner) Run(ctx context.Context, c sshexec.Cmd) (*sshexec.Result, error) {
	h := r.hosts
	n := h.running.Add(1)
	defer h.running.Add(-1)
	for {
		p := h.peak.Load()
		if n <= p || h.peak.CompareAndSwap(p, n) {
			break
		}
	}
	h.mu.Lock()
	h.calls = append(h.calls, Call{Host: r.name, Cmd: c})
	h.mu.Unlock()
	if h.Delay > 0 {
		select {
		case <-time.After(h.Delay):
		case <-ctx.Done():
			return &sshexec.Result{Host: r.name, ExitCode: -1}, ctx.Err()
		}
	}
	var rep Reply
	if h.Answer != nil {
		rep = h.Answer(r.name, c)
	}
	if rep.Err != nil && rep.Code == 0 {
		return nil, rep.Err
	}
	res := &sshexec.Result{Host: r.name, ExitCode: rep.Code}
	if c.Stdout != nil {
		_, _ = io.WriteString(c.Stdout, rep.Stdout)
	} else {
		res.Stdout = []byte(rep.Stdout)
	}
	if c.Stderr != nil {
		_, _ = io.WriteString(c.Stderr, rep.Stderr)
	} else {
		res.Stderr = []byte(rep.Stderr)
	}
	switch {
	case rep.Err != nil:
		return res, rep.Err
	case rep.Code != 0:
		return res, &sshexec.ExitError{Host: r.name, Code: rep.Code}
	}
	return res, nil
}

// Func is a runner whose commands fn answers, for a test that needs the
// command's context (a command that runs until it is cancelled).
type Func struct {
	Host string
	Fn   func(ctx context.Context, c sshexec.Cmd) (*sshexec.Result, error)
}

func (f *Func) Name() string { return f.Host }

func (f *Func) Run(ctx context.Context, c sshexec.Cmd) (*sshexec.Result, error) { return f.Fn(ctx, c) }
