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

// MountWarning checks the mount that receives streams into dir on r and
// says what is unsafe about it; "" when it is mounted nosuid,nodev.
func MountWarning(ctx context.Context, r sshexec.Runner, dir string) string {
	res, err := r.Run(ctx, sshexec.Cmd{Argv: MountArgv(dir), Stdin: strings.NewReader("")})
	if err != nil {
		return fmt.Sprintf("%s: could not read the mount options of %s (%s): make sure it is mounted nosuid,nodev (docs/security.md)",
			r.Name(), dir, sshexec.FirstLine(res, err))
	}
	missing := MissingMountOptions(string(res.Stdout))
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
