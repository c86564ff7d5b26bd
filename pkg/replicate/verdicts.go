package replicate

import (
	"time"

	"github.com/hoctl/hoctl/pkg/btrfs"
	"github.com/hoctl/hoctl/pkg/retention"
)

// Shared is what one side of a replication shares with the other: the
// UUIDs (on this side) of the snapshots both hold, and the newest of
// them, the next incremental send's parent. source says this side is
// the replication's source.
func Shared(mine, theirs *Side, source bool) (common map[string]bool, next string) {
	common = map[string]bool{}
	if theirs == nil {
		return common, ""
	}
	src, dst := mine.Snapshots, theirs.Snapshots
	if !source {
		src, dst = theirs.Snapshots, mine.Snapshots
	}
	for i, c := range btrfs.CommonSnapshots(src, dst) {
		u := c.Source.UUID
		if !source {
			u = c.Target.UUID
		}
		common[u] = true
		if i == 0 {
			next = u
		}
	}
	return common, next
}

// Verdicts is what the side's retention policy does with its snapshots
// at now, by name: the complete ones as the next prune will judge them,
// with the next parent (nextUUID) protected as a run protects it; a
// writable entry is a receive in progress or garbage, not retention's.
func Verdicts(e Ends, source bool, side *Side, nextUUID string, now time.Time) map[string]retention.Verdict {
	complete := side.Complete()
	protect := map[string]string{}
	for _, s := range complete {
		if s.UUID == nextUUID {
			protect[s.Name()] = NewestCommon
		}
	}
	out := map[string]retention.Verdict{}
	for _, v := range Retain(e.Keep(source), complete, now, protect) {
		out[v.Name] = v
	}
	for _, s := range side.Snapshots {
		if !s.ReadOnly {
			out[s.Name()] = retention.Verdict{Keep: true, Reasons: []string{"writable: a receive in progress or garbage, not retention's"}}
		}
	}
	return out
}
