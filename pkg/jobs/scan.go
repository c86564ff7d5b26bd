package jobs

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/pmezard/go-difflib/difflib"
)

// IsJobFile reports whether name is scanned: *.hcl (which covers
// *.nomad.hcl) and *.nomad.
func IsJobFile(name string) bool {
	return strings.HasSuffix(name, ".hcl") || strings.HasSuffix(name, ".nomad")
}

// Scan rewrites every job file directly in dir, sorted by name. Files are
// only read.
func Scan(dir string, rules []Rule) ([]*File, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var out []*File
	for _, e := range entries {
		if e.IsDir() || !IsJobFile(e.Name()) {
			continue
		}
		p := filepath.Join(dir, e.Name())
		src, err := readBounded(p)
		if err != nil {
			// Too big: reported like a file that does not parse, untouched.
			out = append(out, &File{Path: p, Err: err})
			continue
		}
		out = append(out, Rewrite(p, src, rules))
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Path < out[j].Path })
	return out, nil
}

// readBounded reads at most MaxJobFileSize bytes; a bigger file (or a
// FIFO that never ends) is an error, not an allocation of its size.
func readBounded(p string) ([]byte, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, err
	}
	defer func() { _ = f.Close() }()
	src, err := io.ReadAll(io.LimitReader(f, MaxJobFileSize+1))
	if err != nil {
		return nil, err
	}
	if len(src) > MaxJobFileSize {
		return nil, fmt.Errorf("%s: job file is larger than %d KiB, the limit (docs/security.md)", p, MaxJobFileSize>>10)
	}
	return src, nil
}

// Diff is the unified diff of the rewrite (empty when nothing changes).
func (f *File) Diff() string {
	if !f.Changed() {
		return ""
	}
	d, _ := difflib.GetUnifiedDiffString(difflib.UnifiedDiff{
		A: difflib.SplitLines(string(f.Src)), B: difflib.SplitLines(string(f.Out)),
		FromFile: "a/" + f.diffPath(), ToFile: "b/" + f.diffPath(), Context: 2,
	})
	return d
}

// diffPath is the file as git diff names it: its path from the working
// directory when it is under it (services/web.hcl, however the
// directory was given), else its absolute path without the leading /.
func (f *File) diffPath() string {
	abs, err := filepath.Abs(f.Path)
	if err != nil {
		return filepath.ToSlash(f.Path)
	}
	if wd, err := os.Getwd(); err == nil {
		if rel, err := filepath.Rel(wd, abs); err == nil && rel != ".." && !strings.HasPrefix(rel, ".."+string(filepath.Separator)) {
			return filepath.ToSlash(rel)
		}
	}
	return strings.TrimPrefix(filepath.ToSlash(abs), "/")
}

// Report lists the edits and mentions, one per line, with positions.
func (f *File) Report() string {
	var b strings.Builder
	if f.Err != nil {
		fmt.Fprintf(&b, "PARSE ERROR, left untouched: %v\n", f.Err)
	}
	for _, e := range f.Edits {
		fmt.Fprintf(&b, "%d:%d rewrite %s → %s (%s)\n", e.Pos.Line, e.Pos.Column, e.Old, e.New, e.Where)
	}
	for _, m := range f.Mentions {
		fmt.Fprintf(&b, "%d:%d %q %s\n", m.Pos.Line, m.Pos.Column, m.Text, m.Reason)
	}
	return b.String()
}

// WriteAtomic replaces path with data: a temporary file in the same
// directory with the original's mode, synced, then renamed over it, so a
// crash leaves either the old file or the new one, never half of one.
func WriteAtomic(path string, data []byte) error {
	return writeAtomic(path, data, func(f *os.File, b []byte) error { _, err := f.Write(b); return err })
}

// writeAtomic is WriteAtomic with the write itself given, so that a test
// can make it fail half-way.
func writeAtomic(path string, data []byte, write func(*os.File, []byte) error) error {
	st, err := os.Stat(path)
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".hoctl-*")
	if err != nil {
		return err
	}
	ok := false
	defer func() {
		if !ok {
			_ = tmp.Close()
			_ = os.Remove(tmp.Name())
		}
	}()
	if err := write(tmp, data); err != nil {
		return err
	}
	if err := tmp.Chmod(st.Mode().Perm()); err != nil {
		return err
	}
	if err := tmp.Sync(); err != nil {
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return err
	}
	ok = true
	return nil
}
