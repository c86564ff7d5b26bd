package replicate

import (
	"strings"
	"testing"
)

// hostileOutputs is output a hostile or broken host may answer with:
// nothing, blank lines, the corpus's names (internal/hostile), endless
// lines and numbers out of range.
func hostileOutputs() []string {
	out := []string{"", "\n", " \t\n", "Avail\n", "Avail\n\n", "Avail\n-1\n", "Avail\n99999999999999999999999\n", "Avail\n12abc\n",
		strings.Repeat("y", 1<<16), "Avail\n1\n2\n3\n", "\x00\xff"}
	return append(out, HostileNames...)
}

// Issue 19 (after the dir primitive), finding 5: an empty `df` answer
// panicked the workstation (index out of range [-1]). Whatever the host
// answers, df's free space is a number or an error.
func TestDfAvailHostileOutput(t *testing.T) {
	for _, out := range hostileOutputs() {
		n, err := dfAvail([]byte(out))
		if err == nil && n < 0 {
			t.Errorf("%q: %d bytes free", out, n)
		}
	}
	if n, err := dfAvail([]byte("   Avail\n123456789\n")); err != nil || n != 123456789 {
		t.Errorf("real df output: %d, %v", n, err)
	}
	for _, out := range []string{"", "Avail\n", "Avail\n12abc\n", "Avail\n-5\n"} {
		if _, err := dfAvail([]byte(out)); err == nil {
			t.Errorf("%q read as a free space", out)
		}
	}
}

func FuzzDfAvail(f *testing.F) {
	for _, out := range hostileOutputs() {
		f.Add([]byte(out))
	}
	f.Fuzz(func(t *testing.T, out []byte) {
		if n, err := dfAvail(out); err == nil && n < 0 {
			t.Fatalf("%q: %d bytes free", out, n)
		}
	})
}
