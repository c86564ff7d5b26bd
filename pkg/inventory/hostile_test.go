package inventory

import (
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
)

// The inputs: each crashed hoctl inside the YAML library, or ran
// for tens of seconds and gigabytes. Each must be an inventory error
// (exit 2) naming the file, cheaply. testdata/fuzz/FuzzParse holds them
// too, so `make fuzz` starts from them.
func TestHostileInventoryIsAnErrorNotACrash(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("testdata", "fuzz", "FuzzParse", "hostile-*"))
	if err != nil || len(files) < 5 {
		t.Fatalf("corpus: %v %v", files, err)
	}
	for _, p := range files {
		t.Run(filepath.Base(p), func(t *testing.T) {
			data := corpusBytes(t, p)
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			_, err := Parse("hostile.yaml", data)
			runtime.ReadMemStats(&after)
			var e *Error
			var es Errors
			if !errors.As(err, &e) && !errors.As(err, &es) {
				t.Fatalf("err = %v (%T), want an inventory error", err, err)
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

// corpusBytes reads a file in the fuzzer's corpus format: a header line,
// then []byte("...") as a Go string literal.
func corpusBytes(t *testing.T, path string) []byte {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	_, lit, ok := strings.Cut(string(raw), "\n")
	lit = strings.TrimSpace(lit)
	if !ok || !strings.HasPrefix(lit, "[]byte(") || !strings.HasSuffix(lit, ")") {
		t.Fatalf("%s: not a fuzz corpus file", path)
	}
	s, err := strconv.Unquote(lit[len("[]byte(") : len(lit)-1])
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return []byte(s)
}
