package jobs

import (
	"fmt"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
)

// Limits on a job file, checked before the HCL parser sees it: the parser
// has none, and its time grows with the square of the nesting depth (a
// 100 KB file of nested brackets took 9 s). Real Nomad job files are a
// few KiB and about ten levels deep (docs/security.md).
const (
	MaxJobFileSize = 256 << 10
	MaxJobDepth    = 100
)

// checkLimits refuses a job file over the size or depth limit, counting
// depth on the lexer's tokens (linear) rather than in the parser.
func checkLimits(name string, src []byte) error {
	if len(src) > MaxJobFileSize {
		return fmt.Errorf("%s: job file is larger than %d KiB, the limit (docs/security.md)", name, MaxJobFileSize>>10)
	}
	tokens, _ := hclsyntax.LexConfig(src, name, hcl.InitialPos)
	depth := 0
	for _, tk := range tokens {
		switch tk.Type {
		case hclsyntax.TokenOBrace, hclsyntax.TokenOBrack, hclsyntax.TokenOParen,
			hclsyntax.TokenTemplateInterp, hclsyntax.TokenTemplateControl, hclsyntax.TokenOQuote, hclsyntax.TokenOHeredoc:
			depth++
		case hclsyntax.TokenCBrace, hclsyntax.TokenCBrack, hclsyntax.TokenCParen,
			hclsyntax.TokenTemplateSeqEnd, hclsyntax.TokenCQuote, hclsyntax.TokenCHeredoc:
			depth--
		}
		if depth > MaxJobDepth {
			return fmt.Errorf("%s:%d:%d: nested more than %d levels deep, the limit for job files (docs/security.md)", name, tk.Range.Start.Line, tk.Range.Start.Column, MaxJobDepth)
		}
	}
	return nil
}
