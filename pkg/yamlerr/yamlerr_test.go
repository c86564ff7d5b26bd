package yamlerr

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
)

// AliasBomb is the "billion laughs": each line holds ten aliases
// of the line before, so a few hundred bytes expand to 10^depth values.
func AliasBomb(depth int) string {
	var b strings.Builder
	b.WriteString("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n")
	for i := 1; i <= depth; i++ {
		fmt.Fprintf(&b, "a%d: &a%d [", i, i)
		for j := 0; j < 10; j++ {
			if j > 0 {
				b.WriteString(", ")
			}
			fmt.Fprintf(&b, "*a%d", i-1)
		}
		b.WriteString("]\n")
	}
	return b.String()
}

// allocated runs f and returns the bytes it allocated (not a time: the
// figure does not depend on the machine's load).
func allocated(f func()) uint64 {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	f()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

type target struct {
	Name  string            `yaml:"name"`
	Items []string          `yaml:"items"`
	Map   map[string]string `yaml:"map"`
	A     any               `yaml:"-"`
}

func parseAndDecode(src string) error {
	f, err := Parse("t.yaml", "test file", []byte(src))
	if err != nil {
		return err
	}
	var v struct {
		A0 []any `yaml:"a0"`
	}
	_ = v
	var t target
	return Decode("t.yaml", "docs/x.md", f, &t).Final("t.yaml")
}

// Hostile input is refused before the YAML library spends time or memory
// on it, with an error naming the file.
func TestHostileInputIsRefusedWithinBounds(t *testing.T) {
	const budget = 64 << 20
	cases := map[string]struct{ src, want string }{
		"alias bomb":          {AliasBomb(9), "expands to more than"},
		"flow nesting":        {strings.Repeat("[", 100_000) + strings.Repeat("]", 100_000), "nested more than 64 levels"},
		"flow mappings":       {strings.Repeat("{a: ", 50_000) + "x" + strings.Repeat("}", 50_000), "nested more than 64 levels"},
		"block nesting":       {blockNesting(400), "nested more than 64 levels"},
		"list nesting":        {strings.Repeat("- ", 50_000) + "x\n", "nested more than 64 levels"},
		"alias depth":         {aliasDepth(100), "nests more than 64 levels"},
		"alias in own anchor": {"a: &a [x, *a]\n", "inside its own anchor"},
		"too big":             {strings.Repeat("# padding\n", MaxFileSize/10+1), "larger than 256 KiB"},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			var err error
			n := allocated(func() { err = parseAndDecode(c.src) })
			if err == nil || !strings.Contains(err.Error(), c.want) || !strings.HasPrefix(err.Error(), "t.yaml") {
				t.Fatalf("error = %v, want one naming t.yaml and saying %q", err, c.want)
			}
			if n > budget {
				t.Fatalf("refusing it allocated %d MB, over %d MB", n>>20, budget>>20)
			}
		})
	}
}

func blockNesting(depth int) string {
	var b strings.Builder
	for i := 0; i < depth; i++ {
		b.WriteString(strings.Repeat(" ", i) + "k:\n")
	}
	return b.String()
}

// aliasDepth nests each anchor one level inside the previous: shallow in
// the file, deep once expanded.
func aliasDepth(n int) string {
	var b strings.Builder
	b.WriteString("a0: &a0 [x]\n")
	for i := 1; i <= n; i++ {
		fmt.Fprintf(&b, "a%d: &a%d [*a%d]\n", i, i, i-1)
	}
	return b.String()
}

