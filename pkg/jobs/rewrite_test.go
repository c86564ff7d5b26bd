package jobs

import (
	"bytes"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden files")

var migration = []Rule{{From: "/data/compute", To: "/data/services"}}

func corpus(t testing.TB) []*File {
	t.Helper()
	rules, err := CheckRules(migration)
	if err != nil {
		t.Fatal(err)
	}
	files, err := Scan("testdata/jobs", rules)
	if err != nil {
		t.Fatal(err)
	}
	if len(files) < 25 {
		t.Fatalf("the corpus has %d job files, want at least 25", len(files))
	}
	return files
}

// Every corpus file's report and diff match its golden file (go test
// ./pkg/jobs -update rewrites them; read the diff before committing).
func TestCorpusGolden(t *testing.T) {
	for _, f := range corpus(t) {
		got := f.Report() + f.Diff()
		golden := filepath.Join("testdata", "golden", filepath.Base(f.Path)+".golden")
		if *update {
			if err := os.MkdirAll(filepath.Dir(golden), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		want, err := os.ReadFile(golden)
		if err != nil {
			t.Fatal(err)
		}
		if got != string(want) {
			t.Errorf("%s: got\n%s\nwant\n%s", f.Path, got, want)
		}
	}
}

// checkOnlyLiterals is the byte-exactness property: Out is Src with each
// edit's Old replaced by its New, and not one other byte differs.
func checkOnlyLiterals(t testing.TB, f *File) {
	t.Helper()
	last := 0
	var rebuilt []byte
	for _, e := range f.Edits {
		if e.Start < last || e.End > len(f.Src) || string(f.Src[e.Start:e.End]) != e.Old {
			t.Fatalf("%s: edit %+v does not cover its old text", f.Path, e)
		}
		rebuilt = append(rebuilt, f.Src[last:e.Start]...)
		rebuilt = append(rebuilt, e.New...)
		last = e.End
	}
	rebuilt = append(rebuilt, f.Src[last:]...)
	if !bytes.Equal(rebuilt, f.Out) {
		t.Fatalf("%s: bytes outside the rewritten literals changed", f.Path)
	}
}

func TestCorpusChangesOnlyLiteralsAndIsIdempotent(t *testing.T) {
	rules, _ := CheckRules(migration)
	edits, mentions, broken := 0, 0, 0
	for _, f := range corpus(t) {
		checkOnlyLiterals(t, f)
		again := Rewrite(f.Path, f.Out, rules)
		if again.Changed() {
			t.Errorf("%s: a second run changes it again: %s", f.Path, again.Report())
		}
		edits += len(f.Edits)
		mentions += len(f.Mentions)
		if f.Err != nil {
			broken++
			if !bytes.Equal(f.Out, f.Src) {
				t.Errorf("%s does not parse but was changed", f.Path)
			}
		}
	}
	if edits < 30 || mentions < 12 || broken != 1 {
		t.Errorf("corpus: %d edits, %d mentions, %d broken files: the corpus lost its coverage", edits, mentions, broken)
	}
}

func TestRewritePositions(t *testing.T) {
	rules, _ := CheckRules(migration)
	src := `config {
  volumes = ["/data/compute/a:/data/compute/b", "/data/computer/x:/x", "/data/compute:/y", "/data/compute/${NOMAD_JOB_NAME}:/z"]
  mount {
    type = "bind"
    source = "/data/compute/m"
    target = "/data/compute/t"
  }
  mount {
    type = "volume"
    source = "/data/compute/v"
  }
}
env { X = "/data/compute/e" }
`
	f := Rewrite("t.hcl", []byte(src), rules)
	want := `config {
  volumes = ["/data/services/a:/data/compute/b", "/data/computer/x:/x", "/data/services:/y", "/data/services/${NOMAD_JOB_NAME}:/z"]
  mount {
    type = "bind"
    source = "/data/services/m"
    target = "/data/compute/t"
  }
  mount {
    type = "volume"
    source = "/data/compute/v"
  }
}
env { X = "/data/compute/e" }
`
	if string(f.Out) != want {
		t.Fatalf("got\n%s\n%s", f.Out, f.Report())
	}
	r := f.Report()
	for _, s := range []string{"container side", "mount target", `not type = "bind"`, "in env"} {
		if !strings.Contains(r, s) {
			t.Errorf("report lacks %q:\n%s", s, r)
		}
	}
}

func TestCheckRules(t *testing.T) {
	for _, bad := range [][]Rule{
		{{From: "data/compute", To: "/data/services"}},
		{{From: "/data/compute", To: "/data/compute/"}},
		{{From: "/data", To: "/data/services"}},
		{{From: "/", To: "/x"}},
	} {
		if _, err := CheckRules(bad); err == nil {
			t.Errorf("%v accepted", bad)
		}
	}
	got, err := CheckRules([]Rule{{From: "/data", To: "/srv"}, {From: "/data/compute/", To: "/data/services"}})
	if err != nil || got[0].From != "/data/compute" {
		t.Fatalf("%v %v: the most specific rule goes first", got, err)
	}
}

func FuzzRewrite(f *testing.F) {
	entries, _ := os.ReadDir("testdata/jobs")
	for _, e := range entries {
		b, _ := os.ReadFile(filepath.Join("testdata/jobs", e.Name()))
		f.Add(b)
	}
	rules, _ := CheckRules(migration)
	f.Fuzz(func(t *testing.T, src []byte) {
		r := Rewrite("f.hcl", src, rules)
		checkOnlyLiterals(t, r)
		if r.Err == nil {
			if again := Rewrite("f.hcl", r.Out, rules); again.Changed() {
				t.Fatalf("not idempotent: %s", again.Report())
			}
		}
	})
}

func TestWriteAtomicLeavesTheOriginalOnFailure(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "job.hcl")
	if err := os.WriteFile(p, []byte("original\n"), 0o640); err != nil {
		t.Fatal(err)
	}
	err := writeAtomic(p, []byte("new content\n"), func(f *os.File, b []byte) error {
		_, _ = f.Write(b[:3])
		return errors.New("disk full")
	})
	if err == nil {
		t.Fatal("the failure was lost")
	}
	if b, _ := os.ReadFile(p); string(b) != "original\n" {
		t.Fatalf("original damaged: %q", b)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Fatalf("temporary file left: %v", entries)
	}
	if err := WriteAtomic(p, []byte("new\n")); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(p); string(b) != "new\n" {
		t.Fatalf("got %q", b)
	}
	if st, _ := os.Stat(p); st.Mode().Perm() != 0o640 {
		t.Fatalf("mode %v", st.Mode())
	}
}

func TestPathProblemsOneLineEachPathOnce(t *testing.T) {
	got := pathProblems("MISSING /data/services/a\nEMPTY /data/services/b\nMISSING /data/services/a\nMISSING /data/services/my dir\n")
	want := "missing: /data/services/a, /data/services/my dir; empty where the old path has data: /data/services/b"
	if got != want {
		t.Fatalf("got  %q\nwant %q", got, want)
	}
	if pathProblems("\n") != "" {
		t.Fatal("no problems should say nothing")
	}
}
