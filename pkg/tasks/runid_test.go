package tasks

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

// A run is found by any unique part of its id, as git finds a commit by
// a prefix: its random suffix (what an operator copies from a message)
// as well as a prefix of its time. A part several ids hold lists them.
func TestRunFoundByAnyUniquePartOfItsID(t *testing.T) {
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "runs"), 0o700); err != nil {
		t.Fatal(err)
	}
	ids := []string{"20261130T040000Z-cab475", "20261130T050000Z-0cab47", "20261129T010000Z-d00d11", "20251201T000000Z-aaaaaa", "20261201T000000Z-20251f"}
	for _, id := range ids {
		b, _ := json.Marshal(Record{Type: "run_start", Time: time.Date(2026, 11, 30, 4, 0, 0, 0, time.UTC)})
		if err := os.WriteFile(filepath.Join(dir, "runs", id+".jsonl"), append(b, '\n'), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	for arg, want := range map[string]string{
		"cab475":    ids[0], // the random suffix
		"-cab475":   ids[0],
		"0cab47":    ids[1],
		"d00d":      ids[2],
		"Z-d00d11":  ids[2],
		"20261129":  ids[2], // a prefix, as before
		"T050000Z-": ids[1],
	} {
		if got, err := ResolveRunID(dir, arg); err != nil || got != want {
			t.Errorf("%q: %q, %v; want %q", arg, got, err, want)
		}
	}
	// "cab47" is in two ids: both are listed, and it is a usage error.
	var ae *AmbiguousRunError
	_, err := ResolveRunID(dir, "cab47")
	if !errors.As(err, &ae) || !slices.Equal(ae.Candidates, []string{ids[0], ids[1]}) || ae.ExitCode() != 2 {
		t.Fatalf("cab47: %v", err)
	}
	// A prefix still wins over the same text deeper in another id: git's
	// rule, so an id's own start is never ambiguous.
	if got, err := ResolveRunID(dir, "20251"); err != nil || got != ids[3] {
		t.Fatalf("20251: %q %v", got, err)
	}
}
