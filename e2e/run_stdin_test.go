package e2e

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// `hoctl run TARGET -- sh -s < fix.sh` runs fix.sh on every host, through
// OpenSSH's sshd, as ssh does for one host; -n sends nothing. Before,
// stdin was dropped and the summary said every host exited 0.
func TestRunSendsStdinOnFleet(t *testing.T) {
	script := "echo script-ran-on $(hostname)\necho second line\n"
	r := hoctlIn(t, fleet.Inventory, strings.NewReader(script), nil, "run", "all", "--", "sh", "-s")
	if r.code != 0 {
		t.Fatalf("exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	for _, h := range fleet.Hosts {
		if !strings.Contains(r.stdout, fmt.Sprintf("%s | script-ran-on %s\n", h.Name, h.Name)) {
			t.Errorf("%s did not run the script:\n%s", h.Name, r.stdout)
		}
	}
	if !strings.Contains(r.stderr, fmt.Sprintf("%d/%d hosts exited 0 (given %d B of stdin)", fleetSize, fleetSize, len(script))) {
		t.Errorf("summary:\n%s", r.stderr)
	}

	// Larger than an SSH channel's window, to hosts two at a time: every
	// host, the last as the first, gets all of it.
	data := bytes.Repeat([]byte("hoctl stdin e2e\n"), 1<<16) // 1 MiB
	r = hoctlIn(t, fleet.Inventory, bytes.NewReader(data), nil, "--json", "run", "--parallel", "2", "all", "--", "sha256sum")
	if r.code != 0 {
		t.Fatalf("exit %d\n%s", r.code, r.stderr)
	}
	if n := strings.Count(r.stdout, fmt.Sprintf("%x", sha256.Sum256(data))); n != fleetSize {
		t.Fatalf("%d of %d hosts got the input whole:\n%s", n, fleetSize, r.stdout)
	}

	r = hoctlIn(t, fleet.Inventory, strings.NewReader("must not arrive\n"), nil, "run", "-n", "h01", "--", "cat; echo end")
	if r.code != 0 || r.stdout != "h01 | end\n" {
		t.Fatalf("-n: exit %d, stdout %q\n%s", r.code, r.stdout, r.stderr)
	}
	noStagedInput(t)
}

// Ctrl-C stops commands that were given input too (the cluster's user is
// root, for whom OpenSSH refuses signal requests: the input's end is all
// hoctl has), everywhere, and no command runs on.
func TestCtrlCStopsRemoteCommandsGivenStdin(t *testing.T) {
	marker := fmt.Sprintf("sleep %d.%d", 2000+os.Getpid()%1000, time.Now().Nanosecond()%1000)
	cmd := exec.Command(hoctlBin, "run", "all", "--", "sh", "-s")
	cmd.Stdin = strings.NewReader(marker + "\necho finished\n")
	if out := ctrlCFleet(t, cmd, marker); strings.Contains(out, "finished") {
		t.Fatal("a remote command ran on after Ctrl-C")
	}
	noStagedInput(t)
}

// noStagedInput checks that no host kept a copy of run's input: the
// namespace hosts share this machine's /tmp, where it is staged.
func noStagedInput(t *testing.T) {
	t.Helper()
	if left, _ := filepath.Glob("/tmp/hoctl-stdin.*"); len(left) > 0 {
		t.Fatalf("staged input left on the hosts: %v", left)
	}
}
