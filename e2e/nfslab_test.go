package e2e

// The namespace NFS lab's setup (consulsim, nomadsim, the systemctl and
// exportfs shims), kept only for the tests not yet moved to the real
// cluster (status, migrate-jobs); it goes with consulsim once they have.
// The failover tests run on the real cluster (failover_test.go).

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/hashicorp/consul/api"
	"github.com/hoctl/hoctl/internal/lab"
	"github.com/hoctl/hoctl/pkg/consul"
	"github.com/hoctl/hoctl/pkg/httpapi"
	"github.com/hoctl/hoctl/pkg/inventory"
	"github.com/hoctl/hoctl/pkg/sshexec"
)

func nfsRunners(t *testing.T) (zippy, c1, c2 sshexec.Runner) {
	t.Helper()
	rs := labRunners(t, nfsLab, "zippy", "c1", "c2")
	return rs[0], rs[1], rs[2]
}

// nfsStart puts the NFS lab in its day-to-day state: zippy owns and
// serves /persist/services, c1 holds replicated copies, the clients
// (c1, c2) mount zippy's export.
func nfsStart(t *testing.T) (zippy, c1, c2 sshexec.Runner, env []string) {
	t.Helper()
	zippy, c1, c2 = nfsRunners(t)
	env = stateEnv(t)
	clean := func() {
		for _, h := range nfsLab.Hosts {
			_ = os.RemoveAll(filepath.Join(h.Dir, "state"))
		}
		// A fence left by the last test's failover lasts, as on a real
		// host, until reboot: lift it as the reboot would.
		for _, r := range []sshexec.Runner{zippy, c1} {
			_, _ = r.Run(context.Background(), sshexec.Cmd{Script: "rm -rf /run/systemd/system"})
		}
		_, _ = zippy.Run(context.Background(), sshexec.Cmd{Script: "btrfs subvolume delete -c /persist/services* >/dev/null 2>&1; btrfs subvolume sync /persist"})
		_, _ = c1.Run(context.Background(), sshexec.Cmd{Script: "btrfs subvolume delete -c /persist/services-standby/services* /persist/services* >/dev/null 2>&1; btrfs subvolume sync /persist"})
		// The direction a failover recorded on the hosts.
		for _, r := range []sshexec.Runner{zippy, c1} {
			_, _ = r.Run(context.Background(), sshexec.Cmd{Script: "rm -f /persist/.hoctl-replicate-* /persist/services-standby/.hoctl-replicate-*"})
		}
		c := nfsLabClient(t)
		_, _ = c.KV().DeleteTree("hoctl/", nil)
		for _, n := range []string{"zippy", "c1"} {
			_, _ = c.Catalog().Deregister(&api.CatalogDeregistration{Node: n}, nil)
		}
		nfsConsul.SetNodeDown("zippy", false)
	}
	clean()
	t.Cleanup(clean)
	must(t, c1, "mkdir -p /persist/services-standby")
	must(t, zippy, "btrfs subvolume create /persist/services >/dev/null && cd /persist/services && mkdir -p gitea && echo one > gitea/app.ini && head -c 2000000 /dev/urandom > blob")
	if _, err := (&consul.Cluster{Client: nfsLabClient(t)}).CAS(context.Background(), lab.NFSOwnerKey, "zippy", 0); err != nil {
		t.Fatal(err)
	}
	must(t, zippy, "systemctl start nfs-server")
	if r := hoctlEnv(t, nfsLab.Inventory, env, "--yes", "replicate", "zippy", "c1"); r.code != 0 {
		t.Fatalf("replicate: %d\n%s", r.code, r.stderr)
	}
	for _, c := range []sshexec.Runner{c1, c2} {
		must(t, c, "systemctl restart data-services.mount && cat /data/services/gitea/app.ini")
	}
	return zippy, c1, c2, env
}

// nfsLabClient is an official Consul client for the NFS lab's Consul.
func nfsLabClient(t *testing.T) *api.Client {
	t.Helper()
	c, err := consul.NewClient(&inventory.API{Address: "http://" + nfsConsul.Addr}, nil, os.Getenv, httpapi.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return c
}
