package yamlerr

import (
	"fmt"
	"math"
	"reflect"
	"strconv"
	"strings"
	"time"

	"github.com/goccy/go-yaml/ast"
)

// Decode fills out (a pointer to a struct with yaml tags) from the
// syntax tree that Parse returned, and returns every problem it finds
// rather than the first: an unknown field (with the close names), a value
// of the wrong kind (with what was expected, never a Go type name), a
// YAML tag. What cannot be decoded is left zero and the rest goes on, so
// the caller can still check what did decode. schema names the
// documentation page for the unknown-field hint ("docs/inventory.md").
//
// hoctl decodes itself rather than with the YAML library's decoder: that
// decoder stops at the first problem, names Go types in its messages,
// panics on tagged values (`steps: !x 0`) and expands aliases without
// bound.
func Decode(name, schema string, f *ast.File, out any) (errs Errors) {
	d := &decoder{name: name, schema: schema, anchors: Anchors(f)}
	defer func() {
		// A bug here must not crash hoctl on hostile input: say so instead.
		if r := recover(); r != nil {
			d.errs = append(d.errs, &Error{File: name, Msg: fmt.Sprintf("cannot decode this file (%v)", r), undecoded: true})
			errs = d.errs
		}
	}()
	v := reflect.ValueOf(out)
	if v.Kind() != reflect.Pointer || v.Elem().Kind() != reflect.Struct {
		panic("yamlerr.Decode: out must point to a struct")
	}
	if len(f.Docs) == 0 || isNil(f.Docs[0].Body) {
		return nil
	}
	d.value(f.Docs[0].Body, v.Elem(), "")
	return d.errs
}

type decoder struct {
	name, schema string
	anchors      map[*ast.AliasNode]ast.Node
	errs         Errors
}

var durationType = reflect.TypeOf(time.Duration(0))

func (d *decoder) fail(n ast.Node, field, format string, args ...any) {
	e := at(d.name, n, format, args...)
	e.Field, e.undecoded = field, true
	d.errs = append(d.errs, e)
}

// resolve looks through anchors and aliases to the value they stand for.
// A YAML tag is refused: hoctl's files have no use for one and the YAML
// library has crashed on them.
func (d *decoder) resolve(n ast.Node, field string) ast.Node {
	for i := 0; i < MaxDepth && !isNil(n); i++ {
		switch v := n.(type) {
		case *ast.AnchorNode:
			n = v.Value
		case *ast.AliasNode:
			n = d.anchors[v]
		case *ast.TagNode:
			d.fail(v, field, "YAML tags such as %s are not supported in hoctl files: remove it", v.Start.Value)
			return nil
		case *ast.DocumentNode:
			n = v.Body
		default:
			return n
		}
	}
	return n
}

func (d *decoder) value(n ast.Node, v reflect.Value, field string) {
	n = d.resolve(n, field)
	if isNil(n) {
		return
	}
	if _, null := n.(*ast.NullNode); null {
		v.Set(reflect.Zero(v.Type()))
		return
	}
	if v.Type() == durationType {
		d.duration(n, v, field)
		return
	}
	switch v.Kind() {
	case reflect.Pointer:
		p := reflect.New(v.Type().Elem())
		d.value(n, p.Elem(), field)
		v.Set(p)
	case reflect.Struct:
		d.structure(n, v, field)
	case reflect.Map:
		d.mapping(n, v, field)
	case reflect.Slice:
		d.list(n, v, field)
	case reflect.String:
		s, ok := scalarText(n)
		if !ok {
			d.fail(n, field, "expected text, got %s", describe(n))
			return
		}
		v.SetString(s)
	case reflect.Int, reflect.Int64, reflect.Int32:
		iv, ok := n.(*ast.IntegerNode)
		var i int64
		if ok {
			i, ok = toInt(iv.Value)
		}
		if !ok || v.OverflowInt(i) {
			d.fail(n, field, "expected a whole number, got %s", describe(n))
			return
		}
		v.SetInt(i)
	case reflect.Interface:
		if g := d.generic(n, field); g != nil && v.NumMethod() == 0 {
			v.Set(reflect.ValueOf(g))
		}
	case reflect.Bool:
		b, ok := n.(*ast.BoolNode)
		if !ok {
			d.fail(n, field, "expected true or false, got %s", describe(n))
			return
		}
		v.SetBool(b.Value)
	default:
		panic("yamlerr.Decode: unsupported field type " + v.Type().String())
	}
}

