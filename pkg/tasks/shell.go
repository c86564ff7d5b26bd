package tasks

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"strings"
	"text/template"
	"text/template/parse"
	"time"

	"github.com/hoctl/hoctl/pkg/hostout"
	"github.com/hoctl/hoctl/pkg/inventory"
	"github.com/hoctl/hoctl/pkg/sshexec"
)

// Shell is an Op that runs a shell command line on the host, rendered from
// a Go template per host.
type Shell struct {
	Source string
	// Secrets are passed to the command as exported variables (name to
	// value, see sshexec.Cmd.Secrets); its template renders references to
	// them, never their values.
	Secrets map[string]string
	tmpl    *template.Template
	data    func(h *inventory.Host) any
}

// TemplateData is what runbook templates see. A secret's entry in Vars is
// a SecretRef.
type TemplateData struct {
	Host      string
	HostInfo  *inventory.Host
	Vars      map[string]any
	Inventory *inventory.Inventory
}

// SecretRef is what a secret renders as in a command: a double-quoted
// reference to the variable that carries its value ("$HOCTL_SECRET_x"),
// one shell word, so the value itself is in no command line, plan,
// journal or argv.
type SecretRef string

// SecretEnv is the variable that carries secret name's value.
func SecretEnv(name string) string { return "HOCTL_SECRET_" + name }

// NewSecretRef is the reference to secret name.
func NewSecretRef(name string) SecretRef { return SecretRef(`"$` + SecretEnv(name) + `"`) }

// templateFuncs are the functions runbook templates may call. q quotes a
// value as one shell word: {{ .Vars.x | q }}. A secret is already one
// word and stays a reference.
var templateFuncs = template.FuncMap{
	"q": func(v any) string {
		switch v := v.(type) {
		case SecretRef:
			return string(v)
		case string:
			return sshexec.Quote(v)
		}
		return sshexec.Quote(fmt.Sprint(v))
	},
}

// NewShell parses src as a template; data supplies its values per host.
func NewShell(src string, data func(h *inventory.Host) any) (*Shell, error) {
	t, err := template.New("cmd").Option("missingkey=error").Funcs(templateFuncs).Parse(src)
	if err != nil {
		return nil, err
	}
	return &Shell{Source: src, tmpl: t, data: data}, nil
}

// Unquoted lists the template's actions that paste a value into the
// command without q, where a space, quote, $, ` or ; in the value would
// be read by the shell. What the inventory holds to one plain word
// (oneWord: a host's name, address and port) and secrets are safe as
// they are, at the template's root or under a {{with}} of theirs.
func (s *Shell) Unquoted(secrets map[string]bool) []string {
	var out []string
	var walk func(n parse.Node, dot []string)
	walk = func(n parse.Node, dot []string) {
		switch n := n.(type) {
		case *parse.ListNode:
			if n == nil {
				return
			}
			for _, c := range n.Nodes {
				walk(c, dot)
			}
		case *parse.IfNode:
			walk(n.List, dot)
			walk(n.ElseList, dot)
		case *parse.RangeNode:
			walk(n.List, nil) // an element: not a field of the data
			walk(n.ElseList, dot)
		case *parse.WithNode:
			walk(n.List, withDot(n.Pipe, dot))
			walk(n.ElseList, dot)
		case *parse.ActionNode:
			if !safeAction(n.Pipe, dot, secrets) {
				out = append(out, n.String())
			}
		}
	}
	if s.tmpl.Tree != nil {
		walk(s.tmpl.Root, []string{})
	}
	return out
}

// oneWord are the fields of TemplateData whose values the inventory
// validates to be one word with nothing in it the shell reads: host names
// (letters, digits, '-' and '_'), addresses (a host name or an IP
// address) and ports.
var oneWord = map[string]bool{"Host": true, "HostInfo.Name": true, "HostInfo.Address": true, "HostInfo.Port": true}

// fieldPath is where a field or variable in the template leads in
// TemplateData, as "HostInfo.Address", dot being where "." is (nil: not
// in the data, a range's element); "" when that is not known.
func fieldPath(n parse.Node, dot []string) string {
	var path []string
	switch n := n.(type) {
	case *parse.FieldNode:
		if dot == nil {
			return ""
		}
		path = append(append(path, dot...), n.Ident...)
	case *parse.VariableNode:
		if len(n.Ident) < 2 || n.Ident[0] != "$" {
			return ""
		}
		path = n.Ident[1:]
	default:
		return ""
	}
	return strings.Join(path, ".")
}

// withDot is "." inside {{with PIPE}}: the field it names, when it is
// one; nil when it is something else.
func withDot(p *parse.PipeNode, dot []string) []string {
	if p == nil || len(p.Decl) > 0 || len(p.Cmds) != 1 || len(p.Cmds[0].Args) != 1 {
		return nil
	}
	path := fieldPath(p.Cmds[0].Args[0], dot)
	if path == "" {
		return nil
	}
	return strings.Split(path, ".")
}

