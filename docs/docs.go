// Package docs holds hoctl's user documentation, embedded into the binary
// so that `hoctl help TOPIC` shows the same text as the pages and cannot
// drift from them.
package docs

import "embed"

// Pages are the Markdown pages of this directory, by file name.
//
//go:embed *.md
var Pages embed.FS
