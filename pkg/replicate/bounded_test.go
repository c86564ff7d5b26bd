package replicate

import (
	"bytes"
	"context"
	"io"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/hoctl/hoctl/pkg/sshexec"
)

// allocated is how many bytes fn allocates (all of them, freed or not).
func allocated(fn func()) uint64 {
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	fn()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

const (
	floodLine  = 30 << 10 // `yes <30 KB line>`
	floodTotal = 24 << 20
	// boundAlloc is far above what a bounded reader allocates and far
	// below the flood it reads.
	boundAlloc = 8 << 20
)

// flood writes floodTotal bytes of long lines to w, in pieces as a
// connection delivers them, and then an unterminated line of as much.
func flood(w io.Writer) {
	line := append(bytes.Repeat([]byte("y"), floodLine-1), '\n')
	for n := 0; n < floodTotal; n += len(line) {
		_, _ = w.Write(line[:len(line)/2])
		_, _ = w.Write(line[len(line)/2:])
	}
	piece := bytes.Repeat([]byte("n"), 4096)
	for n := 0; n < floodTotal/8; n += len(piece) {
		_, _ = w.Write(piece)
	}
}

// Issue 19 (after the dir primitive), finding 4: a host answering
// `yes <30 KB line>` on a send's stderr grew the workstation without
// bound (every line kept, and the unterminated rest re-copied on every
// write). What dd's progress reader keeps is bounded, and so is what it
// allocates reading it.
func TestDdProgressBounded(t *testing.T) {
	d := &ddProgress{sent: new(atomic.Int64)}
	alloc := allocated(func() { flood(d) })
	text := d.text()
	if len(text) > 64<<10 {
		t.Errorf("kept %d bytes of the host's stderr", len(text))
	}
	if alloc > boundAlloc {
		t.Errorf("allocated %d bytes reading %d", alloc, floodTotal+floodTotal/8)
	}
	if !strings.HasPrefix(text, "yyyy") || !strings.Contains(text, "nnnn") {
		t.Errorf("the kept text says neither how the output started nor how it ended: %.40q...", text)
	}
	d = &ddProgress{sent: new(atomic.Int64)}
	_, _ = d.Write([]byte("123 bytes (123 B) copied, 1 s, 123 B/s\rERROR: cannot open x\n"))
	if d.sent.Load() != 123 || d.text() != "ERROR: cannot open x" {
		t.Errorf("progress %d, text %q", d.sent.Load(), d.text())
	}
}

// floodRunner is a host whose lock command floods stdout and stderr, then
// fails.
type floodRunner struct{}

func (floodRunner) Name() string { return "c1" }
func (floodRunner) Run(ctx context.Context, c sshexec.Cmd) (*sshexec.Result, error) {
	done := make(chan struct{})
	go func() {
		flood(c.Stdout)
		flood(c.Stderr)
		close(done)
	}()
	select {
	case <-done:
		return &sshexec.Result{Host: "c1", ExitCode: 1}, &sshexec.ExitError{Host: "c1", Code: 1}
	case <-ctx.Done(): // a reader that stopped reading: the command is killed
		return nil, ctx.Err()
	}
}

// The same flood answering the host lock: refused, with a bounded error,
// and without keeping (or allocating) what it read.
func TestHostLockOutputBounded(t *testing.T) {
	var err error
	alloc := allocated(func() {
		_, err = acquireHostLock(context.Background(), floodRunner{}, standby, "services", "alice", HostLockTimeout)
	})
	if err == nil || len(err.Error()) > 64<<10 {
		t.Fatalf("error of %d bytes: %.200v", len(err.Error()), err)
	}
	if alloc > boundAlloc {
		t.Errorf("allocated %d bytes reading %d", alloc, 2*(floodTotal+floodTotal/8))
	}
}
