//go:build !linux

package guard

import (
	"errors"
	"time"
)

// The guard runs on the NFS hosts, which are Linux; hoctl built for an
// operator's workstation elsewhere still carries the command, which then
// refuses to start rather than hold a lease on a clock that stops while
// the host sleeps.
func boottime() (time.Duration, error) {
	return 0, errors.New("hoctl guard needs Linux's CLOCK_BOOTTIME")
}
