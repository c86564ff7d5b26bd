package lab

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Debian's default of 128 inotify instances is too few for the test
// groups' machines: preflight names the fix; make deps's value passes.
func TestPreflightNamesTheInotifyLimit(t *testing.T) {
	p := filepath.Join(t.TempDir(), "max_user_instances")
	for v, ok := range map[string]bool{"128\n": false, "8192\n": true, "65536\n": true} {
		if err := os.WriteFile(p, []byte(v), 0o600); err != nil {
			t.Fatal(err)
		}
		err := checkInotify(p)
		if ok != (err == nil) || (err != nil && !strings.Contains(err.Error(), "run make deps")) {
			t.Errorf("%q: %v", v, err)
		}
	}
}
