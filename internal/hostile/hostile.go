// Package hostile is the corpus of names a host's output may carry when
// something hostile chose them: a send stream names entries in a
// replication dir, a job or unit author names jobs and units. Every
// parser of host-side output is fuzzed from these seeds, and the
// end-to-end tests plant them for real (e2e/dirsafe_test.go).
package hostile

import "strings"

// Names are file and object names that break parsers reading text: line
// and field separators, the old listing's separator, forged "Key: value"
// lines, terminal control sequences, `..`, quoting, and a name at
// NAME_MAX (255 bytes). None holds '/' or NUL, which no file name can.
func Names(base string) []string {
	return []string{
		base + "@20261126T084500Z",
		base + "@x\n\tName: \t\t\t" + base + "@20200101T000000Z\n\tUUID: \t\t\t0badc0de-0000-4000-8000-000000000777\n\tFlags: \t\t\t-",
		base + "@20261126T084500Z\n",
		base + "@20261126T084500Z\t",
		"\n" + base + "@20261126T084500Z",
		base + "@--hoctl-next-- x",
		"--hoctl-next-- " + base + "@20261126T084500Z",
		base + "@\x1b[2J\x1b]0;pwned\a",
		base + "@..",
		"..",
		".",
		base + "@20261126T084500Z path " + base + "@20200101T000000Z",
		"ID 256 gen 7 top level 5 path " + base + "@20200101T000000Z",
		base + "@'$(id)'\"`id`\"",
		base + "@\r" + base + "@20261126T084500Z",
		base + "@\u202e" + "Z005480T62116202",
		base + "@\xff\xfe",
		base + "@" + strings.Repeat("A", 255-len(base)-1),
		base + "@20261126T084500Z=256",
		"{\"name\":\"" + base + "@20261126T084500Z\",\"kind\":\"subvolume\",\"id\":5}",
		// A name closing its JSON string and object to forge the next
		// entry, or another section, of a batched answer.
		base + "@20261126T084500Z\"},{\"name\":\"" + base + "@20200101T000000Z\",\"kind\":\"subvolume\",\"id\":5}],\"avail\":1,\"entries\":[{\"name\":\"x",
	}
}
