package cli

import (
	"strings"
	"testing"
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
