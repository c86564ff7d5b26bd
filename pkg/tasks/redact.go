package tasks

import (
	"bytes"
	"io"
)

// redactWriter replaces secrets in a stream as it passes, holding back
// just enough bytes that a secret split across two writes is still
// caught. Flush writes what is held back at the end.
type redactWriter struct {
	w       io.Writer
	secrets [][]byte
	keep    int // longest secret less one
	buf     []byte
}

var redacted = []byte("***")

func newRedactWriter(w io.Writer, secrets []string) *redactWriter {
	r := &redactWriter{w: w}
	for _, s := range nonEmpty(secrets) {
		r.secrets = append(r.secrets, []byte(s))
		r.keep = max(r.keep, len(s)-1)
	}
	return r
}

func (r *redactWriter) Write(p []byte) (int, error) {
	if len(r.secrets) == 0 {
		return r.w.Write(p)
	}
	r.buf = append(r.buf, p...)
	r.replace(false)
	// What lies before the last keep bytes cannot begin a secret that is
	// not already wholly in buf (it would have been replaced).
	if n := len(r.buf) - r.keep; n > 0 {
		if _, err := r.w.Write(r.buf[:n]); err != nil {
			return 0, err
		}
		r.buf = append(r.buf[:0], r.buf[n:]...)
	}
	return len(p), nil
}

// replace writes buf up to each secret found in it and *** for it. Until
// the end, a match is taken only where every secret that could start
// before it is wholly in buf, so that of two overlapping secrets the
// first is the one replaced.
func (r *redactWriter) replace(final bool) {
	for {
		at, n := -1, 0
		for _, s := range r.secrets {
			if i := bytes.Index(r.buf, s); i >= 0 && (at < 0 || i < at || i == at && len(s) > n) {
				at, n = i, len(s)
			}
		}
		if at < 0 || !final && at >= len(r.buf)-r.keep {
			return
		}
		_, _ = r.w.Write(r.buf[:at])
		_, _ = r.w.Write(redacted)
		r.buf = append(r.buf[:0], r.buf[at+n:]...)
	}
}

// Flush writes out what was held back.
func (r *redactWriter) Flush() {
	if len(r.secrets) > 0 {
		r.replace(true)
	}
	if len(r.buf) > 0 {
		_, _ = r.w.Write(r.buf)
		r.buf = r.buf[:0]
	}
}
