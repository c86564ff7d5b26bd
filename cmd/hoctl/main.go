// Command hoctl drives a small NixOS/Nomad/Consul cluster over SSH.
package main

import (
	"os"

	"github.com/hoctl/hoctl/pkg/cli"
)

// Set at build time by the Makefile:
// -ldflags "-X main.version=... -X main.commit=... -X main.date=...".
var version, commit, date = "dev", "", ""

func main() {
	stop := startProfile() // nothing unless built with -tags pprof (make bench)
	code := cli.Main(os.Args[1:], cli.BuildInfo{Version: version, Commit: commit, Date: date})
	stop()
	os.Exit(code)
}
