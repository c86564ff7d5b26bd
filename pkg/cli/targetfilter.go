package cli

import (
	"context"
	"fmt"

	"github.com/hoctl/hoctl/pkg/replicate"
	"github.com/spf13/cobra"
)

// TargetFilterOptions are the inputs of `hoctl target-filter`.
type TargetFilterOptions struct {
	F    *Factory
	Dir  string
	Base string // optional: the one snapshot base the key may name
}

// ExitFilterRefused is target-filter's status for a command it does not
// allow (126: "cannot execute", as a shell says).
const ExitFilterRefused = 126

// NewCmdTargetFilter is the forced command of a replication target's key.
func NewCmdTargetFilter(f *Factory, runF func(*TargetFilterOptions) error) *cobra.Command {
	opts := &TargetFilterOptions{F: f}
	return &cobra.Command{
		Use:   "target-filter DIR [BASE]",
		Short: "Forced command for a replication target's SSH key: allows only what replication into DIR needs",
		Long: `Meant for a replication target's authorized_keys, never typed by hand:

  command="/run/current-system/sw/bin/hoctl target-filter /persist/services-standby",restrict ssh-ed25519 AAAA... hoctl

It reads SSH_ORIGINAL_COMMAND, parses it as argv (never through a shell) and
runs it only if it is one of the commands hoctl replicate sends to a target:
list, show, df, stat and findmnt of DIR, btrfs receive into DIR (optionally
behind zstd -d; always run as btrfs receive -C DIR, confined to DIR), btrfs
subvolume delete of snapshots named <name>@<UTC time> directly in DIR, and
the replication's lock in DIR. Listing, show, delete and the lock are the
filter's own code, which never follows a symlink in DIR. Anything else is
refused with exit 126. Mount DIR nosuid,nodev. With BASE (the replicated
subvolume's name, e.g. services), the key may list, show, delete and
receive only BASE@<time>: give each replication's key its own BASE. See
docs/replicate.md and docs/security.md.`,
		Args: rangeArgs(1, 2),
		RunE: func(c *cobra.Command, args []string) error {
			opts.Dir = args[0]
			if len(args) == 2 {
				opts.Base = args[1]
			}
			if runF != nil {
				return runF(opts)
			}
			return targetFilterRun(c.Context(), opts)
		},
	}
}

func targetFilterRun(ctx context.Context, opts *TargetFilterOptions) error {
	f := opts.F
	req, err := replicate.Filter{Dir: opts.Dir, Base: opts.Base}.Allow(f.Getenv("SSH_ORIGINAL_COMMAND"))
	if err != nil {
		fmt.Fprintln(f.IO.ErrOut, err)
		return &SilentError{Code: ExitFilterRefused}
	}
	code, err := req.Exec(ctx, f.IO.In, f.IO.Out, f.IO.ErrOut)
	if err != nil {
		fmt.Fprintln(f.IO.ErrOut, "hoctl target-filter:", err)
	}
	if code != 0 {
		return &SilentError{Code: code}
	}
	return nil
}
