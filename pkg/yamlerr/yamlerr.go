// Package yamlerr turns YAML decoding and validation problems into errors
// that name the file, line, column and field, for hoctl's inventory and
// runbooks.
package yamlerr

import (
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/goccy/go-yaml"
	"github.com/goccy/go-yaml/ast"
	"github.com/goccy/go-yaml/token"
)

// Error is one problem in a YAML file, located as precisely as the YAML
// allows so the operator can jump straight to it.
type Error struct {
	File   string
	Line   int
	Column int
	Field  string // dotted path, e.g. hosts.c1.port
	Msg    string

	// undecoded: the value at Field could not be decoded and was left
	// zero, so later checks of it would only repeat this problem.
	undecoded bool
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	if e.Line > 0 {
		fmt.Fprintf(&b, ":%d:%d", e.Line, e.Column)
	}
	b.WriteString(": ")
	if e.Field != "" {
		b.WriteString(e.Field)
		b.WriteString(": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

// Errors is every problem found in one file, in file order.
type Errors []*Error

func (es Errors) Error() string {
	lines := make([]string, len(es))
	for i, e := range es {
		lines[i] = e.Error()
	}
	return strings.Join(lines, "\n")
}

// Undecoded reports whether field, or a field that contains it, could not
// be decoded: a check of it would see a zero value and report nonsense.
func (es Errors) Undecoded(field string) bool {
	for _, e := range es {
		if e.undecoded && (e.Field == "" || field == e.Field || strings.HasPrefix(field, e.Field+".")) {
			return true
		}
	}
	return false
}

// Final puts the problems of one file in file order, drops repeats (an
// anchor's problem is met again at each alias) and keeps the first
// MaxProblems, counting the rest. It returns nil when there are none.
func (es Errors) Final(name string) error {
	if len(es) == 0 {
		return nil
	}
	es.Sort()
	seen := map[string]bool{}
	out := make(Errors, 0, len(es))
	for _, e := range es {
		k := e.Error()
		if seen[k] {
			continue
		}
		seen[k] = true
		out = append(out, e)
	}
	if len(out) > MaxProblems {
		more := len(out) - MaxProblems
		out = append(out[:MaxProblems:MaxProblems], &Error{File: name, Msg: fmt.Sprintf("%d more problems not shown: fix these first", more)})
	}
	return out
}

// Sort orders errors by position.
func (es Errors) Sort() {
	sort.SliceStable(es, func(i, j int) bool {
		a, b := es[i], es[j]
		if a.Line != b.Line {
			return a.Line < b.Line
		}
		return a.Column < b.Column
	})
}

type tokenError interface {
	GetToken() *token.Token
	GetMessage() string
}

// FromDecode converts an error of the YAML parser or decoder; schema names
// the document for the unknown-field hint (e.g. "docs/inventory.md").
func FromDecode(name, schema string, err error) error {
	var te tokenError
	if errors.As(err, &te) {
		e := &Error{File: name, Msg: te.GetMessage()}
		if tk := te.GetToken(); tk != nil && tk.Position != nil {
			e.Line, e.Column = tk.Position.Line, tk.Position.Column
		}
		var uf *yaml.UnknownFieldError
		if errors.As(err, &uf) && schema != "" {
			e.Msg += " (not part of the schema; see " + schema + ")"
		}
		return e
	}
	return &Error{File: name, Msg: err.Error()}
}

// plainKey reports whether a YAML path can name s without quotes.
func plainKey(s string) bool {
	return s != "" && strings.IndexFunc(s, func(r rune) bool {
		return (r < 'a' || r > 'z') && (r < 'A' || r > 'Z') && (r < '0' || r > '9') && r != '_' && r != '-'
	}) < 0
}

// Position finds the line and column of the node at a dotted path
// ("steps.2.run"); when it is absent, of its nearest parent that exists.
func Position(f *ast.File, field string) (int, int) {
	parts := strings.Split(field, ".")
	for n := len(parts); n > 0; n-- {
		var b strings.Builder
		b.WriteString("$")
		for _, p := range parts[:n] {
			if i, err := strconv.Atoi(p); err == nil {
				fmt.Fprintf(&b, "[%d]", i)
				continue
			}
			if plainKey(p) {
				b.WriteString("." + p)
			} else {
				b.WriteString(".'" + strings.ReplaceAll(p, "'", "") + "'")
			}
		}
		pth, err := yaml.PathString(b.String())
		if err != nil {
			continue
		}
		node, err := pth.FilterFile(f)
		if err != nil || node == nil {
			continue
		}
		if tk := node.GetToken(); tk != nil && tk.Position != nil {
			return tk.Position.Line, tk.Position.Column
		}
	}
	return 0, 0
}

// At builds an error located at field.
func At(name string, f *ast.File, field, format string, args ...any) *Error {
	e := &Error{File: name, Field: field, Msg: fmt.Sprintf(format, args...)}
	e.Line, e.Column = Position(f, field)
	return e
}
