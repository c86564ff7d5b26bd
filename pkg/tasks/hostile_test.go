package tasks

import (
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"

	"github.com/hoctl/hoctl/pkg/inventory"
	"github.com/hoctl/hoctl/pkg/yamlerr"
)

// The runbooks: `steps: !x 0` crashed hoctl inside the YAML
// library and an alias bomb under vars: took tens of seconds and
// gigabytes. Each must be a runbook error naming the file, cheaply. They
// are in testdata/fuzz/FuzzParseRunbook so `make fuzz` starts from them.
func TestHostileRunbookIsAnErrorNotACrash(t *testing.T) {
	inv, err := inventory.Parse("inv.yaml", []byte(inv5))
	if err != nil {
		t.Fatal(err)
	}
	files, err := filepath.Glob(filepath.Join("testdata", "fuzz", "FuzzParseRunbook", "hostile-*"))
	if err != nil || len(files) < 5 {
		t.Fatalf("corpus: %v %v", files, err)
	}
	for _, p := range files {
		t.Run(filepath.Base(p), func(t *testing.T) {
			data := corpusBytes(t, p)
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			_, err := ParseRunbook("hostile.yaml", data, inv, LoadOptions{})
			runtime.ReadMemStats(&after)
			var e *yamlerr.Error
			var es yamlerr.Errors
			if !errors.As(err, &e) && !errors.As(err, &es) {
				t.Fatalf("err = %v (%T), want a runbook error", err, err)
			}
			if !strings.HasPrefix(err.Error(), "hostile.yaml") {
				t.Fatalf("error does not name the file: %v", err)
			}
			if n := after.TotalAlloc - before.TotalAlloc; n > 64<<20 {
				t.Fatalf("allocated %d MB", n>>20)
			}
		})
	}
}

// corpusBytes reads a file in the fuzzer's corpus format.
func corpusBytes(t *testing.T, path string) []byte {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	_, lit, _ := strings.Cut(string(raw), "\n")
	lit = strings.TrimSpace(lit)
	if !strings.HasPrefix(lit, "[]byte(") || !strings.HasSuffix(lit, ")") {
		t.Fatalf("%s: not a fuzz corpus file", path)
	}
	s, err := strconv.Unquote(lit[len("[]byte(") : len(lit)-1])
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return []byte(s)
}

// --var names what the runbook declares (vars or secrets); a typo is an
// error with the close name, not a silently unused value.
func TestUndeclaredVarIsAnError(t *testing.T) {
	inv, _ := inventory.Parse("inv.yaml", []byte(inv5))
	src := []byte("name: x\nvars: {app: gitea}\nsecrets: {tok: T}\nsteps:\n  - {title: a, run: 'echo {{.Vars.app}}'}\n")
	get := func(string) string { return "v" }
	for given, want := range map[string]string{
		"ap":    `--var: ap: the runbook declares no variable "ap"; did you mean app?`,
		"other": `--var: other: the runbook declares no variable "other" (it declares app, tok)`,
	} {
		_, err := ParseRunbook("rb.yaml", src, inv, LoadOptions{Vars: map[string]string{given: "1"}, Getenv: get})
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("--var %s: %v\nwant %s", given, err, want)
		}
	}
	for _, ok := range []string{"app", "tok"} {
		if _, err := ParseRunbook("rb.yaml", src, inv, LoadOptions{Vars: map[string]string{ok: "1"}, Getenv: get}); err != nil {
			t.Errorf("--var %s: %v", ok, err)
		}
	}
}