// generic decodes a value of no fixed shape (a field typed any) the way
// the YAML library does: map[string]any, []any, int64 or uint64, float64,
// bool, string, nil.
func (d *decoder) generic(n ast.Node, field string) any {
	n = d.resolve(n, field)
	switch x := n.(type) {
	case nil, *ast.NullNode:
		return nil
	case *ast.IntegerNode:
		return x.Value
	case *ast.FloatNode:
		return x.Value
	case *ast.BoolNode:
		return x.Value
	case *ast.SequenceNode:
		out := make([]any, len(x.Values))
		for i, e := range x.Values {
			out[i] = d.generic(e, join(field, strconv.Itoa(i)))
		}
		return out
	}
	if ps, ok := pairs(n); ok {
		out := map[string]any{}
		for _, p := range d.entries(ps, field) {
			if k, ok := d.key(p, field); ok {
				out[k] = d.generic(p.Value, join(field, k))
			}
		}
		return out
	}
	if s, ok := scalarText(n); ok {
		return s
	}
	return nil
}

func toInt(x any) (int64, bool) {
	switch i := x.(type) {
	case int64:
		return i, true
	case uint64:
		if i <= math.MaxInt64 {
			return int64(i), true
		}
	case int:
		return int64(i), true
	}
	return 0, false
}

func (d *decoder) duration(n ast.Node, v reflect.Value, field string) {
	switch s := n.(type) {
	case *ast.IntegerNode, *ast.FloatNode:
		t := s.GetToken().Value
		d.fail(n, field, "expected a duration like %ss, got %s without a unit: add s, m or h", t, t)
		return
	case *ast.StringNode:
		dur, err := time.ParseDuration(s.Value)
		if err != nil {
			d.fail(n, field, "expected a duration such as 10s, 5m or 1h30m, got %q", s.Value)
			return
		}
		v.SetInt(int64(dur))
		return
	}
	d.fail(n, field, "expected a duration such as 10s, 5m or 1h30m, got %s", describe(n))
}

// pairs lists a mapping's key-value pairs; ok is false when n is not a
// mapping. A mapping of one key is a bare MappingValueNode in this AST.
func pairs(n ast.Node) ([]*ast.MappingValueNode, bool) {
	switch m := n.(type) {
	case *ast.MappingNode:
		return m.Values, true
	case *ast.MappingValueNode:
		return []*ast.MappingValueNode{m}, true
	}
	return nil, false
}

// mergeSources is what a `<<:` key brings in: one mapping or a list of them.
func (d *decoder) mergeSources(n ast.Node, field string) []*ast.MappingValueNode {
	n = d.resolve(n, field)
	if ps, ok := pairs(n); ok {
		return ps
	}
	if s, ok := n.(*ast.SequenceNode); ok {
		var out []*ast.MappingValueNode
		for _, e := range s.Values {
			ps, ok := pairs(d.resolve(e, field))
			if !ok {
				d.fail(e, field, "a merge (<<) list takes mappings, got %s", describe(e))
				continue
			}
			out = append(out, ps...)
		}
		return out
	}
	if !isNil(n) {
		d.fail(n, field, "a merge (<<) takes a mapping or a list of mappings, got %s", describe(n))
	}
	return nil
}

