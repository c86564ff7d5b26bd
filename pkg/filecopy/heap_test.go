package filecopy

import (
	"runtime"
	"sync/atomic"
	"testing"
	"time"
)

// heapPeak runs fn and returns the largest live heap seen while it ran.
func heapPeak(t *testing.T, fn func()) uint64 {
	t.Helper()
	var peak atomic.Uint64
	done := make(chan struct{})
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		var m runtime.MemStats
		for {
			runtime.ReadMemStats(&m)
			if m.HeapAlloc > peak.Load() {
				peak.Store(m.HeapAlloc)
			}
			select {
			case <-done:
				return
			case <-time.After(20 * time.Millisecond):
			}
		}
	}()
	fn()
	close(done)
	<-stopped
	return peak.Load()
}
