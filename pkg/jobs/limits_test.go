package jobs

import (
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// Deep nesting made the HCL parser take seconds per 100 KB (time grows
// with the square of the depth); each such file is refused before it is
// parsed, cheaply, and left untouched like a file that does not parse.
func TestHostileJobFilesAreRefusedWithinBounds(t *testing.T) {
	rules, _ := CheckRules(migration)
	for name, src := range map[string]string{
		"brackets":  "a = " + strings.Repeat("[", 50_000) + strings.Repeat("]", 50_000) + "\n",
		"parens":    "a = " + strings.Repeat("(", 50_000) + "1" + strings.Repeat(")", 50_000) + "\n",
		"blocks":    strings.Repeat("b {\n", 20_000) + strings.Repeat("}\n", 20_000),
		"templates": "a = \"" + strings.Repeat("${", 30_000) + "x" + strings.Repeat("}", 30_000) + "\"\n",
		"too big":   "# " + strings.Repeat("x", MaxJobFileSize) + "\n",
	} {
		t.Run(name, func(t *testing.T) {
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			f := Rewrite("deep.hcl", []byte(src), rules)
			runtime.ReadMemStats(&after)
			if f.Err == nil || !strings.Contains(f.Err.Error(), "deep.hcl") || !strings.Contains(f.Err.Error(), "the limit") {
				t.Fatalf("err = %v", f.Err)
			}
			if f.Changed() || string(f.Out) != src {
				t.Fatal("a refused file was rewritten")
			}
			if n := after.TotalAlloc - before.TotalAlloc; n > 64<<20 {
				t.Fatalf("refusing it allocated %d MB", n>>20)
			}
		})
	}
	// Real files stay well inside the limits.
	entries, _ := os.ReadDir("testdata/jobs")
	for _, e := range entries {
		src, _ := os.ReadFile(filepath.Join("testdata/jobs", e.Name()))
		if err := checkLimits(e.Name(), src); err != nil {
			t.Errorf("%s: %v", e.Name(), err)
		}
	}
}

func TestScanReadsAtMostTheLimit(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "big.hcl"), make([]byte, MaxJobFileSize+1), 0o644); err != nil {
		t.Fatal(err)
	}
	files, err := Scan(dir, nil)
	if err != nil || len(files) != 1 || files[0].Err == nil || !strings.Contains(files[0].Err.Error(), "larger than 256 KiB") {
		t.Fatalf("%v %v", files, err)
	}
}
