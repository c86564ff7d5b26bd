// Command hoctl drives a small NixOS/Nomad/Consul cluster over SSH.
package main

import (
	"os"

	"github.com/hoctl/hoctl/pkg/cli"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func main() {
	os.Exit(cli.Main(os.Args[1:], version))
}
