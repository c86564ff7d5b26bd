package jobs

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A new-user review: the diff headers named the file alone ("a/web.hcl")
// where it is services/web.hcl. They name it as git diff does: its path
// from where hoctl runs, however the directory was given (relative, or
// absolute from the inventory's own directory); a file outside it by
// its absolute path.
func TestDiffHeadersNameThePathFromTheWorkingDirectory(t *testing.T) {
	const job = "job \"web\" {\n  group \"g\" {\n    task \"t\" {\n      config { volumes = [\"/data/compute/web:/srv\"] }\n    }\n  }\n}\n"
	outside := t.TempDir()
	if err := os.WriteFile(filepath.Join(outside, "web.hcl"), []byte(job), 0o644); err != nil {
		t.Fatal(err)
	}
	abs, err := filepath.Abs("testdata/jobs")
	if err != nil {
		t.Fatal(err)
	}
	rules, err := CheckRules(migration)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ dir, want string }{
		{"testdata/jobs", "testdata/jobs/"},
		{"./testdata/../testdata/jobs", "testdata/jobs/"},
		{abs, "testdata/jobs/"},
		{outside, strings.TrimPrefix(filepath.ToSlash(outside), "/") + "/"},
	} {
		files, err := Scan(c.dir, rules)
		if err != nil {
			t.Fatal(err)
		}
		shown := 0
		for _, f := range files {
			d := f.Diff()
			if d == "" {
				continue
			}
			shown++
			name := filepath.Base(f.Path)
			head := "--- a/" + c.want + name + "\n+++ b/" + c.want + name + "\n"
			if !strings.HasPrefix(d, head) {
				t.Errorf("dir %s: diff starts\n%s\nwant\n%s", c.dir, strings.Join(strings.SplitN(d, "\n", 3)[:2], "\n"), head)
			}
		}
		if shown == 0 {
			t.Errorf("dir %s: no diff to look at", c.dir)
		}
	}
}
