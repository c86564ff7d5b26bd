package cli

import (
	"slices"
	"testing"

	"github.com/hoctl/hoctl/pkg/failover"
	"github.com/hoctl/hoctl/pkg/tasks"
)

// The kinds whose runbooks say they are resumable register a builder
// from their own package, which the command tree imports.
func TestResumableKindsAreRegistered(t *testing.T) {
	if got, want := tasks.Kinds(), []string{tasks.KindCopy, failover.KindFailover, tasks.KindFile}; !slices.Equal(got, want) {
		t.Fatalf("registered kinds %q, want %q", got, want)
	}
}