// entries expands merges: merged pairs first, so the mapping's own keys
// override them as YAML's merge key defines.
func (d *decoder) entries(ps []*ast.MappingValueNode, field string) []*ast.MappingValueNode {
	var merged, own []*ast.MappingValueNode
	for _, p := range ps {
		if p.Key != nil && p.Key.IsMergeKey() {
			merged = append(merged, d.entries(d.mergeSources(p.Value, field), field)...)
			continue
		}
		own = append(own, p)
	}
	return append(merged, own...)
}

func (d *decoder) key(p *ast.MappingValueNode, field string) (string, bool) {
	var k ast.Node = p.Key
	if mk, ok := k.(*ast.MappingKeyNode); ok {
		k = mk.Value
	}
	k = d.resolve(k, field)
	s, ok := scalarText(k)
	if !ok || isNil(k) {
		d.fail(p, field, "expected a plain name as key, got %s", describe(k))
		return "", false
	}
	return s, true
}

func join(field, k string) string {
	if field == "" {
		return k
	}
	return field + "." + k
}

func (d *decoder) structure(n ast.Node, v reflect.Value, field string) {
	ps, ok := pairs(n)
	if !ok {
		d.fail(n, field, "expected a mapping (name: value lines) with %s, got %s", fieldList(v.Type()), describe(n))
		return
	}
	fields := structFields(v.Type())
	for _, p := range d.entries(ps, field) {
		k, ok := d.key(p, field)
		if !ok {
			continue
		}
		idx, known := fields[k]
		if !known {
			d.unknown(p, k, field, v.Type())
			continue
		}
		d.value(p.Value, v.FieldByIndex(idx), join(field, k))
	}
}

func (d *decoder) unknown(p *ast.MappingValueNode, k, field string, t reflect.Type) {
	msg := fmt.Sprintf("unknown field %q", k)
	names := fieldNames(t)
	if s := Suggest(k, names); len(s) > 0 {
		msg += "; did you mean " + quoteJoin(s) + "?"
	} else {
		msg += " (expected one of " + strings.Join(names, ", ") + "; see " + d.schema + ")"
	}
	e := at(d.name, p.Key, "%s", msg)
	e.Field = field
	d.errs = append(d.errs, e)
}

func (d *decoder) mapping(n ast.Node, v reflect.Value, field string) {
	ps, ok := pairs(n)
	if !ok {
		d.fail(n, field, "expected a mapping (name: value lines), got %s", describe(n))
		return
	}
	m := reflect.MakeMap(v.Type())
	elem := v.Type().Elem()
	entries := d.entries(ps, field)
	for i, p := range entries {
		k, ok := d.key(p, field)
		if !ok {
			continue
		}
		if hint := d.misplaced(entries, i, k, elem); hint != "" {
			e := at(d.name, p.Key, "%s", hint)
			e.Field, e.undecoded = join(field, k), true
			d.errs = append(d.errs, e)
			continue
		}
		ev := reflect.New(elem).Elem()
		d.value(p.Value, ev, join(field, k))
		m.SetMapIndex(reflect.ValueOf(k), ev)
	}
	v.Set(m)
}

// misplaced recognises the commonest indentation mistake: a field of an
// entry written at the level of the entries, so the entry above it is
// empty and the field looks like an entry of its own:
//
//	hosts:
//	  c1:
//	  address: 10.0.0.1
func (d *decoder) misplaced(ps []*ast.MappingValueNode, i int, k string, elem reflect.Type) string {
	for elem.Kind() == reflect.Pointer {
		elem = elem.Elem()
	}
	if elem.Kind() != reflect.Struct {
		return ""
	}
	if _, isField := structFields(elem)[k]; !isField {
		return ""
	}
	val := d.resolve(ps[i].Value, "")
	if _, null := val.(*ast.NullNode); null || isNil(val) {
		return ""
	}
	if _, scalar := scalarText(val); !scalar {
		return ""
	}
	prev := ""
	for j := i - 1; j >= 0; j-- {
		if pk, ok := scalarText(ps[j].Key); ok {
			if _, isField := structFields(elem)[pk]; !isField {
				prev = pk
				break
			}
		}
	}
	if prev == "" {
		return fmt.Sprintf("%q is a field, not a name: it is indented as if it were one; indent it under the entry it belongs to", k)
	}
	return fmt.Sprintf("%q is a field, not a name: it is indented at the level of %q, so %q is left empty; indent %q under %q", k, prev, prev, k, prev)
}

