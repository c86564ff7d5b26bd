package cli

import (
	"context"
	"path/filepath"

	"github.com/hoctl/hoctl/pkg/filecopy"
	"github.com/hoctl/hoctl/pkg/tasks"
	"github.com/spf13/cobra"
)

// CopyOptions are the inputs of `hoctl copy`.
type CopyOptions struct {
	F      *Factory
	Target string
	Spec   filecopy.Spec
}

// copyLong is copy's help: where the file goes on each host, and how.
const copyLong = `Copy the file SRC on this machine to the absolute path DEST on every host
TARGET selects, all hosts at once over each host's one SSH connection. A
DEST that is a directory on a host takes the file under SRC's name, as scp
and Ansible's copy do (DEST/motd); a trailing slash (/etc/) says DEST must
be a directory.

On each host the file goes to a temporary file beside DEST (mode 0600),
is synced, given its mode and owner, checked against SRC's sha256 by the
host's own sha256sum, and renamed over DEST: a reader sees the old file
or the new one, never a part. A host whose DEST already has SRC's
content, mode and owner is left alone and reported unchanged. After the
copy each host reads DEST back (sha256, mode, owner): a mismatch exits 5.

--mode sets the mode (default: an existing file's, else 0644), --owner
the owner (user or user:group; default: an existing file's, else the SSH
user). The file must be a regular file or not exist, in a directory that
exists; a symbolic link is refused (the rename would replace the link).

As every mutating command: the plan first (each host's DEST read for
real, and what would change there), then a question, or --yes; no
terminal and no --yes refuses (exit 6). --dry-run prints the plan only.
Each copy is journaled (hoctl history) and resumable (hoctl resume).
The file streams; it is never read whole into memory.`

// NewCmdCopy puts one file on many hosts.
func NewCmdCopy(f *Factory, runF func(*CopyOptions) error) *cobra.Command {
	opts := &CopyOptions{F: f}
	cmd := &cobra.Command{
		Use:   "copy TARGET SRC DEST",
		Short: "Put a file on many hosts: atomic, mode/owner, checksum-verified, no change when equal",
		Long:  copyLong,
		Example: `  hoctl copy cattle ./motd /etc/motd
  hoctl copy c1 ./motd /tmp/
  hoctl copy all ./resolv.conf /etc/resolv.conf --mode 0644 --owner root:root
  hoctl --dry-run copy c1,c2 ./nomad.hcl /etc/nomad.d/client.hcl`,
		Args: func(_ *cobra.Command, args []string) error {
			if len(args) != 3 {
				return usagef("expected TARGET SRC DEST, got %d argument(s)", len(args))
			}
			return nil
		},
		RunE: func(c *cobra.Command, args []string) error {
			opts.Target = args[0]
			opts.Spec.Src, opts.Spec.Dest = args[1], args[2]
			if err := opts.Spec.Validate(); err != nil {
				return usagef("%v", err)
			}
			if opts.Spec.Mode != "" {
				opts.Spec.Mode, _ = filecopy.NormMode(opts.Spec.Mode)
			}
			if runF != nil {
				return runF(opts)
			}
			return copyRun(c.Context(), opts)
		},
	}
	cmd.Flags().StringVar(&opts.Spec.Mode, "mode", "", "the file's mode, octal (default: an existing file's, else 0644)")
	cmd.Flags().StringVar(&opts.Spec.Owner, "owner", "", "the file's owner, user or user:group (default: an existing file's, else the SSH user)")
	honoursYes(f, cmd)
	honoursDryRun(f, cmd, "read each host's DEST and print what would change; change nothing")
	return cmd
}

func copyRun(ctx context.Context, opts *CopyOptions) error {
	f := opts.F
	inv, err := f.Inventory(ctx)
	if err != nil {
		return err
	}
	hosts, err := inv.Select(opts.Target)
	if err != nil {
		return err
	}
	spec := opts.Spec
	if abs, err := filepath.Abs(spec.Src); err == nil {
		spec.Src = abs // journaled absolute, so that resume works from any directory
	}
	src, err := filecopy.ReadSource(ctx, spec.Src)
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return usagef("SRC: %v", err)
	}
	rb := tasks.CopyRunbook(hosts, spec, src)
	eng, closeFn, err := f.Engine(inv, nil)
	if err != nil {
		return err
	}
	defer closeFn()
	if f.DryRun {
		return planOnly(ctx, f.IO, eng, rb, 1)
	}
	_, err = eng.Run(ctx, rb, tasks.RunOptions{})
	return quiet(err)
}
