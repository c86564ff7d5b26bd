// Package jobs rewrites host paths in Nomad job files byte-exactly: only
// the bytes of the matched path literals change, everything else
// (comments, alignment, CRLF line endings, heredocs elsewhere) stays as it
// was. It parses with hclsyntax and splices the source at the literals'
// byte ranges, because hclwrite reformats whole files when it writes them.
package jobs

import (
	"fmt"
	"path"
	"sort"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
)

// Rule moves paths under From to To.
type Rule struct {
	From, To string
}

// CheckRules cleans the rules and refuses ones that cannot be applied
// twice safely: a To inside its From would be rewritten again by the next
// run.
func CheckRules(rules []Rule) ([]Rule, error) {
	var out []Rule
	for _, r := range rules {
		from, to := strings.TrimRight(r.From, "/"), strings.TrimRight(r.To, "/")
		switch {
		case !path.IsAbs(r.From) || !path.IsAbs(r.To) || from == "" || to == "":
			return nil, fmt.Errorf("rewrite %q → %q: both must be absolute paths below /", r.From, r.To)
		case from == to:
			return nil, fmt.Errorf("rewrite %q → %q changes nothing", r.From, r.To)
		case under(to, from):
			return nil, fmt.Errorf("rewrite %q → %q: the new path is inside the old one, so a second run would rewrite it again", r.From, r.To)
		}
		out = append(out, Rule{From: from, To: to})
	}
	// The most specific rule wins.
	sort.SliceStable(out, func(i, j int) bool { return len(out[i].From) > len(out[j].From) })
	return out, nil
}

// under reports whether p is dir or below it, on path boundaries.
func under(p, dir string) bool {
	return p == dir || strings.HasPrefix(p, dir+"/")
}

// Edit is one rewritten path literal.
type Edit struct {
	Start, End int // byte range of the replaced text in the source
	Old, New   string
	Pos        hcl.Pos
	Where      string // the position in the job: "docker volumes (host side)", ...
	// OldPath and NewPath are the whole host paths, when no
	// interpolation makes them known only at run time ("" then).
	OldPath, NewPath string
}

// Mention is an old path seen where hoctl does not rewrite it.
type Mention struct {
	Pos    hcl.Pos
	Text   string // the literal, as written
	Reason string
}

// File is one job file's rewrite.
type File struct {
	Path     string
	Src, Out []byte // Out == Src when nothing changes or the file does not parse
	Edits    []Edit
	Mentions []Mention
	Err      error // the file does not parse: left untouched
	// Job is the name of the file's top-level job block ("" for other
	// HCL, such as a client configuration).
	Job string
}

// Changed reports whether the rewrite changes the file.
func (f *File) Changed() bool { return len(f.Edits) > 0 }

// Rewrite finds the host paths under the rules' From in one job file and
// returns the file with them moved. rules must have passed CheckRules.
func Rewrite(name string, src []byte, rules []Rule) *File {
	f := &File{Path: name, Src: src, Out: src}
	if err := checkLimits(name, src); err != nil {
		f.Err = err
		return f
	}
	hf, diags := hclsyntax.ParseConfig(src, name, hcl.InitialPos)
	if diags.HasErrors() {
		f.Err = diags
		return f
	}
	w := &walker{src: src, rules: rules, file: f, vars: map[string]string{}}
	body := hf.Body.(*hclsyntax.Body)
	for _, b := range body.Blocks {
		if b.Type == "job" && len(b.Labels) == 1 {
			f.Job = b.Labels[0]
		}
	}
	w.collectVars(body)
	w.body(body, nil)
	sort.Slice(f.Edits, func(i, j int) bool { return f.Edits[i].Start < f.Edits[j].Start })
	sort.SliceStable(f.Mentions, func(i, j int) bool { return f.Mentions[i].Pos.Byte < f.Mentions[j].Pos.Byte })
	if len(f.Edits) > 0 {
		var out []byte
		last := 0
		for _, e := range f.Edits {
			out = append(out, src[last:e.Start]...)
			out = append(out, e.New...)
			last = e.End
		}
		out = append(out, src[last:]...)
		f.Out = out
	}
	return f
}

type walker struct {
	src   []byte
	rules []Rule
	file  *File
	vars  map[string]string // "var.x" / "local.x" → a literal default
	done  map[int]int       // literal start → how many of its bytes a rewrite handled
}

