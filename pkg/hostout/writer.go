package hostout

import (
	"bytes"
	"io"
	"strings"
	"sync"
)

// MaxLine bounds what a Writer holds of a line without a newline: a
// runaway line is shown in pieces of this size rather than kept whole.
const MaxLine = 64 << 10

// Writer shows a host's output as it comes: whole lines, each with
// Prefix, sanitised. Every complete line of one Write goes out in one
// write to the destination, under Lock when set, so that lines from
// hosts writing at once never interleave mid-line (many short lines cost
// one syscall, not two each). Flush writes a last line that had no
// newline. Safe for concurrent use.
type Writer struct {
	w      io.Writer
	prefix string
	lock   sync.Locker

	mu  sync.Mutex
	buf []byte
}

// New returns a Writer showing lines on w as prefix+line. lock, when not
// nil, is held around each write to w (an iostreams.IOStreams, so a
// host's lines do not cut into another's or into a progress line).
func New(w io.Writer, prefix string, lock sync.Locker) *Writer {
	return &Writer{w: w, prefix: prefix, lock: lock}
}

// Write never fails: output the terminal cannot take must not stop the
// remote command.
func (p *Writer) Write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.buf = append(p.buf, b...)
	var out strings.Builder
	for {
		i := bytes.IndexByte(p.buf, '\n')
		if i < 0 {
			break
		}
		p.format(&out, p.buf[:i+1])
		p.buf = p.buf[i+1:]
	}
	for len(p.buf) >= MaxLine {
		p.format(&out, append(p.buf[:MaxLine:MaxLine], '\n'))
		p.buf = p.buf[MaxLine:]
	}
	if len(p.buf) == 0 {
		p.buf = nil // let a long-gone burst's array go
	}
	p.emit(out.String())
	return len(b), nil
}

// Flush writes what is left after the last newline, as a line.
func (p *Writer) Flush() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.buf) > 0 {
		var out strings.Builder
		p.format(&out, append(p.buf, '\n'))
		p.emit(out.String())
		p.buf = nil
	}
}

func (p *Writer) format(out *strings.Builder, line []byte) {
	out.WriteString(p.prefix)
	out.WriteString(Sanitize(string(line)))
}

func (p *Writer) emit(s string) {
	if s == "" {
		return
	}
	if p.lock != nil {
		p.lock.Lock()
		defer p.lock.Unlock()
	}
	_, _ = io.WriteString(p.w, s)
}

// Copy shows everything r holds through a Writer with prefix, then
// flushes it: output kept until a host ended (run --group, a journal).
func Copy(w io.Writer, prefix string, r io.Reader) error {
	hw := New(w, prefix, nil)
	_, err := io.Copy(hw, r)
	hw.Flush()
	return err
}
