package e2e

import (
	"strings"
	"testing"
)

// Issue 19, finding G3: a user who owns a file in the service data (as
// an NFS client's user may) made it setuid, and every replication then
// failed, for as long as the file kept the bit (and failover
// --primary-down with it, once the copy was older than max_lag). The
// target's stream check now clears the bit and the run goes on, saying
// so: relayed over the operator's unrestricted key, direct (zstd) and
// relayed through the filtered key, each a new setuid file landing
// without its bit, with its owner, and a warning naming it in the run's
// output. A setgid file loses its bit too; a setgid directory keeps it.
func TestReplicateClearsSetuidBitsAndGoesOn(t *testing.T) {
	rs := storageRunners(t, "zippy", "c1")
	zippy, c1 := rs[0], rs[1]
	env := stateEnv(t)
	cleanServices(t, zippy, c1)
	keys := restrictC1Keys(t)
	must(t, zippy, `btrfs subvolume create /persist/services >/dev/null && cd /persist/services && mkdir shared && chmod 2775 shared &&
echo '#!/bin/sh' > run && chmod 2755 run`)
	const warn = "WARNING c1:/persist/services-standby: "
	for i, c := range []struct {
		name, inv string
		args      []string
		how       string
	}{
		{"relayed, unrestricted key", storage.Inventory, []string{"--transport", "relay"}, "relayed"},
		{"direct and zstd, filtered key", keys.filteredInv, nil, "direct, zstd"},
		{"relayed, filtered key", keys.filteredInv, []string{"--transport", "relay"}, "relayed, zstd on the wire"},
	} {
		tool := "user-tool" + string(rune('1'+i))
		must(t, zippy, `cd /persist/services && printf '#!/bin/sh\necho hi\n' > `+tool+` && chown 1000:1000 `+tool+` && chmod 4755 `+tool)
		r := hoctlEnv(t, c.inv, env, append([]string{"--yes", "replicate"}, append(c.args, "zippy", "c1")...)...)
		if r.code != 0 || !strings.Contains(r.stderr, c.how) {
			t.Fatalf("%s: exit %d\n%s", c.name, r.code, r.stderr)
		}
		wants := []string{warn + `cleared the setuid bit of "` + tool + `" (4755 -> 0755): the copy carries no privilege`}
		if i == 0 {
			wants = append(wants, warn+`cleared the setgid bit of "run" (2755 -> 0755)`)
		}
		for _, want := range wants {
			if !strings.Contains(r.stderr, want) {
				t.Errorf("%s: the run does not say %q:\n%s", c.name, want, r.stderr)
			}
		}
		copy := newest(t, c1, "/persist/services-standby")
		if got, want := must(t, c1, "cd "+copy+" && stat -c '%n %a %u:%g' "+tool+" run shared"),
			tool+" 755 1000:1000\nrun 755 0:0\nshared 2775 0:0\n"; got != want {
			t.Errorf("%s: the copy holds\n%swant\n%s", c.name, got, want)
		}
	}
	if got := must(t, zippy, "stat -c '%a' /persist/services/user-tool1"); got != "4755\n" {
		t.Errorf("the source's file changed: %s", got)
	}
}
