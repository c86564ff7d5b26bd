package replicate

import (
	"fmt"
	"path"
	"strings"

	"golang.org/x/sys/unix"
)

// promoteMount refuses to promote a copy to sub unless sub's directory
// is on a mount with nosuid and nodev. The copy came from send streams:
// the stream check refuses setuid bits, setgid files, file capabilities
// and device nodes, but a copy received before it did, or one whose
// parent held them, may still carry them, inert in the nosuid,nodev dir
// and live anywhere else. Checked before anything is moved or made, so
// a refusal leaves the host as it was: remount, then resume.
func promoteMount(sub string) error {
	parent := path.Dir(sub)
	fd, err := unix.Open(parent, unix.O_PATH|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("%s: %w", parent, err)
	}
	defer func() { _ = unix.Close(fd) }()
	var sfs unix.Statfs_t
	if err := unix.Fstatfs(fd, &sfs); err != nil {
		return fmt.Errorf("%s: %w", parent, err)
	}
	var missing []string
	if sfs.Flags&unix.ST_NOSUID == 0 {
		missing = append(missing, "nosuid")
	}
	if sfs.Flags&unix.ST_NODEV == 0 {
		missing = append(missing, "nodev")
	}
	if len(missing) > 0 {
		return fmt.Errorf("%s is on a mount without %s: the copy came from send streams, and a setuid file or device node in it, inert in the replication dir, would be live at %s; mount %s nosuid,nodev (docs/security.md), then resume",
			parent, strings.Join(missing, ","), sub, parent)
	}
	return nil
}
