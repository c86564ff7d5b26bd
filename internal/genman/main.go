// Command genman writes hoctl's man pages (hoctl.1, hoctl-run.1, ...) from
// the command tree, so they say exactly what --help says. `make man` and
// `make install` run it.
package main

import (
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/hoctl/hoctl/pkg/cli"
	"github.com/hoctl/hoctl/pkg/iostreams"
	"github.com/spf13/cobra"
	"github.com/spf13/cobra/doc"
)

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: genman DIR")
		os.Exit(2)
	}
	if err := run(os.Args[1], os.Getenv); err != nil {
		fmt.Fprintln(os.Stderr, "genman:", err)
		os.Exit(1)
	}
}

func run(dir string, getenv func(string) string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	ios, _, _, _ := iostreams.Test()
	root := cli.NewRootCmd(&cli.Factory{IO: ios, Version: getenv("VERSION"), Getenv: getenv})
	root.DisableAutoGenTag = true
	hdr := &doc.GenManHeader{Title: "HOCTL", Section: "1", Source: "hoctl " + getenv("VERSION"), Manual: "hoctl manual"}
	// Reproducible pages: the date is the source's (SOURCE_DATE_EPOCH),
	// not the time of the build.
	if t, err := time.Parse(time.RFC3339, getenv("DATE")); err == nil {
		hdr.Date = &t
	} else {
		epoch := time.Unix(0, 0).UTC()
		hdr.Date = &epoch
	}
	keepExampleLines(root)
	return doc.GenManTree(root, hdr, dir)
}

// keepExampleLines makes the indented lines of each description (command
// lines shown inside the text) a block of their own in the man page: the
// page is made from Markdown, where a line indented under a paragraph
// continues it, so "as with ssh:\n  hoctl run ..." ran together into one
// filled paragraph. --help prints the description as written.
func keepExampleLines(c *cobra.Command) {
	c.Long = codeBlocks(c.Long)
	for _, sub := range c.Commands() {
		keepExampleLines(sub)
	}
}

// codeBlocks turns each run of lines indented by two or more spaces into
// a Markdown code block: a blank line around it and four spaces in front.
func codeBlocks(s string) string {
	lines := strings.Split(s, "\n")
	var out []string
	in := false
	for _, l := range lines {
		indented := strings.HasPrefix(l, "  ") && strings.TrimSpace(l) != ""
		switch {
		case indented && !in:
			if len(out) > 0 && out[len(out)-1] != "" {
				out = append(out, "")
			}
			in = true
		case !indented && in:
			if l != "" {
				out = append(out, "")
			}
			in = false
		}
		if indented {
			l = "    " + strings.TrimLeft(l, " ")
		}
		out = append(out, l)
	}
	return strings.Join(out, "\n")
}
