package iostreams

import (
	"io"
	"sync"
)

// SyncWriter is w for writers that write at once (the stages of a
// pipeline, parallel downloads): each Write reaches w whole, never
// interleaved with another.
func SyncWriter(w io.Writer) io.Writer { return &syncWriter{w: w} }

type syncWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (s *syncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}