func (d *decoder) list(n ast.Node, v reflect.Value, field string) {
	s, ok := n.(*ast.SequenceNode)
	if !ok {
		example := "[a, b]"
		if txt, scalar := scalarText(n); scalar {
			example = "[" + txt + "]"
		}
		d.fail(n, field, "expected a list such as %s, got %s", example, describe(n))
		return
	}
	out := reflect.MakeSlice(v.Type(), len(s.Values), len(s.Values))
	for i, e := range s.Values {
		d.value(e, out.Index(i), join(field, strconv.Itoa(i)))
	}
	v.Set(out)
}

// scalarText is the text of a scalar as written (so `0755` stays 0755).
func scalarText(n ast.Node) (string, bool) {
	switch s := n.(type) {
	case *ast.StringNode:
		return s.Value, true
	case *ast.LiteralNode:
		if s.Value == nil {
			return "", true
		}
		return s.Value.Value, true
	case *ast.IntegerNode, *ast.FloatNode, *ast.BoolNode, *ast.InfinityNode, *ast.NanNode:
		return s.GetToken().Value, true
	case *ast.NullNode:
		return "", true
	}
	return "", false
}

// describe names what a node is in words an operator knows.
func describe(n ast.Node) string {
	switch n.(type) {
	case *ast.MappingNode, *ast.MappingValueNode:
		return "a mapping"
	case *ast.SequenceNode:
		return "a list"
	case *ast.NullNode:
		return "nothing"
	}
	if isNil(n) {
		return "nothing"
	}
	if s, ok := scalarText(n); ok {
		if len(s) > 40 {
			s = s[:40] + "…"
		}
		return strconv.Quote(s)
	}
	return "an unsupported YAML value"
}

// structFields maps yaml names to field indexes, inline structs included.
func structFields(t reflect.Type) map[string][]int {
	out := map[string][]int{}
	for i := 0; i < t.NumField(); i++ {
		sf := t.Field(i)
		tag := sf.Tag.Get("yaml")
		name, opts, _ := strings.Cut(tag, ",")
		if name == "-" || !sf.IsExported() {
			continue
		}
		if strings.Contains(opts, "inline") {
			for k, idx := range structFields(sf.Type) {
				out[k] = append([]int{i}, idx...)
			}
			continue
		}
		if name == "" {
			name = strings.ToLower(sf.Name)
		}
		out[name] = []int{i}
	}
	return out
}

// fieldNames lists a struct's yaml names in declaration order.
func fieldNames(t reflect.Type) []string {
	var out []string
	for i := 0; i < t.NumField(); i++ {
		sf := t.Field(i)
		name, opts, _ := strings.Cut(sf.Tag.Get("yaml"), ",")
		if name == "-" || !sf.IsExported() {
			continue
		}
		if strings.Contains(opts, "inline") {
			out = append(out, fieldNames(sf.Type)...)
			continue
		}
		if name == "" {
			name = strings.ToLower(sf.Name)
		}
		out = append(out, name)
	}
	return out
}

func fieldList(t reflect.Type) string {
	names := fieldNames(t)
	if len(names) > 4 {
		return "fields such as " + strings.Join(names[:4], ", ")
	}
	return "the fields " + strings.Join(names, ", ")
}

func quoteJoin(s []string) string {
	q := make([]string, len(s))
	for i, x := range s {
		q[i] = strconv.Quote(x)
	}
	return strings.Join(q, " or ")
}