func TestReadFileBoundsSize(t *testing.T) {
	dir := t.TempDir()
	big := filepath.Join(dir, "big.yaml")
	if err := os.WriteFile(big, make([]byte, MaxFileSize+1), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadFile(context.Background(), big, "inventory"); err == nil || !strings.Contains(err.Error(), "big.yaml: inventory is larger than 256 KiB") {
		t.Fatalf("err = %v", err)
	}
	ok := filepath.Join(dir, "ok.yaml")
	if err := os.WriteFile(ok, []byte("a: b\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if data, err := ReadFile(context.Background(), ok, "inventory"); err != nil || string(data) != "a: b\n" {
		t.Fatalf("%q %v", data, err)
	}
	if _, err := ReadFile(context.Background(), dir, "inventory"); err == nil || !strings.Contains(err.Error(), "is a directory") {
		t.Fatalf("dir: %v", err)
	}
}

// Aliases within the limits decode as YAML defines them, merges included.
func TestAliasesAndMergesDecode(t *testing.T) {
	src := "base: &b {name: n1, items: [x, y]}\nname: top\nitems: *i\n"
	if _, err := Parse("t.yaml", "f", []byte(src)); err == nil || !strings.Contains(err.Error(), "no anchor &i") {
		t.Fatalf("undefined alias: %v", err)
	}
	type inner struct {
		Name  string   `yaml:"name"`
		Items []string `yaml:"items"`
	}
	var v struct {
		Base  inner `yaml:"base"`
		Other inner `yaml:"other"`
	}
	f, err := Parse("t.yaml", "f", []byte("base: &b {name: n1, items: [x, y]}\nother: {<<: *b, name: n2}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if errs := Decode("t.yaml", "", f, &v); len(errs) > 0 {
		t.Fatal(errs)
	}
	if v.Other.Name != "n2" || len(v.Other.Items) != 2 || v.Base.Name != "n1" {
		t.Fatalf("%+v", v)
	}
}

type Settings struct {
	User    string        `yaml:"user"`
	Port    int           `yaml:"port"`
	Files   []string      `yaml:"identity_files"`
	Timeout time.Duration `yaml:"connect_timeout"`
	Sudo    bool          `yaml:"sudo"`
}

type host struct {
	Address  string `yaml:"address"`
	Settings `yaml:",inline"`
}

type inv struct {
	Defaults Settings         `yaml:"defaults"`
	Hosts    map[string]*host `yaml:"hosts"`
}

func decodeInv(t *testing.T, src string) (inv, error) {
	t.Helper()
	var v inv
	f, err := Parse("inv.yaml", "inventory", []byte(src))
	if err != nil {
		return v, err
	}
	return v, Decode("inv.yaml", "docs/inventory.md", f, &v).Final("inv.yaml")
}

// Every problem at once, in file order, each with line, column, field and
// what was expected in words (no Go type names).
func TestDecodeReportsEveryProblemInFileOrder(t *testing.T) {
	_, err := decodeInv(t, `defaults:
  identity_file: ~/.ssh/id
  connect_timeout: 3
hosts:
  a:
    port: twenty
    sudo: maybe
    identity_files: ~/.ssh/a
  b: [x]
  c: !x {address: y}
`)
	var es Errors
	if !errors.As(err, &es) {
		t.Fatalf("err = %v", err)
	}
	want := []string{
		`inv.yaml:2:3: defaults: unknown field "identity_file"; did you mean "identity_files"?`,
		`inv.yaml:3:20: defaults.connect_timeout: expected a duration like 3s, got 3 without a unit: add s, m or h`,
		`inv.yaml:6:11: hosts.a.port: expected a whole number, got "twenty"`,
		`inv.yaml:7:11: hosts.a.sudo: expected true or false, got "maybe"`,
		`inv.yaml:8:21: hosts.a.identity_files: expected a list such as [~/.ssh/a], got "~/.ssh/a"`,
		`inv.yaml:9:6: hosts.b: expected a mapping (name: value lines) with fields such as address, user, port, identity_files, got a list`,
		`inv.yaml:10:6: hosts.c: YAML tags such as !x are not supported in hoctl files: remove it`,
	}
	if len(es) != len(want) {
		t.Fatalf("got %d problems:\n%v", len(es), err)
	}
	for i, w := range want {
		if es[i].Error() != w {
			t.Errorf("problem %d:\n got %s\nwant %s", i+1, es[i], w)
		}
	}
	if strings.Contains(err.Error(), "int") || strings.Contains(err.Error(), "Duration") || strings.Contains(err.Error(), "string") {
		t.Errorf("Go type names in %q", err)
	}
}

func TestProblemsAreCapped(t *testing.T) {
	var b strings.Builder
	b.WriteString("hosts:\n")
	for i := 0; i < MaxProblems+7; i++ {
		fmt.Fprintf(&b, "  h%d: {port: x}\n", i)
	}
	_, err := decodeInv(t, b.String())
	var es Errors
	if !errors.As(err, &es) || len(es) != MaxProblems+1 || !strings.Contains(es[MaxProblems].Error(), "7 more problems not shown") {
		t.Fatalf("%d problems, last %v", len(es), es[len(es)-1])
	}
}

func TestIndentationMistakesNameTheFieldAndCause(t *testing.T) {
	cases := map[string]string{
		// a host's field at the level of the hosts
		"hosts:\n  c1:\n  address: 10.0.0.1\n": `inv.yaml:3:3: hosts.address: "address" is a field, not a name: it is indented at the level of "c1", so "c1" is left empty; indent "address" under "c1"`,
		// a field deeper than its sibling, which has a value
		"hosts:\n  c1:\n    address: x\n      port: 22\n": `inv.yaml:4:7: port: indented more than "address" on the line above, which already has a value: indent "port" like "address" (4 spaces)`,
		// a field between two levels
		"hosts:\n  c1:\n    address: x\n   port: 22\n": `inv.yaml:4:4: port: indented by 3 spaces, which matches no level above: align "port" with "address" (4 spaces) or with "c1" (2 spaces)`,
		// a tab
		"hosts:\n  c1:\n\taddress: x\n": `inv.yaml:3:1: a tab in the indentation: YAML indents with spaces only`,
		// a defaults field at the top
		"defaults:\n  user: root\nport: 22\nhosts: {}\n": `inv.yaml:3:1: unknown field "port"`,
	}
	for src, want := range cases {
		_, err := decodeInv(t, src)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q:\n got %v\nwant %s", src, err, want)
		}
	}
}

func TestSuggest(t *testing.T) {
	names := []string{"identity_files", "known_hosts", "host_key_policy", "connect_timeout", "hosts"}
	for word, want := range map[string]string{"identity_file": "identity_files", "knwon_hosts": "known_hosts", "hostz": "hosts", "connect-timeout": "connect_timeout"} {
		if got := Suggest(word, names); len(got) == 0 || got[0] != want {
			t.Errorf("Suggest(%q) = %v, want %q first", word, got, want)
		}
	}
	if got := Suggest("colour", names); len(got) != 0 {
		t.Errorf("Suggest(colour) = %v", got)
	}
}

// A word's plural or singular is what its writer meant before a longer
// field it happens to begin: a runbook step's "retry" is retries, not
// retry_delay (both are fields of a step).
func TestSuggestPluralBeforeLongerPrefix(t *testing.T) {
	step := []string{"title", "hosts", "when", "before", "run", "after", "undo", "timeout", "retries", "retry_delay", "confirm", "serial", "needs_previous"}
	for word, want := range map[string]string{"retry": "retries", "retrys": "retries", "host": "hosts", "befores": "before", "retry_delays": "retry_delay", "retry_dela": "retry_delay"} {
		if got := Suggest(word, step); len(got) == 0 || got[0] != want {
			t.Errorf("Suggest(%q) = %v, want %q first", word, got, want)
		}
	}
}

// FuzzDecode: whatever the bytes, Parse and Decode return (an error or a
// value), never panic, and every error names the file.
func FuzzDecode(f *testing.F) {
	f.Add([]byte("defaults: {user: root, port: 22}\nhosts:\n  a: {address: x, identity_files: [k]}\n"))
	f.Add([]byte("defaults: &d {user: root}\nhosts:\n  a: {<<: *d, address: x}\n  b: {<<: [*d], port: 2}\n"))
	f.Add([]byte("hosts: !x 0\n"))
	f.Add([]byte(AliasBomb(4)))
	f.Add([]byte(aliasDepth(70)))
	f.Add([]byte("hosts:\n  c1:\n  address: x\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		_, err := decodeInv(t, string(data))
		if err != nil && !strings.HasPrefix(err.Error(), "inv.yaml") {
			t.Fatalf("error does not name the file: %v", err)
		}
	})
}

func TestSyntaxHints(t *testing.T) {
	for src, want := range map[string]string{
		"name x\nsteps: []\n":                         `inv.yaml:1:1: "name x" is not a name: value line: is the ':' after the name missing?`,
		"steps:\n- title: a\n  run: x\n hosts: all\n": `inv.yaml:4:2: hosts: indented by 1 space, which matches no level above: align "hosts" with "run" (2 spaces) or with "steps" (0 spaces)`,
	} {
		_, err := decodeInv(t, src)
		if err == nil || err.Error() != want {
			t.Errorf("%q:\n got %v\nwant %s", src, err, want)
		}
	}
}

// A block mapping 40 levels deep is within the limit of 64: each level
// counts once, not once for the mapping and again for its key (it was
// refused "with its aliases expanded" though it has none).
func TestBlockMappingDepthCountsEachLevelOnce(t *testing.T) {
	var b strings.Builder
	b.WriteString("top: 1\nv:\n")
	for i := 0; i < 40; i++ {
		fmt.Fprintf(&b, "%sk%d: 1\n%sn%d:\n", strings.Repeat("  ", i+1), i, strings.Repeat("  ", i+1), i)
	}
	b.WriteString(strings.Repeat("  ", 42) + "x: 1\n")
	if _, err := Parse("t.yaml", "test", []byte(b.String())); err != nil {
		t.Fatalf("40 levels refused: %v", err)
	}
	if _, err := Parse("t.yaml", "test", []byte(aliasDepth(70))); err == nil || !strings.Contains(err.Error(), "nests more than 64 levels") {
		t.Fatalf("alias depth 70: %v", err)
	}
}
