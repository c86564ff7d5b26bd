package hostout

import (
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/hoctl/hoctl/pkg/hostout/hostouttest"
)

type lockedBuilder struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuilder) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func TestWriterPrefixesAndSanitisesLines(t *testing.T) {
	var out strings.Builder
	w := New(&out, "c1 | ", nil)
	for _, chunk := range []string{"one\ntw", "o\r", "\nthr", hostouttest.Hostile, "no newline"} {
		_, _ = w.Write([]byte(chunk))
	}
	if strings.Contains(out.String(), "no newline") {
		t.Fatalf("a partial line was written before Flush: %q", out.String())
	}
	w.Flush()
	got := out.String()
	if u := hostouttest.FirstUnsafe(got); u != "" {
		t.Fatalf("%s reached the terminal: %q", u, got)
	}
	want := "c1 | one\nc1 | two\nc1 | thr" + Sanitize(hostouttest.Hostile) + "c1 | no newline\n"
	if got != want {
		t.Fatalf("got\n%q\nwant\n%q", got, want)
	}
	for _, visible := range []string{`\x1b[2J`, `\x1b]52;c;`, `\x1b]8;;http`, `ok\x0dFAKE`, `\u009b31m`, `\x9b`, `\u202e`, `\xff\xfe`} {
		if !strings.Contains(got, visible) {
			t.Errorf("%s is not shown: %q", visible, got)
		}
	}
}

// A host printing without newlines is shown in MaxLine pieces; the writer
// never holds more.
func TestWriterBoundsARunawayLine(t *testing.T) {
	var out strings.Builder
	w := New(&out, "h | ", nil)
	chunk := []byte(strings.Repeat("x", 4096))
	for range 100 {
		_, _ = w.Write(chunk)
		if len(w.buf) >= MaxLine {
			t.Fatalf("holding %d bytes", len(w.buf))
		}
	}
	w.Flush()
	lines := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
	if len(lines) != 7 || len(lines[0]) != len("h | ")+MaxLine {
		t.Fatalf("%d lines, first %d bytes", len(lines), len(lines[0]))
	}
}

// Hosts writing at once through one lock never cut into each other's
// lines.
func TestWritersDoNotInterleaveLines(t *testing.T) {
	var out lockedBuilder
	var lock sync.Mutex
	var wg sync.WaitGroup
	for h := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			w := New(&out, fmt.Sprintf("h%d | ", h), &lock)
			for i := range 200 {
				// A line in three writes.
				_, _ = fmt.Fprintf(w, "h%d line", h)
				_, _ = fmt.Fprintf(w, " %d", i)
				_, _ = w.Write([]byte(" end\n"))
			}
		}()
	}
	wg.Wait()
	for _, l := range strings.Split(strings.TrimSuffix(out.b.String(), "\n"), "\n") {
		var h, h2, i int
		if n, _ := fmt.Sscanf(l, "h%d | h%d line %d end", &h, &h2, &i); n != 3 || h != h2 {
			t.Fatalf("interleaved: %q", l)
		}
	}
}

func TestCopyShowsKeptOutput(t *testing.T) {
	var out strings.Builder
	if err := Copy(&out, "", strings.NewReader("kept\n"+hostouttest.Hostile+"last")); err != nil {
		t.Fatal(err)
	}
	if got, want := out.String(), "kept\n"+Sanitize(hostouttest.Hostile)+"last\n"; got != want {
		t.Fatalf("got %q, want %q", got, want)
	}
}

func TestFirstUnsafeSeesEveryHostileByte(t *testing.T) {
	if hostouttest.FirstUnsafe(hostouttest.Hostile) == "" {
		t.Fatal("the checker passes the hostile text itself")
	}
	for _, c := range []string{"\x1b", "\a", "\r", "\x9b", "\u009b", "\u202e", "\xff", "\x00", "\x7f"} {
		if hostouttest.FirstUnsafe("ok "+c) == "" {
			t.Errorf("%q passes the checker", c)
		}
	}
	if u := hostouttest.FirstUnsafe(Sanitize(hostouttest.Hostile)); u != "" {
		t.Fatalf("sanitised text fails the checker: %s", u)
	}
}
