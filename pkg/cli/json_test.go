package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/hoctl/hoctl/pkg/iostreams"
	"github.com/hoctl/hoctl/pkg/sshexec"
	"github.com/hoctl/hoctl/pkg/tasks"
)

// documentedEvents reads the event kinds docs/json.md lists.
func documentedEvents(t *testing.T) map[string]bool {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "docs", "json.md"))
	if err != nil {
		t.Fatal(err)
	}
	kinds := map[string]bool{}
	for _, m := range regexp.MustCompile("(?m)^\\| `([a-z_]+)` \\|").FindAllStringSubmatch(string(b), -1) {
		kinds[m[1]] = true
	}
	if len(kinds) < 15 {
		t.Fatalf("docs/json.md lists %d event kinds", len(kinds))
	}
	return kinds
}

// Every JSON object every command prints has the schema version and a
// documented event kind; run events decode as journal records with the
// same kind, live and from history; a failure is an error event with the
// exit code.
func TestEveryJSONEventIsDocumentedAndVersioned(t *testing.T) {
	documented := documentedEvents(t)
	state := t.TempDir()
	dir := t.TempDir()
	rb := filepath.Join(dir, "rb.yaml")
	if err := os.WriteFile(rb, []byte("name: j\nsteps:\n  - {title: one, hosts: cattle, before: 'true', run: 'echo hi', after: 'true'}\n  - {title: two, hosts: c1, run: 'false', undo: 'echo undo'}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	jobsDir := filepath.Join(dir, "jobs")
	_ = os.Mkdir(jobsDir, 0o700)
	if err := os.WriteFile(filepath.Join(jobsDir, "web.hcl"), []byte("job \"web\" {\n  group \"g\" {\n    task \"t\" {\n      driver = \"docker\"\n      config {\n        volumes = [\"/old/web:/data\"]\n      }\n    }\n  }\n}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, c := range []struct {
		args []string
		code int
	}{
		{[]string{"hosts"}, 0},
		{[]string{"hosts", "c9"}, ExitUsage},
		{[]string{"ping"}, 0},
		{[]string{"run", "cattle", "--", "uptime"}, 0},
		{[]string{"--dry-run", "run", "cattle", "--", "uptime"}, 0},
		{[]string{"runbook", "plan", rb}, 0},
		{[]string{"--yes", "runbook", "run", rb}, ExitFailed},
		{[]string{"history"}, 0},
		{[]string{"history", "last"}, 0},
		{[]string{"resume", "nosuchrun"}, ExitUsage},
		{[]string{"version"}, 0},
		// Refused before the command's flags are parsed: still an event.
		{[]string{"nosuchcmd"}, ExitUsage},
		{[]string{"--dryrun", "hosts"}, ExitUsage},
		{[]string{"status"}, -1},
		{[]string{"migrate-jobs", "--dir", jobsDir, "--from", "/old", "--to", "/new"}, 0},
	} {
		h := newHarness(t)
		h.conn.handler = func(host string, cmd sshexec.Cmd) (string, string, int) {
			if cmd.Line() == "false" {
				return "", "no", 1
			}
			return host + "\n", "", 0
		}
		getenv := h.f.Getenv
		h.f.Getenv = func(k string) string {
			if k == "XDG_STATE_HOME" {
				return state
			}
			return getenv(k)
		}
		code := h.runLine(append([]string{"--json"}, c.args...)...)
		if c.code >= 0 && code != c.code {
			t.Errorf("%q: exit %d, want %d\n%s", c.args, code, c.code, h.err)
		}
		lines := strings.Split(strings.TrimSpace(h.out.String()), "\n")
		for i, l := range lines {
			var m map[string]any
			if err := json.Unmarshal([]byte(l), &m); err != nil {
				t.Fatalf("%q: not JSON: %q", c.args, l)
			}
			kind, _ := m["event"].(string)
			if m["schema"] != float64(iostreams.SchemaVersion) || !documented[kind] {
				t.Errorf("%q: schema %v, event %q (undocumented or missing): %s", c.args, m["schema"], kind, l)
			}
			seen[kind] = true
			if code != 0 && i == len(lines)-1 && (kind != "error" || m["exit_code"] != float64(code) || m["error"] == "") {
				t.Errorf("%q: exit %d, last event %s, want an error event with the code", c.args, code, l)
			}
			if c.args[0] == "--yes" || c.args[0] == "history" && len(c.args) == 2 {
				var r tasks.Record
				if kind != "error" && (json.Unmarshal([]byte(l), &r) != nil || r.Type != kind) {
					t.Errorf("%q: %s does not decode as a journal record", c.args, l)
				}
			}
			if _, capital := m["Done"]; capital {
				t.Errorf("%q: Go field name in JSON: %s", c.args, l)
			}
		}
	}
	for _, k := range []string{"error", "host", "ping", "host_result", "plan", "run_start", "step_start", "check", "action", "undo", "step_end", "run_end", "run", "version", "jobs_summary", "job_file", "run_plan", "status_check", "status_summary"} {
		if !seen[k] {
			t.Errorf("no %q event seen", k)
		}
	}
}

func TestJSONAskedStopsAtTheRemoteCommand(t *testing.T) {
	for args, want := range map[string]bool{
		"--json nosuchcmd":       true,
		"nosuchcmd --json":       true,
		"--json=true --dryrun":   true,
		"--json=false nosuchcmd": false,
		"--jsonx nosuchcmd":      false,
		"run c1 -- echo --json":  false,
		"nosuchcmd":              false,
	} {
		if got := jsonAsked(strings.Fields(args)); got != want {
			t.Errorf("jsonAsked(%q) = %v, want %v", args, got, want)
		}
	}
}

// An interrupted command's error event says so as the human line does
// ("✗ interrupted"), not Go's "context canceled".
func TestInterruptedErrorEventSaysInterrupted(t *testing.T) {
	for _, err := range []error{context.Canceled, fmt.Errorf("%w: %w", context.Canceled, errors.New("step 1: signal: interrupt"))} {
		if got := errorText(err, ExitCode(err)); got != "interrupted" {
			t.Errorf("errorText(%v) = %q, want interrupted", err, got)
		}
	}
}

// recordKinds are the run events, all of them tasks.Record (the journal's
// one record type, docs/json.md's run rows).
var recordKinds = []string{"plan", "run_start", "resume", "step_start", "check", "action", "undo", "progress", "step_end", "run_end"}

// docs/json.md against the event types: every type's kind has exactly one
// row (one shape per kind), every JSON field of the type is named in it,
// no two types share a kind, and every documented kind has a type.
func TestJSONDocMatchesEventTypes(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("..", "..", "docs", "json.md"))
	if err != nil {
		t.Fatal(err)
	}
	rows := map[string][]string{}
	for _, m := range regexp.MustCompile("(?m)^\\| `([a-z_]+)` \\|[^|]*\\|(.*)\\|$").FindAllStringSubmatch(string(b), -1) {
		rows[m[1]] = append(rows[m[1]], m[2])
	}
	types := eventTypes(t)
	if len(types) < 15 {
		t.Fatalf("found %d event types in pkg/cli", len(types))
	}
	for kind, fields := range types {
		doc := rows[kind]
		if len(doc) != 1 {
			t.Errorf("event %q: %d rows in docs/json.md, want 1", kind, len(doc))
			continue
		}
		for _, f := range fields {
			if !strings.Contains(doc[0], "`"+f+"`") {
				t.Errorf("event %q: field %q not in docs/json.md's row", kind, f)
			}
		}
	}
	for _, k := range recordKinds {
		if _, ok := types[k]; ok {
			t.Errorf("event %q is a run record and also a pkg/cli type", k)
		}
		if len(rows[k]) != 1 {
			t.Errorf("run event %q: %d rows in docs/json.md, want 1", k, len(rows[k]))
		}
	}
	for kind := range rows {
		if _, ok := types[kind]; !ok && !slices.Contains(recordKinds, kind) {
			t.Errorf("docs/json.md documents %q, which no event type has", kind)
		}
	}
}

// eventTypes reads pkg/cli's source: each type with an EventKind method
// returning a constant, and the JSON names of its fields.
func eventTypes(t *testing.T) map[string][]string {
	t.Helper()
	external := map[string]reflect.Type{"tasks.Summary": reflect.TypeFor[tasks.Summary]()}
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	structs := map[string]*ast.StructType{}
	kinds := map[string]string{} // type name: kind
	fset := token.NewFileSet()
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, name, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		ast.Inspect(f, func(n ast.Node) bool {
			switch d := n.(type) {
			case *ast.TypeSpec:
				if st, ok := d.Type.(*ast.StructType); ok {
					structs[d.Name.Name] = st
				}
			case *ast.FuncDecl:
				if d.Recv == nil || d.Name.Name != "EventKind" || len(d.Body.List) != 1 {
					return true
				}
				ret, ok := d.Body.List[0].(*ast.ReturnStmt)
				lit, isLit := ret.Results[0].(*ast.BasicLit)
				if !ok || !isLit {
					t.Fatalf("%s: EventKind does not return a constant", fset.Position(d.Pos()))
				}
				recv := d.Recv.List[0].Type.(*ast.Ident).Name
				kinds[recv] = strings.Trim(lit.Value, `"`)
			}
			return true
		})
	}
	var fieldsOf func(st *ast.StructType) []string
	fieldsOf = func(st *ast.StructType) []string {
		var out []string
		for _, fl := range st.Fields.List {
			if fl.Tag != nil {
				tag := reflect.StructTag(strings.Trim(fl.Tag.Value, "`")).Get("json")
				if name, _, _ := strings.Cut(tag, ","); name != "" && name != "-" {
					out = append(out, name)
				}
				continue
			}
			if len(fl.Names) > 0 {
				continue // unexported or untagged: not in the JSON
			}
			typ := fl.Type
			if s, ok := typ.(*ast.StarExpr); ok {
				typ = s.X
			}
			switch e := typ.(type) {
			case *ast.Ident:
				out = append(out, fieldsOf(structs[e.Name])...)
			case *ast.SelectorExpr:
				rt, ok := external[e.X.(*ast.Ident).Name+"."+e.Sel.Name]
				if !ok {
					t.Fatalf("embedded %s.%s: add it to external", e.X, e.Sel.Name)
				}
				for i := range rt.NumField() {
					if name, _, _ := strings.Cut(rt.Field(i).Tag.Get("json"), ","); name != "" && name != "-" {
						out = append(out, name)
					}
				}
			}
		}
		return out
	}
	out := map[string][]string{}
	for typ, kind := range kinds {
		if _, dup := out[kind]; dup {
			t.Errorf("two event types have kind %q", kind)
		}
		st := structs[typ]
		if st == nil {
			t.Fatalf("event type %s is not a struct declared in pkg/cli", typ)
		}
		out[kind] = fieldsOf(st)
	}
	return out
}
