package lab

import (
	"fmt"
	"os"
	"strconv"
	"strings"
)

// InotifyInstances is what the end-to-end suite's labs need of
// fs.inotify.max_user_instances: every machine's systemd takes inotify
// instances, and the suite's groups boot five clusters at once. Debian's
// default is 128; `make deps` raises it (docs/lab.md).
const InotifyInstances = 8192

const inotifyLimit = "/proc/sys/fs/inotify/max_user_instances"

// CheckLimits says what of the machine's limits the labs would run into.
func CheckLimits() error { return checkInotify(inotifyLimit) }

func checkInotify(inotifyLimit string) error {
	b, err := os.ReadFile(inotifyLimit)
	if err != nil {
		return fmt.Errorf("reading %s: %w", inotifyLimit, err)
	}
	n, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		return fmt.Errorf("%s: %q", inotifyLimit, b)
	}
	if n < InotifyInstances {
		return fmt.Errorf("fs.inotify.max_user_instances is %d; the labs' machines each run systemd, which takes inotify instances, and the test groups boot several clusters at once: run make deps, which sets %d (or: sysctl -w fs.inotify.max_user_instances=%d)", n, InotifyInstances, InotifyInstances)
	}
	return nil
}
