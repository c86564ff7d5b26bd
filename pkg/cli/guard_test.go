package cli

import (
	"os"
	"strings"
	"testing"
	"time"

	"github.com/hoctl/hoctl/pkg/guard"
)

// hoctl guard refuses what it cannot run with (exit 2, before touching
// Consul or systemd): no key, --json (it logs to the journal), a unit
// that is not a service, a Consul address that is not http(s).
func TestGuardUsageErrors(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"guard"}, "--key: the owner key is required"},
		{[]string{"--json", "guard", "--key", "k"}, "--json does not apply"},
		{[]string{"guard", "--key", "k", "--unit", "nfs-server"}, `--unit "nfs-server": expected a service unit`},
		{[]string{"guard", "--key", "k", "--consul", "ftp://c1:8500"}, "expected http(s)://HOST:PORT"},
		{[]string{"guard", "--key", "k", "extra"}, "takes no arguments"},
	} {
		h := newHarness(t)
		code := h.runLine(c.args...)
		if code != ExitUsage || !strings.Contains(h.out.String()+h.err.String(), c.want) {
			t.Errorf("%q: exit %d, want 2 and %q:\n%s%s", c.args, code, c.want, h.out, h.err)
		}
	}
}

// hoctl guard --check-lease, the NFS unit's ExecStartPre: exit 0 while
// the guard's stored lease holds, 1 once it has run out or when the
// guard never confirmed (a file it did not write, a link: refused).
func TestGuardCheckLease(t *testing.T) {
	dir := t.TempDir()
	clock := guard.NewBootClock()
	st := guard.NewFileState(dir, "hoctl/nfs/x/owner", clock)
	check := func() (int, string) {
		h := newHarness(t)
		code := h.runLine("guard", "--key", "hoctl/nfs/x/owner", "--state-dir", dir, "--check-lease", "--check-wait", "0s")
		return code, h.out.String() + h.err.String()
	}
	if code, out := check(); code != ExitFailed || !strings.Contains(out, "does not hold") {
		t.Errorf("no state: exit %d:\n%s", code, out)
	}
	now := clock.Now()
	if err := st.Save(guard.Stored{LeaseEnd: now.Add(10 * time.Second), Confirmed: now.Add(-5 * time.Second)}); err != nil {
		t.Fatal(err)
	}
	if os.Geteuid() == 0 { // the file must be root's
		if code, out := check(); code != ExitOK || !strings.Contains(out, "holds for") {
			t.Errorf("a lease that holds: exit %d:\n%s", code, out)
		}
	}
	if err := st.Save(guard.Stored{LeaseEnd: now.Add(-time.Second), Confirmed: now.Add(-16 * time.Second), LeaseStopped: true}); err != nil {
		t.Fatal(err)
	}
	if code, out := check(); code != ExitFailed || !strings.Contains(out, "must not start") {
		t.Errorf("a lease run out: exit %d:\n%s", code, out)
	}
	if err := st.Save(guard.Stored{LeaseEnd: now.Add(time.Second)}); err != nil {
		t.Fatal(err)
	}
	if code, out := check(); code != ExitFailed || !strings.Contains(out, "no confirmation") {
		t.Errorf("a guard just started, never confirmed: exit %d:\n%s", code, out)
	}
}
