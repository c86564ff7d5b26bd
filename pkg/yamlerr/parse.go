package yamlerr

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"

	"github.com/goccy/go-yaml/ast"
	"github.com/goccy/go-yaml/lexer"
	"github.com/goccy/go-yaml/parser"
	"github.com/goccy/go-yaml/token"
)

// Limits on what a hoctl YAML file (inventory, runbook) may be. The YAML
// library has none: nesting costs it memory quadratic in depth and it
// expands aliases without bound, so these are checked on the token stream
// and the syntax tree before anything is decoded. Real files are far
// below them: the example inventory is 2 KiB, 6 levels deep, no aliases.
const (
	// MaxFileSize is the largest file read, in bytes (docs/security.md).
	MaxFileSize = 256 << 10
	// MaxDepth is the deepest nesting of mappings and lists, counting
	// what aliases bring in.
	MaxDepth = 64
	// MaxNodes is how many values a file may hold once every alias is
	// expanded: an alias bomb of a few hundred bytes expands to billions.
	MaxNodes = 200_000
	// MaxProblems is how many problems one file reports; the rest are
	// counted.
	MaxProblems = 50
)

// ReadFile reads a YAML file of at most MaxFileSize bytes; what names the
// file's kind in errors ("inventory", "runbook").
//
// It returns when ctx ends, whatever the file: opening a FIFO no one writes
// to blocks in open(2) itself, out of reach of any deadline, so the read
// runs on its own goroutine (left blocked when ctx ends; the process is
// about to exit). Without this, hoctl -i FIFO ignored Ctrl-C and SIGTERM.
func ReadFile(ctx context.Context, path, what string) ([]byte, error) {
	type read struct {
		data []byte
		err  error
	}
	done := make(chan read, 1)
	go func() {
		data, err := readFile(path, what)
		done <- read{data, err}
	}()
	select {
	case r := <-done:
		return r.data, r.err
	case <-ctx.Done():
		return nil, fmt.Errorf("reading %s %s: %w", what, path, context.Cause(ctx))
	}
}

func readFile(path, what string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, &Error{File: path, Msg: "cannot read " + what + ": " + errText(err)}
	}
	defer func() { _ = f.Close() }()
	if fi, err := f.Stat(); err == nil && fi.IsDir() {
		return nil, &Error{File: path, Msg: "cannot read " + what + ": is a directory"}
	}
	// Read one byte more than allowed so a pipe or a growing file is
	// bounded as well as a regular one.
	data, err := io.ReadAll(io.LimitReader(f, MaxFileSize+1))
	if err != nil {
		return nil, &Error{File: path, Msg: "cannot read " + what + ": " + errText(err)}
	}
	if len(data) > MaxFileSize {
		return nil, tooBig(path, what)
	}
	return data, nil
}

func tooBig(name, what string) error {
	return &Error{File: name, Msg: fmt.Sprintf("%s is larger than %d KiB, the limit for hoctl files (docs/security.md)", what, MaxFileSize>>10)}
}

func errText(err error) string {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err.Error()
	}
	return err.Error()
}

// Parse turns YAML bytes into a syntax tree of exactly one document,
// within the limits above, and never panics: a panic of the YAML library
// becomes an error naming the file. what names the file's kind.
func Parse(name, what string, data []byte) (f *ast.File, err error) {
	if len(data) > MaxFileSize {
		return nil, tooBig(name, what)
	}
	defer func() {
		if r := recover(); r != nil {
			f, err = nil, libraryPanic(name, what, r)
		}
	}()
	tokens := lexer.Tokenize(string(data))
	if err := checkTokens(name, tokens); err != nil {
		return nil, err
	}
	f, err = parser.Parse(tokens, 0)
	if err != nil {
		return nil, syntaxError(name, data, err)
	}
	if len(f.Docs) > 1 {
		return nil, &Error{File: name, Msg: "expected one YAML document, found several (a line '---' starts another)"}
	}
	if err := checkAliases(name, f); err != nil {
		return nil, err
	}
	return f, nil
}

