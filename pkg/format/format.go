// Package format writes quantities for people the same way in every
// command and domain package: sizes in binary units, counts with their
// noun, durations and timestamps.
package format

import (
	"fmt"
	"time"
)

// Bytes formats a byte count for people: 512 B, 19.1 MiB.
func Bytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

// Plural is "1 problem", "2 problems": n and the word, in the singular
// for one. plural is the plural form when it is not word+"s".
func Plural(n int, word string, plural ...string) string {
	if n == 1 {
		return fmt.Sprintf("1 %s", word)
	}
	if len(plural) > 0 {
		return fmt.Sprintf("%d %s", n, plural[0])
	}
	return fmt.Sprintf("%d %ss", n, word)
}

// Duration is d as a person reads it: "<1ms" below a millisecond, whole
// milliseconds below a second, two decimals of seconds below a minute,
// then whole seconds ("2m5s").
func Duration(d time.Duration) string {
	switch {
	case d <= 0:
		return "0s"
	case d < time.Millisecond:
		return "<1ms"
	case d < time.Second:
		return d.Round(time.Millisecond).String()
	case d < time.Minute:
		return d.Round(10 * time.Millisecond).String()
	}
	return d.Round(time.Second).String()
}

// TimeFormat shows a timestamp with its zone, so a time read from a
// journal written elsewhere, or pasted into a ticket, is not ambiguous.
const TimeFormat = "2006-01-02 15:04:05 MST"
