package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestManPagesForEveryCommand(t *testing.T) {
	dir := t.TempDir()
	env := map[string]string{"VERSION": "v9", "DATE": "2026-11-30T00:00:00Z"}
	if err := run(dir, func(k string) string { return env[k] }); err != nil {
		t.Fatal(err)
	}
	for _, page := range []string{"hoctl.1", "hoctl-run.1", "hoctl-replicate.1", "hoctl-runbook-plan.1", "hoctl-version.1"} {
		b, err := os.ReadFile(filepath.Join(dir, page))
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(b), ".TH \"HOCTL\" \"1\" \"Nov 2026\" \"hoctl v9\"") {
			t.Errorf("%s header:\n%.300s", page, b)
		}
	}
	run, _ := os.ReadFile(filepath.Join(dir, "hoctl-run.1"))
	if !strings.Contains(string(run), "EXAMPLE") || !strings.Contains(string(run), "parallel") {
		t.Errorf("hoctl-run.1 lacks examples or flags:\n%s", run)
	}
	// The command lines inside the description stay lines of their own
	// (a no-fill block), not words of the paragraph around them.
	desc := string(run)[strings.Index(string(run), ".SH DESCRIPTION"):strings.Index(string(run), ".SH OPTIONS")]
	for _, line := range []string{`hoctl run cattle -- 'systemctl is-active nomad && uptime'`, `hoctl run all -- ls -l "/data/my dir"`} {
		i := strings.Index(desc, line)
		if i < 0 {
			t.Errorf("hoctl-run.1 description lacks %s:\n%s", line, desc)
			continue
		}
		before := desc[:i]
		if !strings.HasSuffix(before, ".EX\n") {
			t.Errorf("hoctl-run.1: %s is filled into a paragraph:\n%s", line, desc)
		}
	}
}
