package tasks

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/hoctl/hoctl/pkg/inventory"
)

// The runbooks shipped in docs/runbooks must load against the example
// inventory: what `hoctl runbook plan` checks before it connects anywhere.
func TestDocRunbooksLoadAgainstExampleInventory(t *testing.T) {
	inv, err := inventory.Load(context.Background(), filepath.Join("..", "..", "inventory.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	files, _ := filepath.Glob(filepath.Join("..", "..", "docs", "runbooks", "*.yaml"))
	if len(files) < 3 {
		t.Fatalf("expected the three phase-3 runbooks, found %v", files)
	}
	for _, f := range files {
		rb, err := LoadRunbookFile(context.Background(), f, inv, LoadOptions{})
		if err != nil {
			t.Errorf("%s: %v", f, err)
			continue
		}
		if rb.Lock != "storage-migration" || len(rb.Steps) < 3 {
			t.Errorf("%s: lock %q, %d steps", f, rb.Lock, len(rb.Steps))
		}
		// The examples show the safe form: every value quoted.
		if len(rb.Warnings) > 0 {
			t.Errorf("%s: %q", f, rb.Warnings)
		}
	}
}
