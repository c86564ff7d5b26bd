package tasks

import (
	"bytes"
	"io"
	"sync"

	"github.com/hoctl/hoctl/pkg/iostreams"
)

// NewLineReporter is NewReporter for a run that reports beside others on
// the same stderr (replicate of every replication): plain lines, each
// after prefix, never the live view, which redraws its lines in place
// and cannot share the terminal with another. --json is as NewReporter's:
// every event names its run.
func NewLineReporter(ios *iostreams.IOStreams, secrets []string, prefix string) Reporter {
	if ios.JSON {
		return &jsonReporter{io: ios, secrets: secrets}
	}
	w := &prefixWriter{w: ios.ErrOut, prefix: []byte(prefix), lock: ios}
	return &plainReporter{io: ios, w: w, cs: ios.ColorScheme(), secrets: secrets}
}

// prefixWriter writes each whole line after prefix, under lock, so that
// lines of runs reporting at once never interleave. The reporter's lines
// are made safe for the terminal where they quote a host.
type prefixWriter struct {
	w      io.Writer
	prefix []byte
	lock   sync.Locker

	mu      sync.Mutex
	partial []byte
}

func (p *prefixWriter) Write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.partial = append(p.partial, b...)
	i := bytes.LastIndexByte(p.partial, '\n')
	if i < 0 {
		return len(b), nil
	}
	var out []byte
	for _, line := range bytes.SplitAfter(p.partial[:i+1], []byte("\n")) {
		if len(line) > 0 {
			out = append(append(out, p.prefix...), line...)
		}
	}
	p.partial = append(p.partial[:0], p.partial[i+1:]...)
	p.lock.Lock()
	defer p.lock.Unlock()
	_, err := p.w.Write(out)
	return len(b), err
}