// collectVars records literal variable defaults and locals, to name the
// variable when a host path is built from one.
func (w *walker) collectVars(body *hclsyntax.Body) {
	for _, b := range body.Blocks {
		switch {
		case b.Type == "variable" && len(b.Labels) == 1:
			if a := b.Body.Attributes["default"]; a != nil {
				if s, ok := w.literal(a.Expr); ok {
					w.vars["var."+b.Labels[0]] = s
				}
			}
		case b.Type == "locals":
			for n, a := range b.Body.Attributes {
				if s, ok := w.literal(a.Expr); ok {
					w.vars["local."+n] = s
				}
			}
		}
		w.collectVars(b.Body)
	}
}

// literal is the raw text of a string with no interpolation.
func (w *walker) literal(e hclsyntax.Expression) (string, bool) {
	t, ok := e.(*hclsyntax.TemplateExpr)
	if !ok || len(t.Parts) != 1 {
		return "", false
	}
	l, ok := t.Parts[0].(*hclsyntax.LiteralValueExpr)
	if !ok {
		return "", false
	}
	return w.raw(l), true
}

func (w *walker) raw(n hclsyntax.Node) string {
	r := n.Range()
	return string(w.src[r.Start.Byte:r.End.Byte])
}

func sortedAttrs(body *hclsyntax.Body) []*hclsyntax.Attribute {
	var out []*hclsyntax.Attribute
	for _, a := range body.Attributes {
		out = append(out, a)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].SrcRange.Start.Byte < out[j].SrcRange.Start.Byte })
	return out
}

func top(stack []string) string {
	if len(stack) == 0 {
		return ""
	}
	return stack[len(stack)-1]
}

func (w *walker) body(body *hclsyntax.Body, stack []string) {
	t := top(stack)
	bind := false
	if a := body.Attributes["type"]; a != nil {
		v, _ := w.literal(a.Expr)
		bind = v == "bind"
	}
	for _, a := range sortedAttrs(body) {
		switch {
		case t == "config" && a.Name == "volumes":
			if tup, ok := a.Expr.(*hclsyntax.TupleConsExpr); ok {
				for _, e := range tup.Exprs {
					w.host(e, "docker volumes (host side)", true)
				}
			}
		case t == "config" && a.Name == "mounts":
			if tup, ok := a.Expr.(*hclsyntax.TupleConsExpr); ok {
				for _, e := range tup.Exprs {
					w.mountObject(e)
				}
			}
		case (t == "mount" || t == "mounts") && bind && a.Name == "source":
			w.host(a.Expr, "bind mount source", false)
		case t == "host_volume" && a.Name == "path":
			w.host(a.Expr, "host_volume path", false)
		case (t == "template" || t == "artifact") && a.Name == "source":
			w.hostIfAbsolute(a.Expr, t+" source")
		}
		w.mentions(a.Expr, reason(stack, a.Name, bind))
	}
	for _, b := range body.Blocks {
		w.body(b.Body, append(stack, b.Type))
	}
}

// mountObject handles one `mounts = [{ type = "bind", source = ... }]` entry.
func (w *walker) mountObject(e hclsyntax.Expression) {
	obj, ok := e.(*hclsyntax.ObjectConsExpr)
	if !ok {
		return
	}
	var typ string
	var source hclsyntax.Expression
	for _, it := range obj.Items {
		k, ok := objectKey(w, it.KeyExpr)
		if !ok {
			continue
		}
		switch k {
		case "type":
			typ, _ = w.literal(it.ValueExpr)
		case "source":
			source = it.ValueExpr
		}
	}
	if typ == "bind" && source != nil {
		w.host(source, "bind mount source", false)
	}
}

func objectKey(w *walker, e hclsyntax.Expression) (string, bool) {
	if k, ok := e.(*hclsyntax.ObjectConsKeyExpr); ok {
		if tr, ok := k.Wrapped.(*hclsyntax.ScopeTraversalExpr); ok && len(tr.Traversal) == 1 {
			return tr.Traversal.RootName(), true
		}
		return w.literal(k.Wrapped)
	}
	return "", false
}

// reason says why an old path at this position is left alone.
func reason(stack []string, attr string, bind bool) string {
	t := top(stack)
	for _, s := range stack {
		if s == "env" {
			return "in env: a value the task reads, not a path the client mounts"
		}
	}
	switch {
	case attr == "args":
		return "in args: passed to the program, not mounted"
	case t == "template" && attr == "data":
		return "in template data: text rendered into the task"
	case t == "template" && attr == "destination", t == "artifact" && attr == "destination":
		return "a destination inside the task's directory, not a host path"
	case t == "config" && attr == "volumes":
		return "container side of a docker volume: never rewritten"
	case (t == "mount" || t == "mounts") && attr == "target":
		return "mount target: a container path, never rewritten"
	case (t == "mount" || t == "mounts") && attr == "source" && !bind:
		return "source of a mount that is not type = \"bind\""
	case t == "variable" && attr == "default", t == "locals":
		return "a variable's value: change it by hand if it builds a host path"
	}
	return "not a host-path position hoctl rewrites"
}

