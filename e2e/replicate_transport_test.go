package e2e

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hoctl/hoctl/internal/lab"
)

// labInventory is a lab's inventory with edits (old, new, old, new...),
// written to a temporary file.
func labInventory(t *testing.T, l *lab.Lab, edits ...string) string {
	t.Helper()
	data, err := os.ReadFile(l.Inventory)
	if err != nil {
		t.Fatal(err)
	}
	s := string(data)
	for i := 0; i+1 < len(edits); i += 2 {
		if !strings.Contains(s, edits[i]) {
			t.Fatalf("inventory has no %q", edits[i])
		}
		s = strings.Replace(s, edits[i], edits[i+1], 1)
	}
	p := filepath.Join(t.TempDir(), "inventory.yaml")
	if err := os.WriteFile(p, []byte(s), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// knownHostsLine is the lab's known_hosts entry for a host.
func knownHostsLine(t *testing.T, l *lab.Lab, name string) string {
	t.Helper()
	data, err := os.ReadFile(l.KnownHosts)
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		if strings.HasPrefix(line, "["+l.Host(name).Addr+"]:") {
			return line
		}
	}
	t.Fatalf("no known_hosts line for %s", name)
	return ""
}

// restrictC1 sets c1 up as a replication target whose keys are confined
// by forced commands, as docs/replicate.md describes: a key for the
// workstation under hoctl's filter, zippy's own key under the filter (for
// --transport direct), and a key under the seed's `btrfs receive` alone.
// It returns the inventory edits that make hoctl use the first or the last.
func restrictC1(t *testing.T) (filtered, receiveOnly string) {
	t.Helper()
	k := restrictC1Keys(t)
	return k.filteredInv, k.receiveOnlyInv
}

// c1Keys are restrictC1's keys: the private key files, and inventories
// that use them.
type c1Keys struct {
	filtered, receiveOnly       string
	filteredInv, receiveOnlyInv string
}

func restrictC1Keys(t *testing.T) c1Keys {
	t.Helper()
	rs := storageRunners(t, "zippy", "c1")
	zippy, c1 := rs[0], rs[1]
	dir := t.TempDir()
	key := func(name string) (string, string) {
		p := filepath.Join(dir, name)
		if out, err := lab.ToolCmd(context.Background(), "ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", name, "-f", p).CombinedOutput(); err != nil {
			t.Fatalf("ssh-keygen: %v: %s", err, out)
		}
		pub, err := os.ReadFile(p + ".pub")
		if err != nil {
			t.Fatal(err)
		}
		return p, strings.TrimSpace(string(pub))
	}
	filteredKey, filteredPub := key("filtered")
	receiveKey, receivePub := key("receive-only")
	zippyPub := strings.TrimSpace(must(t, zippy, "mkdir -p -m 700 /root/.ssh && rm -f /root/.ssh/id_ed25519* && ssh-keygen -q -t ed25519 -N '' -C zippy -f /root/.ssh/id_ed25519 && cat /root/.ssh/id_ed25519.pub"))
	must(t, zippy, "echo '"+knownHostsLine(t, storage, "c1")+"' > /root/.ssh/known_hosts")
	filter := `command="` + hoctlBin + ` target-filter /persist/services-standby",restrict `
	must(t, c1, "mkdir -p -m 700 /root/.ssh && cat > /root/.ssh/authorized_keys <<'EOF'\n"+
		filter+filteredPub+"\n"+filter+zippyPub+"\n"+
		`command="btrfs receive /persist/services-standby",restrict `+receivePub+"\nEOF")
	t.Cleanup(func() {
		must(t, c1, "rm -f /root/.ssh/authorized_keys")
		must(t, zippy, "rm -rf /root/.ssh")
	})
	c1Line := "c1: {address: " + storage.Host("c1").Addr
	return c1Keys{filtered: filteredKey, receiveOnly: receiveKey,
		filteredInv: labInventory(t, storage, c1Line, "c1: {identity_files: ["+filteredKey+"], address: "+storage.Host("c1").Addr,
			"keep: {source: 12, target: 48}", "keep: {source: 12, target: 48}\n    transport: direct\n    compress: zstd"),
		receiveOnlyInv: labInventory(t, storage, c1Line, "c1: {identity_files: ["+receiveKey+"], address: "+storage.Host("c1").Addr)}
}

// A target reached only through hoctl's forced-command filter: direct
// transport (zippy connects to c1 with its own key) with zstd, then a
// relayed incremental, garbage removal, pruning and `hoctl snapshots`, all
// through the filter; anything else on that key is refused. A key limited
// to `btrfs receive` is recognised and explained.
func TestReplicateThroughTargetFilterDirectAndCompressed(t *testing.T) {
	rs := storageRunners(t, "zippy", "c1")
	zippy, c1 := rs[0], rs[1]
	env := stateEnv(t)
	cleanServices(t, zippy, c1)
	must(t, zippy, "btrfs subvolume create /persist/services >/dev/null && cd /persist/services && head -c 5000000 /dev/urandom > blob && seq 1 200000 > text && setfattr -n user.x -v y text")
	inv, receiveOnly := restrictC1(t)

	r := hoctlEnv(t, inv, env, "--yes", "replicate", "zippy", "c1")
	if r.code != 0 || !strings.Contains(r.stderr, "direct, zstd") || !strings.Contains(r.stderr, "full send") {
		t.Fatalf("direct full send: exit %d\n%s", r.code, r.stderr)
	}
	if got, want := fp(t, c1, newest(t, c1, "/persist/services-standby")), fp(t, zippy, "/persist/services"); got != want {
		t.Fatal("copy differs after the direct send")
	}

	must(t, zippy, "seq 5 300000 > /persist/services/text2")
	must(t, c1, "btrfs subvolume create /persist/services-standby/services@20200101T000000Z >/dev/null")
	r = hoctlEnv(t, inv, env, "--yes", "replicate", "--transport", "relay", "zippy", "c1")
	if r.code != 0 || !strings.Contains(r.stderr, "relayed, zstd on the wire") || !strings.Contains(r.stderr, "incremental from services@") ||
		!strings.Contains(r.stderr, "removed unfinished receives: services@20200101T000000Z") {
		t.Fatalf("relayed incremental through the filter: exit %d\n%s", r.code, r.stderr)
	}
	if got, want := fp(t, c1, newest(t, c1, "/persist/services-standby")), fp(t, zippy, "/persist/services"); got != want {
		t.Fatal("copy differs after the relayed incremental")
	}

	snaps := hoctlEnv(t, inv, env, "snapshots", "c1")
	if snaps.code != 0 || strings.Count(snaps.stdout, "services@") != 2 {
		t.Fatalf("snapshots through the filter: exit %d\n%s%s", snaps.code, snaps.stdout, snaps.stderr)
	}
	run := hoctlEnv(t, inv, env, "run", "c1", "--", "cat", "/etc/shadow")
	if run.code == 0 || !strings.Contains(run.stdout+run.stderr, "hoctl target-filter: refused") {
		t.Fatalf("the filtered key ran something else: exit %d\n%s%s", run.code, run.stdout, run.stderr)
	}

	r = hoctlEnv(t, receiveOnly, env, "--yes", "replicate", "zippy", "c1")
	if r.code != 3 || !strings.Contains(r.stderr, "restricted to `btrfs receive`") || !strings.Contains(r.stderr, "forced-command filter") {
		t.Fatalf("a receive-only key must be explained: exit %d\n%s", r.code, r.stderr)
	}
}

// Sending back after a failover: c1 serves a writable snapshot of its
// newest received copy at /persist/services and changes it; `hoctl
// replicate c1 zippy` is then incremental from that copy's origin.
func TestReplicateBackAfterFailoverIsIncremental(t *testing.T) {
	rs := storageRunners(t, "zippy", "c1")
	zippy, c1 := rs[0], rs[1]
	env := stateEnv(t)
	cleanServices(t, zippy, c1)
	must(t, zippy, "btrfs subvolume create /persist/services >/dev/null && head -c 20000000 /dev/urandom > /persist/services/big")

	r := hoctlEnv(t, storage.Inventory, env, "--yes", "replicate", "c1", "zippy")
	if r.code != 3 || !strings.Contains(r.stderr, "/persist/services is not a btrfs subvolume") {
		t.Fatalf("sending back before any failover must refuse: exit %d\n%s", r.code, r.stderr)
	}
	replicateOnce(t, env, "zippy", "c1")
	must(t, zippy, "echo after > /persist/services/after")
	replicateOnce(t, env, "zippy", "c1")

	// The failover, by hand: promote the newest copy on c1, write there.
	must(t, c1, "btrfs subvolume snapshot "+newest(t, c1, "/persist/services-standby")+" /persist/services >/dev/null && echo 'written on c1' > /persist/services/failover")
	r = replicateOnce(t, env, "c1", "zippy")
	if !strings.Contains(r.stderr, "incremental from services@") || strings.Contains(r.stderr, "full send") {
		t.Fatalf("sending back must be incremental:\n%s", r.stderr)
	}
	if got, want := fp(t, zippy, newest(t, zippy, "/persist/services-snapshots")), fp(t, c1, "/persist/services"); got != want {
		t.Fatal("zippy's copy differs from c1's data")
	}
	if !strings.Contains(must(t, zippy, "cat "+newest(t, zippy, "/persist/services-snapshots")+"/failover"), "written on c1") {
		t.Fatal("the change made on c1 is not on zippy")
	}
}

// Unattended on the source host itself (what a systemd timer there runs):
// zippy's address is "local", so hoctl runs btrfs send on its own machine
// and pipes into c1 over SSH.
func TestReplicateUnattendedOnTheSourceHost(t *testing.T) {
	rs := storageRunners(t, "zippy", "c1")
	zippy, c1 := rs[0], rs[1]
	env := stateEnv(t)
	cleanServices(t, zippy, c1)
	must(t, zippy, "btrfs subvolume create /persist/services >/dev/null && seq 1 100000 > /persist/services/data")
	inv := labInventory(t, storage, "zippy: {address: "+storage.Host("zippy").Addr, "zippy: {address: local")
	for i, want := range []string{"full send", "incremental from services@"} {
		cmd, err := storage.Command("zippy", hoctlBin, "-i", inv, "--yes", "replicate", "--name", "services")
		if err != nil {
			t.Fatal(err)
		}
		cmd.Env = append(append(os.Environ(), "NO_COLOR=1", "SSH_AUTH_SOCK="), env...)
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Run(); err != nil || !strings.Contains(out.String(), want) {
			t.Fatalf("run %d on zippy itself: %v\n%s", i+1, err, out.String())
		}
	}
	if got, want := fp(t, c1, newest(t, c1, "/persist/services-standby")), fp(t, zippy, "/persist/services"); got != want {
		t.Fatal("copy differs after the unattended runs")
	}
}
