package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hoctl/hoctl/pkg/btrfs"
)

// Issue 19 (re-attack), finding 1: over the operator's unrestricted key
// the target's shell ran plain `btrfs receive -C DIR`, so neither the
// stream check nor the dedicated-dir check ran there. A compromised
// source (its `hoctl dir-op … send` replaced by a wrapper) sends a
// SNAPSHOT of a subvolume outside the dir, found by UUID: `hoctl
// replicate` must fail and nothing of it may reach the dir. The receive
// now runs inside `hoctl target-filter DIR` on the target, whatever key.
func TestReplicateUnrestrictedKeyChecksTheStream(t *testing.T) {
	rs := storageRunners(t, "zippy", "c1")
	zippy, c1 := rs[0], rs[1]
	env := stateEnv(t)
	cleanServices(t, zippy, c1)
	must(t, zippy, "btrfs subvolume create /persist/services >/dev/null && echo data > /persist/services/f")
	must(t, c1, "btrfs subvolume delete /persist/victim >/dev/null 2>&1; btrfs subvolume create /persist/victim >/dev/null && echo TOPSECRET > /persist/victim/f")
	t.Cleanup(func() { must(t, c1, "btrfs subvolume delete /persist/victim >/dev/null 2>&1; true") })
	victim, err := btrfs.ParseShow(must(t, c1, "btrfs subvolume show /persist/victim"))
	if err != nil {
		t.Fatal(err)
	}

	// zippy's hoctl: the real one, except that its send emits the hostile
	// stream.
	h := storage.Host("zippy")
	bin := filepath.Join(h.Dir, "bin", "hoctl")
	streamFile := filepath.Join(h.Dir, "hostile.stream")
	if err := os.WriteFile(streamFile, newSendStream().snapshot("services@20280101T000003Z", 3, victim.UUID).bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	wrapper := "#!/bin/sh\nif [ \"$1\" = dir-op ] && [ \"$3\" = send ]; then exec cat " + streamFile + "; fi\nexec " + hoctlBin + " \"$@\"\n"
	if err := os.Remove(bin); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = os.Remove(bin)
		if err := os.Symlink(hoctlBin, bin); err != nil {
			t.Errorf("restoring zippy's hoctl: %v", err)
		}
		_ = os.Remove(streamFile)
	})
	if err := os.WriteFile(bin, []byte(wrapper), 0o755); err != nil {
		t.Fatal(err)
	}

	r := hoctlEnv(t, storage.Inventory, env, "--yes", "replicate", "--name", "services", "--transport", "relay")
	if r.code == 0 {
		t.Errorf("replicate with a hostile source succeeded:\n%s", r.stderr)
	}
	if !strings.Contains(r.stderr, "not a subvolume directly in the target dir") {
		t.Errorf("replicate did not say the stream was refused (exit %d):\n%s", r.code, r.stderr)
	}
	if leaked := must(t, c1, "grep -rl TOPSECRET /persist/services-standby || true"); leaked != "" {
		t.Errorf("the unrestricted receive copied a subvolume outside the dir into it: %s", leaked)
	}
}