func safeAction(p *parse.PipeNode, dot []string, secrets map[string]bool) bool {
	if p == nil || len(p.Decl) > 0 || len(p.Cmds) == 0 {
		return true // an assignment prints nothing
	}
	last := p.Cmds[len(p.Cmds)-1]
	if id, ok := last.Args[0].(*parse.IdentifierNode); ok && id.Ident == "q" {
		return true
	}
	if len(p.Cmds) != 1 || len(last.Args) != 1 {
		return false
	}
	path := fieldPath(last.Args[0], dot)
	if oneWord[path] {
		return true
	}
	name, isVar := strings.CutPrefix(path, "Vars.")
	return isVar && secrets[name]
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
	data := s.data(h)
	if err := s.tmpl.Execute(&b, data); err != nil {
		return "", TemplateError(err, data)
	}
	return b.String(), nil
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
	// Output is redacted as it streams, before anything is cut, and only
	// its head and tail are kept.
	stdout, stderr := sshexec.NewHeadTail(OutputHead, OutputTail), sshexec.NewHeadTail(OutputHead, OutputTail)
	var so, se io.Writer = stdout, stderr
	if show := lineShower(ctx); show != nil {
		// The live view shows the last line, redacted, then made safe
		// for the terminal by hostout, as every host's output is.
		so, se = io.MultiWriter(stdout, newLastLine(show)), io.MultiWriter(stderr, newLastLine(show))
	}
	ro, re := newRedactWriter(so, env.Secrets), newRedactWriter(se, env.Secrets)
	res, err := r.Run(ctx, sshexec.Cmd{Script: line, Timeout: timeout, Stdout: ro, Stderr: re, Secrets: s.secretsFor(line)})
	ro.Flush()
	re.Flush()
	if res == nil {
		return nil, err
	}
	return &Output{Stdout: string(stdout.Bytes()), Stderr: string(stderr.Bytes()), ExitCode: res.ExitCode, Duration: res.Duration}, err
}

// secretsFor is the secrets line refers to: a command without any can use
// the connection's executor (sshexec.Cmd.Secrets).
func (s *Shell) secretsFor(line string) map[string]string {
	var out map[string]string
	for k, v := range s.Secrets {
		if strings.Contains(line, "$"+k) {
			if out == nil {
				out = map[string]string{}
			}
			out[k] = v
		}
	}
	return out
}

// OutputHead and OutputTail bound what a shell step keeps of each of its
// output streams for the journal, --json and the failure view.
const (
	OutputHead = 4 << 10
	OutputTail = 12 << 10
)

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
	o := &Output{Stdout: out, Note: out, Duration: time.Since(start)}
	if err != nil {
		o.ExitCode, o.NoExit = processExit(err)
	}
	return o, err
}

// processExit is the exit status of the command behind a failed Func
// (deploy's local command, a command on a host), or noExit when no
// command's status is in err's chain.
func processExit(err error) (code int, noExit bool) {
	var le *exec.ExitError
	if errors.As(err, &le) {
		return le.ExitCode(), false
	}
	var se *sshexec.ExitError
	if errors.As(err, &se) {
		return se.Code, false
	}
	return 0, true
}

// MaxShownLine bounds the last output line the live view keeps of a host.
const MaxShownLine = 512

// newLastLine is a writer that passes each line of a command's output,
// sanitised by hostout, to show. A carriage return ends a line too: a
// progress meter redraws its line with one, and its latest state is what
// an operator wants to see.
func newLastLine(show func(string)) io.Writer {
	return crLines{hostout.New(lastLineSink(show), "", nil)}
}

type crLines struct{ w io.Writer }

func (c crLines) Write(p []byte) (int, error) {
	if bytes.IndexByte(p, '\r') >= 0 {
		p = bytes.ReplaceAll(p, []byte{'\r'}, []byte{'\n'})
	}
	_, _ = c.w.Write(p)
	return len(p), nil
}

// lastLineSink takes hostout's lines and shows the last one that is not
// blank.
type lastLineSink func(string)

func (f lastLineSink) Write(p []byte) (int, error) {
	lines := strings.Split(string(p), "\n")
	for k := len(lines) - 1; k >= 0; k-- {
		if l := strings.TrimRight(lines[k], " \t"); strings.TrimSpace(l) != "" {
			if len(l) > MaxShownLine {
				l = strings.ToValidUTF8(l[:MaxShownLine], "") + "…"
			}
			f(strings.ReplaceAll(l, "\t", " "))
			break
		}
	}
	return len(p), nil
}
