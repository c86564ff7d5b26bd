package tasks

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"text/template"
	"time"

	"github.com/hoctl/hoctl/pkg/inventory"
	"github.com/hoctl/hoctl/pkg/sshexec"
)

// Shell is an Op that runs a shell command line on the host, rendered from
// a Go template per host.
type Shell struct {
	Source string
	tmpl   *template.Template
	data   func(h *inventory.Host) any
}

// TemplateData is what runbook templates see.
type TemplateData struct {
	Host      string
	HostInfo  *inventory.Host
	Vars      map[string]string
	Inventory *inventory.Inventory
}

// NewShell parses src as a template; data supplies its values per host.
func NewShell(src string, data func(h *inventory.Host) any) (*Shell, error) {
	t, err := template.New("cmd").Option("missingkey=error").Parse(src)
	if err != nil {
		return nil, err
	}
	return &Shell{Source: src, tmpl: t, data: data}, nil
}

// Cmd is a Shell op for a fixed command line, with no template.
func Cmd(line string) *Shell {
	s, _ := NewShell("{{.}}", func(*inventory.Host) any { return line })
	s.Source = line
	return s
}

// Describe implements Op.
func (s *Shell) Describe(h *inventory.Host) (string, error) {
	var b bytes.Buffer
	if err := s.tmpl.Execute(&b, s.data(h)); err != nil {
		return "", templateError(err)
	}
	return b.String(), nil
}

func templateError(err error) error {
	var ee template.ExecError
	if errors.As(err, &ee) {
		msg := ee.Err.Error()
		if strings.Contains(msg, "map has no entry for key") {
			key := msg[strings.LastIndex(msg, "key")+4:]
			return fmt.Errorf("undefined variable %s", strings.Trim(key, `"`))
		}
		return ee.Err
	}
	return err
}

// Run implements Op.
func (s *Shell) Run(ctx context.Context, env *Env, h *inventory.Host, timeout time.Duration) (*Output, error) {
	line, err := s.Describe(h)
	if err != nil {
		return nil, err
	}
	var r sshexec.Runner
	if IsLocal(h) {
		r = sshexec.NewLocal(&sshexec.Target{Name: "local", Address: inventory.LocalAddress})
	} else {
		r, err = env.Connect(ctx, h)
		if err != nil {
			return nil, err
		}
	}
	res, err := r.Run(ctx, sshexec.Cmd{Script: line, Timeout: timeout})
	if res == nil {
		return nil, err
	}
	return &Output{Stdout: string(res.Stdout), Stderr: string(res.Stderr), ExitCode: res.ExitCode, Duration: res.Duration}, err
}

// Func is an Op implemented in Go (API calls, parsing command output).
type Func struct {
	Desc string
	// DescFn, when set, describes the op from state an earlier step (or
	// the plan's before checks) gathered: a send's parent is only known
	// once both sides were listed.
	DescFn func(h *inventory.Host) string
	Fn     func(ctx context.Context, env *Env, h *inventory.Host) (string, error)
}

// Describe implements Op.
func (f *Func) Describe(h *inventory.Host) (string, error) {
	if f.DescFn != nil {
		return f.DescFn(h), nil
	}
	return f.Desc, nil
}

// Run implements Op.
func (f *Func) Run(ctx context.Context, env *Env, h *inventory.Host, timeout time.Duration) (*Output, error) {
	if timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	start := time.Now()
	out, err := f.Fn(ctx, env, h)
	return &Output{Stdout: out, Note: out, Duration: time.Since(start)}, err
}