// libraryPanic is a crash inside the YAML library turned into an error. It
// says where (one frame of the library) so a report can be filed.
func libraryPanic(name, what string, r any) error {
	where := ""
	for _, line := range strings.Split(string(debug.Stack()), "\n") {
		if strings.Contains(line, "goccy/go-yaml") && strings.Contains(line, ".go:") {
			where = " at " + filepath.Base(strings.Fields(strings.TrimSpace(line))[0])
			break
		}
	}
	return &Error{File: name, Msg: fmt.Sprintf("the YAML parser failed on this %s (%v%s); check it for unusual YAML such as tags (!x) or deep nesting", what, r, where)}
}

// checkTokens bounds the nesting depth before the parser sees the tokens:
// its memory grows with the square of the depth. Flow brackets each open
// a level; block levels are counted by a stack of indentation columns of
// the tokens that open them (a key's ':' and a list's '-').
func checkTokens(name string, tokens token.Tokens) error {
	flow := 0
	var cols []int
	for i, tk := range tokens {
		if tk.Position == nil {
			continue
		}
		switch tk.Type {
		case token.SequenceStartType, token.MappingStartType:
			flow++
		case token.SequenceEndType, token.MappingEndType:
			if flow > 0 {
				flow--
			}
		case token.SequenceEntryType, token.MappingKeyType:
			cols = pushColumn(cols, tk.Position.Column)
		case token.MappingValueType:
			// The key is the token before ':'; its column is the level.
			c := tk.Position.Column
			if i > 0 && tokens[i-1].Position != nil && tokens[i-1].Position.Line == tk.Position.Line {
				c = tokens[i-1].Position.Column
			}
			if flow == 0 {
				cols = pushColumn(cols, c)
			}
		}
		if flow+len(cols) > MaxDepth {
			return &Error{File: name, Line: tk.Position.Line, Column: tk.Position.Column,
				Msg: fmt.Sprintf("nested more than %d levels deep, the limit for hoctl files (docs/security.md)", MaxDepth)}
		}
	}
	return nil
}

// pushColumn keeps cols strictly increasing: a token at column c closes
// every level opened further right and opens one at c unless one is there.
func pushColumn(cols []int, c int) []int {
	for len(cols) > 0 && cols[len(cols)-1] > c {
		cols = cols[:len(cols)-1]
	}
	if len(cols) == 0 || cols[len(cols)-1] < c {
		cols = append(cols, c)
	}
	return cols
}

// checkAliases resolves every alias as YAML does (to the latest anchor of
// that name before it) and bounds what the document expands to: the
// number of values and the depth, aliases included. An alias inside its
// own anchor is refused: it would expand forever.
func checkAliases(name string, f *ast.File) error {
	targets := Anchors(f)
	type cost struct{ nodes, depth int }
	memo := map[ast.Node]cost{}
	active := map[ast.Node]bool{}
	var errOut error
	var size func(n ast.Node) cost
	size = func(n ast.Node) cost {
		if n == nil || errOut != nil {
			return cost{}
		}
		if c, ok := memo[n]; ok {
			return c
		}
		if a, ok := n.(*ast.AliasNode); ok {
			t := targets[a]
			if t == nil {
				errOut = at(name, a, "alias *%s has no anchor &%s before it", aliasName(a), aliasName(a))
				return cost{}
			}
			if active[t] {
				errOut = at(name, a, "alias *%s is inside its own anchor: it would expand forever", aliasName(a))
				return cost{}
			}
			return size(t)
		}
		active[n] = true
		c := cost{nodes: 1}
		_, isMapping := n.(*ast.MappingNode)
		for _, ch := range children(n) {
			cc := size(ch)
			if _, kv := ch.(*ast.MappingValueNode); kv && isMapping && cc.depth > 0 {
				// A key of a mapping is not a level of its own: only a
				// bare one (a mapping of one key) counts as the mapping.
				cc.depth--
			}
			c.nodes += cc.nodes
			c.depth = max(c.depth, cc.depth)
			if c.nodes > MaxNodes {
				break
			}
		}
		if isCollection(n) {
			c.depth++
		}
		delete(active, n)
		memo[n] = c
		if errOut == nil && (c.nodes > MaxNodes || c.depth > MaxDepth) {
			what := fmt.Sprintf("expands to more than %d values", MaxNodes)
			if c.depth > MaxDepth {
				what = fmt.Sprintf("nests more than %d levels deep", MaxDepth)
			}
			errOut = at(name, n, "with its aliases (*name) expanded, this %s, the limit for hoctl files (docs/security.md)", what)
		}
		return c
	}
	for _, d := range f.Docs {
		size(d)
		if errOut != nil {
			return errOut
		}
	}
	return nil
}

