package e2e

import (
	"context"
	"strings"
	"testing"

	"github.com/hoctl/hoctl/pkg/replicate"
	"github.com/hoctl/hoctl/pkg/sshexec"
)

// dirOp runs `hoctl dir-op standby OP...` on c1 through the operator's
// unrestricted key, as failover's promote and a reversed replication's
// send and snapshot do.
func (d *dirLab) dirOp(t *testing.T, op ...string) (*sshexec.Result, error) {
	t.Helper()
	return d.c1.Run(context.Background(), sshexec.Cmd{Argv: append([]string{"hoctl", "dir-op", standby}, op...)})
}

// After a failover c1's replication dir, which a stream wrote, is where
// promote reads the copy and, replicating back, where the source's
// snapshot is made and sent from. Objects a real stream planted there
// under snapshot names (a symlink to a read-only subvolume outside the
// dir, a file, a FIFO) are never promoted, sent or snapshotted over, by
// the unrestricted key; a restricted key is refused the host ops
// altogether; the real copy is promoted and replicated back, beside the
// corpus; and nothing outside the dir is read or changed (issue 19).
func TestHostOpsNeverFollowPlantedNames(t *testing.T) {
	d := newDirLab(t)
	replicateOnce(t, d.env, "zippy", "c1")
	plantCorpus(t, d.c1, d.keys)
	// A read-only victim: what btrfs send -p would accept as a parent.
	must(t, d.c1, "btrfs property set -ts /persist/victim ro true")
	d.before = must(t, d.c1, outsideState)
	side, err := replicate.List(context.Background(), d.c1, standby, "services")
	if err != nil {
		t.Fatal(err)
	}
	copy, ok := side.NewestComplete()
	if !ok {
		t.Fatal("no received copy on c1")
	}
	victim := d.victim.UUID
	planted := []string{linkName, "services@20200101T000003Z", "services@20200101T000004Z"}
	for _, name := range planted {
		if res, err := d.dirOp(t, "promote", name+"="+victim, "/persist/promoted", "/persist/promoted.aside", "m"); err == nil {
			t.Errorf("promote of the planted %q succeeded: %s", name, res.Stdout)
		}
		if res, err := d.dirOp(t, "send", copy.Name(), name+"="+victim); err == nil || len(res.Stdout) != 0 {
			t.Errorf("a send with the planted %q as parent: %v, %d bytes out", name, err, len(res.Stdout))
		}
		if res, err := d.dirOp(t, "send", name); err == nil || len(res.Stdout) != 0 {
			t.Errorf("a send of the planted %q: %v, %d bytes out", name, err, len(res.Stdout))
		}
		if _, err := d.dirOp(t, "snapshot", "/persist/victim", name); err == nil {
			t.Errorf("a snapshot was made over the planted %q", name)
		}
	}
	must(t, d.c1, "test ! -e /persist/promoted && test ! -L /persist/promoted")
	d.outsideSame(t, "the host ops over planted names")
	if got := strings.TrimSpace(must(t, d.c1, "readlink "+standby+"/"+linkName)); got != "/persist/victim" {
		t.Errorf("the planted symlink was changed (%q)", got)
	}

	// The host ops through the restricted key: refused (126), whatever
	// they name.
	for _, line := range []string{
		replicate.PromoteCmd(nil, standby, copy.Name(), copy.UUID, "/persist/promoted", "/persist/promoted.aside", "m").Line(),
		"hoctl-dir promote " + copy.Name() + "=" + copy.UUID + " /persist/promoted /persist/promoted.aside m",
		"hoctl dir-op " + standby + " send " + copy.Name(),
		"hoctl-dir send " + copy.Name(),
		"hoctl-dir snapshot /persist/victim services@20300101T000000Z",
	} {
		if code, out := sshStream(t, d.keys.filtered, line, nil); code != 126 {
			t.Errorf("the restricted key ran %q: exit %d\n%s", line, code, out)
		}
	}
	must(t, d.c1, "test ! -e /persist/promoted")
	d.outsideSame(t, "the host ops through the restricted key")

	// The real copy is promoted (the failover's step, by hand) and
	// replicated back, c1 the source now, its dir holding the corpus.
	if res, err := d.dirOp(t, "promote", copy.Name()+"="+copy.UUID, "/persist/services", "/persist/services.aside", "hoctl failover test"); err != nil {
		t.Fatalf("promoting the real copy: %s", sshexec.FirstLine(res, err))
	}
	t.Cleanup(func() {
		_, _ = d.c1.Run(context.Background(), sshexec.Cmd{Script: "btrfs subvolume delete /persist/services >/dev/null 2>&1; true"})
	})
	must(t, d.c1, "btrfs property get -ts /persist/services ro | grep -qx ro=false && grep -qx 'hoctl failover test' /persist/services/.hoctl-failover && echo on-c1 > /persist/services/back")
	d.before = must(t, d.c1, outsideState)
	r := replicateOnce(t, d.env, "c1", "zippy")
	if !strings.Contains(r.stderr, "incremental from services@") {
		t.Errorf("replicating back beside the corpus is not incremental:\n%s", r.stderr)
	}
	d.outsideSame(t, "replicating back from c1")
	zs, err := replicate.List(context.Background(), d.zippy, "/persist/services-snapshots", "services")
	if err != nil {
		t.Fatal(err)
	}
	back, ok := zs.NewestComplete()
	if !ok || !strings.Contains(must(t, d.zippy, "cat "+back.Path+"/back"), "on-c1") {
		t.Errorf("the change made on c1 is not on zippy (%v)", ok)
	}
}
