package consul

import (
	"context"
	"strings"
	"time"
)

// ElectionWait bounds how long a Cluster call waits out a leader
// election: the leader lost (killed, partitioned) and the remaining
// servers electing another. Consul holds a request meanwhile only while
// it knows there is no leader (rpc_hold_timeout, 7 s); a server that
// still takes the dead one for leader fails the request at once with
// "rpc error getting client: failed to get conn" (seen on the real
// cluster: kill -9 of the leader mid-failover refused the next step).
// An election takes seconds (raft_multiplier 5, Consul's default for
// production, makes its timeouts 5 s); 15 s is what hoctl gives any
// request (DefaultTimeout).
var ElectionWait = 15 * time.Second

// duringElection reports an error meaning the request never reached a
// leader, so that it did nothing and can be sent again: no leader known,
// or the known leader unreachable from the server that forwarded it. Not
// "leadership lost while committing log": a write may have been applied.
func duringElection(err error) bool {
	if err == nil {
		return false
	}
	s := err.Error()
	return strings.Contains(s, "No cluster leader") || strings.Contains(s, "rpc error getting client") ||
		strings.Contains(s, "failed to get conn")
}

// throughElection runs call until it succeeds, fails otherwise than by a
// leader election, ElectionWait has passed, or ctx ends.
func throughElection(ctx context.Context, call func() error) error {
	deadline := time.Now().Add(ElectionWait)
	delay := 100 * time.Millisecond
	for {
		err := call()
		if !duringElection(err) || time.Now().Add(delay).After(deadline) {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(delay):
		}
		delay = min(2*delay, time.Second)
	}
}
