package cli

import (
	"context"
	"fmt"

	"github.com/hoctl/hoctl/pkg/replicate"
	"github.com/spf13/cobra"
)

// NewCmdDirOp runs one op of the replication dir primitive on this host,
// as hoctl sends it through an unrestricted key: the filter's ops, and
// the host ops (snapshot, send, promote) that reach outside DIR by design
// and that target-filter, a restricted key's forced command, never runs.
func NewCmdDirOp(f *Factory) *cobra.Command {
	return &cobra.Command{
		Use:    "dir-op DIR OP [ARG...]",
		Short:  "Run one op of the replication dir primitive on DIR (sent by hoctl itself, never typed by hand)",
		Hidden: true,
		Args:   cobra.MinimumNArgs(2),
		RunE: func(c *cobra.Command, args []string) error {
			return dirOpRun(c.Context(), f, args[0], args[1:])
		},
	}
}

func dirOpRun(ctx context.Context, f *Factory, dir string, op []string) error {
	req, err := replicate.HostOp(dir, op)
	if err != nil {
		fmt.Fprintln(f.IO.ErrOut, err)
		return &SilentError{Code: ExitFilterRefused}
	}
	code, err := req.Exec(ctx, f.IO.In, f.IO.Out, f.IO.ErrOut)
	if err != nil {
		fmt.Fprintln(f.IO.ErrOut, "hoctl dir-op:", err)
	}
	if code != 0 {
		return &SilentError{Code: code}
	}
	return nil
}
