package e2e

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/hoctl/hoctl/internal/lab"
	"github.com/hoctl/hoctl/pkg/failover"
)

// Attack F1 on the real cluster: a daemon-reload on zippy takes long (a
// systemd generator that waits, as one waiting on a network resource
// would), and the owner key moves to c1 while zippy, serving, still
// reaches Consul. zippy's guard fences: its stop must not wait for the
// reload. c1 starts its own nfs-server when the failover would (lease +
// margin after the key moved); an NFSv4 reader of both hosts every 20 ms
// must find zippy gone by then (its last confirmation was sent before
// the move: lease + the stop bound, under lease + margin) and never two
// servers. The stop is read from the NFS samples, not from systemctl:
// every systemctl call on zippy waits for PID 1 while it reloads.
func TestRealGuardFenceDoesNotWaitForAReload(t *testing.T) {
	l, _ := nfsStart(t)
	t.Cleanup(func() { restoreGuards(t, l) })

	// Longer than the failover's wait by far, shorter than systemd's
	// own limit on a generator (90 s) and systemctl's two minutes.
	const reload = 60 * time.Second
	const gen = "/etc/systemd/system-generators/hoctl-e2e-slow"
	// Registered after restoreGuards, so run before it: its reloads
	// must not meet the generator.
	t.Cleanup(func() {
		if out, err := inMachine(l, "zippy", "rm -f "+gen); err != nil {
			t.Errorf("zippy: removing %s: %v\n%s", gen, err, out)
		}
	})
	const probe = "slowfence-probe"
	mustInMachine(t, l, "zippy", "echo zippy > /persist/services/"+probe)
	mustInMachine(t, l, "c1", "btrfs subvolume create /persist/services >/dev/null && echo c1 > /persist/services/"+probe)
	mustInMachine(t, l, "zippy", fmt.Sprintf("mkdir -p %s && printf '#!/bin/sh\\nsleep %d\\n' > %s && chmod +x %s",
		gen[:strings.LastIndex(gen, "/")], int(reload.Seconds()), gen, gen))
	if got, err := nfsCat(l, "zippy", probe); err != nil || got != "zippy\n" {
		t.Fatalf("zippy does not serve: %v %q", err, got)
	}

	since := fmt.Sprintf("@%d", time.Now().Unix()-1)
	watch := watchNFS(l, probe)
	defer watch.stop()
	time.Sleep(time.Second)
	if _, err := consulAt(l, "c1").KV().Put(&api.KVPair{Key: lab.NFSOwnerKey, Value: []byte("c1")}, nil); err != nil {
		t.Fatal(err)
	}
	moved := time.Now()
	// What failover --primary-down waits before it starts c1.
	time.Sleep(time.Until(moved.Add(guardBound)))
	if out, err := inMachine(l, "c1", "systemctl start nfs-server 2>&1"); err != nil {
		t.Fatalf("c1: starting nfs-server with the key naming c1: %v\n%s", err, out)
	}
	c1Started := time.Now()
	waitFor(t, 30*time.Second, "c1 to serve", func() error {
		if s := watch.last(); !s.c1ok || s.at.Before(c1Started) {
			return fmt.Errorf("not yet")
		}
		return nil
	})
	// Past the reload, so that a guard that waits for it is seen to.
	time.Sleep(time.Until(moved.Add(reload + 5*time.Second)))
	watch.stop()
	// The guard's journal, after its reload: journalctl waits for none.
	j, _ := inMachine(l, "zippy", "journalctl -u "+lab.NFSGuardUnit+" -u nfs-server --no-pager -o short-iso-precise --since "+since+" | grep -v ' ganesha.nfsd'")
	gone := watch.zippyGone()
	n, total, first := watch.both()
	t.Logf("zippy's journal (guard, nfs-server):\n%s", j)
	switch {
	case gone.IsZero():
		t.Fatalf("zippy still served %s after the key named c1 (its daemon-reload takes %s)", time.Since(moved).Round(time.Second), reload)
	case gone.Sub(moved) > failover.GuardLease+failover.GuardMargin:
		t.Errorf("zippy served until %s after the key named c1: past its last confirmation + lease + the stop bound (under %s + %s), waiting for its %s daemon-reload",
			gone.Sub(moved).Round(10*time.Millisecond), failover.GuardLease, failover.GuardMargin, reload)
	}
	if n > 0 {
		t.Errorf("zippy and c1 both served in %d of %d NFSv4 samples, first %s after the key named c1", n, total, first.Sub(moved).Round(10*time.Millisecond))
	} else {
		t.Logf("measured: %d NFSv4 samples of both hosts, none with two servers", total)
	}
	t.Logf("measured: zippy's export stopped answering %s after the key named c1 (daemon-reload %s, c1 started %s after it)",
		gone.Sub(moved).Round(10*time.Millisecond), reload, c1Started.Sub(moved).Round(10*time.Millisecond))
	const fenced = `owner key ` + lab.NFSOwnerKey + ` names "c1": fencing and stopping nfs-server.service`
	if !strings.Contains(j, fenced) {
		t.Errorf("the guard's journal lacks its fence")
	}
}
