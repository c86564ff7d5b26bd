package replicate

import (
	"testing"
	"time"
)

func TestProgressTextPercentAndETA(t *testing.T) {
	for _, c := range []struct {
		sent, est int64
		elapsed   time.Duration
		want      string
	}{
		{1 << 30, 4 << 30, 10 * time.Second, "1.0 GiB of ~4.0 GiB (25%), 102.4 MiB/s, ETA 30s, 10s"},
		{5 << 30, 4 << 30, 50 * time.Second, "5.0 GiB of ~4.0 GiB (99%), 102.4 MiB/s, 50s"},
		{1 << 20, 0, time.Second, "1.0 MiB, 1.0 MiB/s, 1s"},
	} {
		if got := ProgressText(c.sent, c.est, c.elapsed); got != c.want {
			t.Errorf("ProgressText(%d, %d, %v) = %q, want %q", c.sent, c.est, c.elapsed, got, c.want)
		}
	}
}
