package yamlerr

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/goccy/go-yaml/ast"
	"github.com/goccy/go-yaml/lexer"
	"github.com/goccy/go-yaml/parser"
)

// ParseKeepingDuplicates is Parse for a file whose other problems should
// be reported beside a duplicate key rather than hidden by it: a key
// repeated in one mapping is returned as a problem of its own (dups) and
// the tree is returned too, to be checked as usual. err is any problem
// that leaves no tree to check.
func ParseKeepingDuplicates(name, what string, data []byte) (f *ast.File, dups Errors, err error) {
	f, err = Parse(name, what, data)
	if err == nil || !strings.Contains(err.Error(), "already defined") {
		return f, nil, err
	}
	// Parse failed; try again allowing duplicates. Only when that
	// succeeds were duplicates the whole trouble; anything else keeps
	// Parse's error.
	g, again := parseAllowingDuplicates(name, what, data)
	if again != nil || g == nil {
		return nil, nil, err
	}
	dups = duplicateKeys(name, g)
	if len(dups) == 0 {
		return nil, nil, err
	}
	return g, dups, nil
}

func parseAllowingDuplicates(name, what string, data []byte) (f *ast.File, err error) {
	defer func() {
		if r := recover(); r != nil {
			f, err = nil, libraryPanic(name, what, r)
		}
	}()
	tokens := lexer.Tokenize(string(data))
	if err := checkTokens(name, tokens); err != nil {
		return nil, err
	}
	f, err = parser.Parse(tokens, 0, parser.AllowDuplicateMapKey())
	if err != nil || len(f.Docs) > 1 {
		return nil, fmt.Errorf("not only duplicates")
	}
	if err := checkAliases(name, f); err != nil {
		return nil, err
	}
	return f, nil
}

// duplicateKeys finds every key repeated in one mapping, at its second
// (and later) place, with the field path and the line it first appeared.
func duplicateKeys(name string, f *ast.File) Errors {
	var out Errors
	var walk func(n ast.Node, field string)
	walk = func(n ast.Node, field string) {
		switch n := n.(type) {
		case *ast.DocumentNode:
			walk(n.Body, field)
		case *ast.AnchorNode:
			walk(n.Value, field)
		case *ast.TagNode:
			walk(n.Value, field)
		case *ast.MappingNode:
			first := map[string]int{}
			for _, p := range n.Values {
				walkPair(p, field, first, &out, name, walk)
			}
		case *ast.MappingValueNode:
			walkPair(n, field, map[string]int{}, &out, name, walk)
		case *ast.SequenceNode:
			for i, v := range n.Values {
				walk(v, join(field, strconv.Itoa(i)))
			}
		}
	}
	for _, d := range f.Docs {
		walk(d, "")
	}
	return out
}

func walkPair(p *ast.MappingValueNode, field string, first map[string]int, out *Errors, name string, walk func(ast.Node, string)) {
	tk := p.Key.GetToken()
	if tk == nil || tk.Position == nil {
		return
	}
	k := tk.Value
	if line, dup := first[k]; dup {
		*out = append(*out, &Error{File: name, Line: tk.Position.Line, Column: tk.Position.Column, Field: join(field, k),
			Msg: fmt.Sprintf("key %q is given twice here: first on line %d; a key may appear once in a mapping, so merge the two or rename one", k, line)})
	} else {
		first[k] = tk.Position.Line
	}
	walk(p.Value, join(field, k))
}
