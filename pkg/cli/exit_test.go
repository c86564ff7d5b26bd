package cli

import (
	"errors"
	"fmt"
	"testing"

	"github.com/hoctl/hoctl/pkg/inventory"
	"github.com/hoctl/hoctl/pkg/replicate"
	"github.com/hoctl/hoctl/pkg/tasks"
)

// The errors TestExitCodes does not name, each asked for its own code,
// also when wrapped as the commands wrap them.
func TestExitCodesOfEveryCodedError(t *testing.T) {
	for _, c := range []struct {
		err  error
		want int
	}{
		{&InputError{Err: errors.New("x")}, ExitUsage},
		{inventory.Errors{&inventory.Error{}}, ExitUsage},
		{&tasks.AmbiguousRunError{}, ExitUsage},
		{&replicate.HostLockedError{}, ExitRefused},
		{fmt.Errorf("c1: %w", &replicate.DirectionError{}), ExitRefused},
		{tasks.Refusef("run x finished successfully: nothing to resume"), ExitRefused},
		{&tasks.ReportedError{Err: &tasks.UnverifiedError{}}, ExitUnverified},
		{fmt.Errorf("replication s: %w", usagef("--transport")), ExitUsage},
		{&SilentError{Code: ExitRefused}, ExitRefused},
	} {
		if got := ExitCode(c.err); got != c.want {
			t.Errorf("ExitCode(%T %v) = %d, want %d", c.err, c.err, got, c.want)
		}
	}
}
