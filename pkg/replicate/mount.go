package replicate

import (
	"context"
	"fmt"
	"strings"

	"github.com/hoctl/hoctl/pkg/sshexec"
)

// ReceiveArgv receives a stream into dir, confined to it: btrfs receive
// otherwise follows `..`, absolute symlinks and the like in the paths a
// stream carries and writes wherever they lead (docs/security.md).
// --chroot makes dir the root of everything the stream names.
func ReceiveArgv(dir string) []string {
	return []string{"btrfs", "receive", "-C", dir}
}

// MountArgv prints the mount options of the filesystem holding dir.
func MountArgv(dir string) []string {
	return []string{"findmnt", "-n", "-o", "OPTIONS", "--target", dir}
}

// safeMountOptions keep what a stream may still plant inside the receive
// dir (setuid-root files, device nodes, file capabilities) inert.
var safeMountOptions = []string{"nosuid", "nodev"}

// MissingMountOptions lists which of nosuid and nodev a findmnt OPTIONS
// line lacks.
func MissingMountOptions(options string) []string {
	have := map[string]bool{}
	for _, o := range strings.Split(strings.TrimSpace(options), ",") {
		have[o] = true
	}
	var missing []string
	for _, o := range safeMountOptions {
		if !have[o] {
			missing = append(missing, o)
		}
	}
	return missing
}

// MountMissing reads the mount options of the filesystem holding dir on
// r and lists which of nosuid and nodev it lacks; the error, when they
// cannot be read, is the command's reason in one line.
func MountMissing(ctx context.Context, r sshexec.Runner, dir string) ([]string, error) {
	res, err := r.Run(ctx, sshexec.Cmd{Argv: MountArgv(dir), Stdin: strings.NewReader("")})
	if err != nil {
		return nil, sshexec.OneLine(res, err)
	}
	return MissingMountOptions(string(res.Stdout)), nil
}

// MountWarning checks the mount that receives streams into dir on r and
// says what is unsafe about it; "" when it is mounted nosuid,nodev.
func MountWarning(ctx context.Context, r sshexec.Runner, dir string) string {
	missing, err := MountMissing(ctx, r, dir)
	if err != nil {
		return fmt.Sprintf("%s: could not read the mount options of %s (%v): make sure it is mounted nosuid,nodev (docs/security.md)",
			r.Name(), dir, err)
	}
	if len(missing) == 0 {
		return ""
	}
	return mountWarningText(r.Name(), dir, missing)
}

// mountWarningText says what the missing mount options of dir on host
// let a stream do.
func mountWarningText(host, dir string, missing []string) string {
	return fmt.Sprintf("%s: %s is mounted without %s: a send stream can plant setuid files or device nodes there; mount it nosuid,nodev (docs/security.md)",
		host, dir, strings.Join(missing, ","))
}
