package tasks

import (
	"errors"
	"fmt"
	"maps"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"text/template"

	"github.com/hoctl/hoctl/pkg/yamlerr"
)

// fieldErrRE is text/template's message for a field that does not exist:
// `... at <.HostInfo.Adrss>: can't evaluate field Adrss in type *inventory.Host`.
var fieldErrRE = regexp.MustCompile(`at <([^>]*)>: can't evaluate field (\w+) in type`)

// TemplateError says what went wrong rendering a template with data, in
// the template's own words: an unknown field is named with the fields
// that exist there and the closest of them, without text/template's
// prefix or Go type names; an unknown key of .Vars is an undefined
// variable.
func TemplateError(err error, data any) error {
	var ee template.ExecError
	if !errors.As(err, &ee) {
		return err
	}
	msg := ee.Err.Error()
	if strings.Contains(msg, "map has no entry for key") {
		key := strings.Trim(msg[strings.LastIndex(msg, "key")+4:], `"`)
		return undefinedVar(key, data)
	}
	if m := fieldErrRE.FindStringSubmatch(msg); m != nil {
		if e := unknownField(m[1], m[2], data); e != nil {
			return e
		}
	}
	// Any other failure: what went wrong, without the prefix.
	if i := strings.LastIndex(msg, ">: "); i >= 0 {
		msg = msg[i+3:]
	}
	if i := strings.Index(msg, " in type "); i >= 0 {
		msg = msg[:i]
	}
	return errors.New(msg)
}

// unknownField explains field missing from the value that action's path
// leads to in data (".HostInfo.Adrss": .HostInfo has no Adrss), or
// returns nil when the path cannot be followed (a variable, a pipeline).
func unknownField(action, field string, data any) error {
	if !strings.HasPrefix(action, ".") {
		return nil
	}
	path := strings.Split(strings.TrimPrefix(action, "."), ".")
	v := reflect.ValueOf(data)
	var parent []string
	for _, p := range path {
		if p == field {
			break
		}
		v = fieldOf(v, p)
		if !v.IsValid() {
			return nil
		}
		parent = append(parent, p)
	}
	t := v.Type()
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t.Kind() != reflect.Struct {
		return nil
	}
	var names []string
	for _, f := range reflect.VisibleFields(t) {
		if f.IsExported() && !f.Anonymous {
			names = append(names, f.Name)
		}
	}
	at := "." + strings.Join(parent, ".")
	where, prefix := at+" has no field", at+"."
	if len(parent) == 0 {
		where, prefix = "the template's data has no field", "."
	}
	msg := fmt.Sprintf("{{%s}}: %s %s", action, where, field)
	if s := yamlerr.Suggest(field, names); len(s) > 0 {
		msg += "; did you mean " + prefix + s[0] + "?"
	}
	msg += " (fields: " + strings.Join(names, ", ") + ")"
	return errors.New(msg)
}

// fieldOf is v's field or map entry name, through pointers and
// interfaces; the zero Value when there is none.
func fieldOf(v reflect.Value, name string) reflect.Value {
	for v.IsValid() && (v.Kind() == reflect.Pointer || v.Kind() == reflect.Interface) {
		if v.IsNil() {
			// A nil pointer still has a type to list fields of.
			if v.Kind() == reflect.Pointer {
				v = reflect.Zero(v.Type().Elem())
				break
			}
			return reflect.Value{}
		}
		v = v.Elem()
	}
	if !v.IsValid() {
		return v
	}
	switch v.Kind() {
	case reflect.Struct:
		return v.FieldByName(name)
	case reflect.Map:
		if v.Type().Key().Kind() == reflect.String {
			return v.MapIndex(reflect.ValueOf(name).Convert(v.Type().Key()))
		}
	}
	return reflect.Value{}
}

// undefinedVar names a variable no level defines, with the closest of
// those that exist for this host (the inventory's, its groups', its
// own, the runbook's).
func undefinedVar(key string, data any) error {
	msg := "undefined variable " + key
	var names []string
	switch d := data.(type) {
	case TemplateData:
		names = slices.Sorted(maps.Keys(d.Vars))
	case *TemplateData:
		names = slices.Sorted(maps.Keys(d.Vars))
	}
	if s := yamlerr.Suggest(key, names); len(s) > 0 {
		msg += "; did you mean .Vars." + s[0] + "?"
	}
	return errors.New(msg)
}
