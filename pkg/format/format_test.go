package format

import (
	"testing"
	"time"
)

func TestBytes(t *testing.T) {
	for n, want := range map[int64]string{0: "0 B", 1023: "1023 B", 1024: "1.0 KiB", 20000000: "19.1 MiB", 3 << 30: "3.0 GiB"} {
		if got := Bytes(n); got != want {
			t.Errorf("Bytes(%d) = %q, want %q", n, got, want)
		}
	}
}

func TestPluralAndDuration(t *testing.T) {
	if Plural(1, "problem") != "1 problem" || Plural(0, "problem") != "0 problems" || Plural(2, "entry", "entries") != "2 entries" {
		t.Error("Plural")
	}
	for d, want := range map[time.Duration]string{
		340 * time.Microsecond:   "<1ms",
		12345 * time.Microsecond: "12ms",
		1234 * time.Millisecond:  "1.23s",
		125 * time.Second:        "2m5s",
	} {
		if got := Duration(d); got != want {
			t.Errorf("Duration(%v) = %q, want %q", d, got, want)
		}
	}
}