func at(name string, n ast.Node, format string, args ...any) *Error {
	e := &Error{File: name, Msg: fmt.Sprintf(format, args...)}
	if tk := n.GetToken(); tk != nil && tk.Position != nil {
		e.Line, e.Column = tk.Position.Line, tk.Position.Column
	}
	return e
}

func aliasName(a *ast.AliasNode) string {
	if a.Value == nil {
		return ""
	}
	return a.Value.GetToken().Value
}

func isCollection(n ast.Node) bool {
	switch n.(type) {
	case *ast.MappingNode, *ast.SequenceNode:
		return true
	case *ast.MappingValueNode:
		// A mapping of one key is a bare MappingValueNode in this AST.
		return true
	}
	return false
}

// children lists a node's direct children in document order.
func children(n ast.Node) []ast.Node {
	switch n := n.(type) {
	case *ast.DocumentNode:
		return []ast.Node{n.Body}
	case *ast.MappingNode:
		out := make([]ast.Node, len(n.Values))
		for i, v := range n.Values {
			out[i] = v
		}
		return out
	case *ast.MappingValueNode:
		return []ast.Node{n.Key, n.Value}
	case *ast.MappingKeyNode:
		return []ast.Node{n.Value}
	case *ast.SequenceNode:
		return n.Values
	case *ast.AnchorNode:
		return []ast.Node{n.Value}
	case *ast.TagNode:
		return []ast.Node{n.Value}
	case *ast.LiteralNode:
		return nil
	}
	return nil
}

// Anchors maps every alias of the file to the value of the anchor it
// names: the latest anchor of that name before the alias, in document
// order, as YAML defines it.
func Anchors(f *ast.File) map[*ast.AliasNode]ast.Node {
	out := map[*ast.AliasNode]ast.Node{}
	defined := map[string]ast.Node{}
	var walk func(n ast.Node)
	walk = func(n ast.Node) {
		if isNil(n) {
			return
		}
		switch v := n.(type) {
		case *ast.AnchorNode:
			if v.Name != nil {
				defined[v.Name.GetToken().Value] = v.Value
			}
		case *ast.AliasNode:
			if t, ok := defined[aliasName(v)]; ok && !isNil(t) {
				out[v] = t
			}
			return
		}
		for _, ch := range children(n) {
			walk(ch)
		}
	}
	for _, d := range f.Docs {
		walk(d)
	}
	return out
}

// isNil reports a nil interface or a typed nil pointer inside one.
func isNil(n ast.Node) bool {
	if n == nil {
		return true
	}
	switch v := n.(type) {
	case *ast.MappingNode:
		return v == nil
	case *ast.MappingValueNode:
		return v == nil
	case *ast.SequenceNode:
		return v == nil
	case *ast.AnchorNode:
		return v == nil
	case *ast.AliasNode:
		return v == nil
	case *ast.TagNode:
		return v == nil
	case *ast.DocumentNode:
		return v == nil
	case *ast.StringNode:
		return v == nil
	case *ast.NullNode:
		return v == nil
	}
	return false
}
