package deploy

import (
	"bytes"
	"testing"
)

// The deploy command's output is shown line by line with the host, the
// last line too when it has no newline.
func TestPrefixedOutputKeepsTheLastLine(t *testing.T) {
	var shown bytes.Buffer
	var tail tailBuffer
	w := &teeWriter{tail: &tail, shown: prefixed(&shown, "c1")}
	_, _ = w.Write([]byte("building\nerror: out of disk"))
	if shown.String() != "c1 | building\n" {
		t.Fatalf("before flush: %q", shown.String())
	}
	w.flush()
	if shown.String() != "c1 | building\nc1 | error: out of disk\n" || tail.last() != "error: out of disk" {
		t.Fatalf("after flush: %q, tail %q", shown.String(), tail.last())
	}
}
