package main

import (
	"context"
	"testing"
	"time"

	"github.com/hoctl/hoctl/internal/lab"
)

func TestParseTimed(t *testing.T) {
	out := "At subvol big@x\n1073741824 bytes (1.1 GB, 1.0 GiB) copied, 9 s, 119 MB/s\nTIMED 9512000000\n0m0.003s 0m0.001s\n1m2.500s 0m3.250s\n"
	wall, cpu, err := parseTimed("zippy", out)
	if err != nil {
		t.Fatal(err)
	}
	if wall != 9512*time.Millisecond || cpu != 65750*time.Millisecond {
		t.Fatalf("wall %v, cpu %v; want 9.512s and 1m5.75s", wall, cpu)
	}
	if _, _, err := parseTimed("zippy", "TIMED 12\n"); err == nil {
		t.Fatal("no times line: want an error")
	}
}

func TestDirectVariants(t *testing.T) {
	script := `set -o pipefail; hoctl dir-op /persist/big-snapshots send big@20261207T163353Z | dd bs=128K status=progress | ssh -o BatchMode=yes -p 2222 -l root 127.0.244.12 'SSH_ORIGINAL_COMMAND='\''btrfs receive -C /persist/big-standby'\'' hoctl target-filter /persist/big-standby big'`
	tries, err := directVariants(script, "127.0.244.12")
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"without the progress meter (no dd)":                         `set -o pipefail; hoctl dir-op /persist/big-snapshots send big@20261207T163353Z | ssh -o BatchMode=yes -p 2222 -l root 127.0.244.12 'SSH_ORIGINAL_COMMAND='\''btrfs receive -C /persist/big-standby'\'' hoctl target-filter /persist/big-standby big'`,
		"mbuffer -m 256M on c1 before the filter (unrestricted key)": `set -o pipefail; hoctl dir-op /persist/big-snapshots send big@20261207T163353Z | dd bs=128K status=progress | ssh -i /root/.ssh/raw -o IdentitiesOnly=yes -o BatchMode=yes -p 2222 -l root 127.0.244.12 'mbuffer -q -m 256M | SSH_ORIGINAL_COMMAND='\''btrfs receive -C /persist/big-standby'\'' hoctl target-filter /persist/big-standby big'`,
	}
	seen := map[string]bool{}
	for _, tr := range tries {
		if w, ok := want[tr.label]; ok && tr.script != w {
			t.Errorf("%s:\n got %s\nwant %s", tr.label, tr.script, w)
		}
		if tr.script != "" && seen[tr.script] {
			t.Errorf("%s: the same script as another try", tr.label)
		}
		seen[tr.script] = true
	}
	if _, err := directVariants("btrfs send x | ssh c1 btrfs receive", "127.0.244.12"); err == nil {
		t.Error("a script without hoctl's meter: want an error")
	}
}

func TestTimedScriptFailsWithItsScript(t *testing.T) {
	out, err := lab.ToolCmd(context.Background(), "bash", "-c", timedScript("set -o pipefail; head -c 1000 /dev/zero | false | cat")).CombinedOutput()
	if err == nil {
		t.Fatalf("a failing pipeline timed as if it had run: %s", out)
	}
	out, err = lab.ToolCmd(context.Background(), "bash", "-c", timedScript("set -o pipefail; head -c 1000 /dev/zero | cat >/dev/null")).CombinedOutput()
	if err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	if _, _, err := parseTimed("local", string(out)); err != nil {
		t.Fatal(err)
	}
}
