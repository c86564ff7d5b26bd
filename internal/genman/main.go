// Command genman writes hoctl's man pages (hoctl.1, hoctl-run.1, ...) from
// the command tree, so they say exactly what --help says. `make man` and
// `make install` run it.
package main

import (
	"fmt"
	"os"
	"time"

	"github.com/hoctl/hoctl/pkg/cli"
	"github.com/hoctl/hoctl/pkg/iostreams"
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
	return doc.GenManTree(root, hdr, dir)
}