// host rewrites a host path at the start of expression e; volume: the
// host side ends at the first ':' (docker's "src:dst[:mode]").
func (w *walker) host(e hclsyntax.Expression, where string, volume bool) {
	t, ok := e.(*hclsyntax.TemplateExpr)
	if !ok || len(t.Parts) == 0 {
		return
	}
	switch first := t.Parts[0].(type) {
	case *hclsyntax.LiteralValueExpr:
		raw := w.raw(first)
		hostSide := raw
		if volume {
			hostSide, _, _ = strings.Cut(raw, ":")
		}
		r := w.match(hostSide, len(t.Parts) > 1 && !strings.Contains(raw, ":"))
		if r == nil {
			return
		}
		start := first.SrcRange.Start.Byte
		w.mark(start, len(hostSide))
		e := Edit{Start: start, End: start + len(r.From), Old: r.From, New: r.To, Pos: first.SrcRange.Start, Where: where}
		if len(t.Parts) == 1 || len(hostSide) < len(raw) {
			e.OldPath, e.NewPath = hostSide, r.To+hostSide[len(r.From):]
		}
		w.file.Edits = append(w.file.Edits, e)
	case *hclsyntax.ScopeTraversalExpr:
		name := w.raw(first)
		if v, ok := w.vars[name]; ok {
			if r := w.match(v, false); r != nil {
				w.file.Mentions = append(w.file.Mentions, Mention{Pos: t.SrcRange.Start, Text: w.raw(t),
					Reason: fmt.Sprintf("%s built from %s, whose value %q is under %s: change %s, not rewritten here", where, name, v, r.From, name)})
			}
		}
	}
}

func (w *walker) hostIfAbsolute(e hclsyntax.Expression, where string) {
	if s, ok := w.literal(e); ok && strings.HasPrefix(s, "/") {
		w.host(e, where, false)
	}
}

// match finds the rule whose From starts p on a path boundary. open: p is
// followed by an interpolation, so only a '/' after From is a boundary.
func (w *walker) match(p string, open bool) *Rule {
	for i := range w.rules {
		r := &w.rules[i]
		if strings.HasPrefix(p, r.From+"/") || p == r.From && !open {
			return r
		}
	}
	return nil
}

func (w *walker) mark(start, n int) {
	if w.done == nil {
		w.done = map[int]int{}
	}
	w.done[start] = n
}

// mentions reports every literal in e that names an old path on a path
// boundary and was not rewritten.
func (w *walker) mentions(e hclsyntax.Expression, why string) {
	_ = hclsyntax.VisitAll(e, func(n hclsyntax.Node) hcl.Diagnostics {
		t, ok := n.(*hclsyntax.TemplateExpr)
		if !ok {
			return nil
		}
		heredoc := strings.HasPrefix(w.raw(t), "<<")
		for _, p := range t.Parts {
			l, ok := p.(*hclsyntax.LiteralValueExpr)
			if !ok {
				continue
			}
			// After a rewritten host side, what follows (a volume's
			// container side) is still looked at.
			rest := w.raw(l)[w.done[l.SrcRange.Start.Byte]:]
			if old := w.contains(rest); old != "" {
				r := why
				if heredoc {
					r = "in a heredoc: text, never rewritten blindly"
				}
				w.file.Mentions = append(w.file.Mentions, Mention{Pos: l.SrcRange.Start, Text: strings.TrimSpace(firstLine(w.raw(l), old)), Reason: "mentions " + old + ", not rewritten: " + r})
			}
		}
		return nil
	})
}

// contains returns the From of a rule that s names on path boundaries.
func (w *walker) contains(s string) string {
	for _, r := range w.rules {
		for i := 0; ; {
			j := strings.Index(s[i:], r.From)
			if j < 0 {
				break
			}
			j += i
			end := j + len(r.From)
			before := j == 0 || strings.ContainsRune(" \t\n\r:=\"'(,;", rune(s[j-1]))
			after := end == len(s) || strings.ContainsRune("/ \t\n\r:\"'),;", rune(s[end]))
			if before && after {
				return r.From
			}
			i = j + 1
		}
	}
	return ""
}

// firstLine is the line of s around old, for a report.
func firstLine(s, old string) string {
	i := strings.Index(s, old)
	start := strings.LastIndexByte(s[:i], '\n') + 1
	end := strings.IndexByte(s[i:], '\n')
	if end < 0 {
		return s[start:]
	}
	return s[start : i+end]
}
