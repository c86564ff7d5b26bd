package lab

import (
	"fmt"
)

// The NFS service of the lab's inventory (writeInventory).
const (
	NFSService  = "data-services"
	NFSOwnerKey = "hoctl/nfs/data-services/owner"
	NFSExport   = "/data/services"
	NFSSubvol   = "/persist/services"
	NFSMount    = "data-services.mount" // systemd's unit name for NFSExport
	// NFSGuardUnit runs hoctl guard on the NFS hosts, under the name an
	// operator gives it (docs/failover.md#self-fencing) and status checks.
	NFSGuardUnit = "hoctl-guard-data-services.service"
)

// prepareNFS installs nfs-server.service on the NFS primary and standbys:
// nfs-ganesha serving the service subvolume over NFSv4 only, bound to the
// host's own address (no rpcbind, no NLM, no UDP), as the seed's cluster
// runs it. Its ExecStartPre is the seed's split-brain guard: serve only
// while Consul's owner key names this host. Started, it registers the
// data-services instance (with a TCP check on its NFS port) with the
// host's Consul agent; stopped, it deregisters it.
//
// It is installed, not enabled: the lab starts it on the primary once the
// owner key is written (StartNFS), as an operator would after bootstrap.
func (l *Lab) prepareNFS(h *Host) error {
	consul := fmt.Sprintf("http://%s:%d", h.Addr, ConsulPort)
	ganesha := fmt.Sprintf(`# hoctl lab: %s
NFS_CORE_PARAM {
    Bind_Addr = %s;
    Protocols = 4;
    Enable_NLM = false;
    Enable_RQUOTA = false;
    Enable_UDP = false;
}
# No dirent cache, no attribute cache: the seed's kernel server shows a
# file written on the server itself to the next client readdir; ganesha,
# caching, would list the directory as it was (seen with nfs-ls -R).
MDCACHE {
    Dir_Chunk = 0;
}
# NFSv4's grace period and lease are ganesha's own (90 s, 60 s): what
# an operator's server runs with. hoctl failover's start makes the grace
# short on the new primary by forgetting the clients of its earlier term
# (docs/failover.md, "the grace period").
EXPORT {
    Export_Id = 1;
    Attr_Expiration_Time = 0;
    Path = %s;
    Pseudo = %s;
    Access_Type = RW;
    Squash = No_Root_Squash;
    Protocols = 4;
    Transports = TCP;
    SecType = sys;
    FSAL { Name = VFS; }
}
LOG { Default_Log_Level = WARN; }
`, h.Name, h.Addr, NFSSubvol, NFSExport)
	check := fmt.Sprintf(`#!/bin/sh
# nfs-server's start check (the seed's split-brain guard): serve only
# while Consul's owner key names this host.
me=$(hostname)
owner=$(curl -sf --max-time 5 '%s/v1/kv/%s?raw') || {
  echo "nfs-server: owner check: cannot read %s from Consul: refusing to serve" >&2; exit 1; }
if [ "$owner" != "$me" ]; then
  echo "nfs-server: owner check: %s is '$owner', not $me: refusing to serve" >&2
  exit 1
fi
`, consul, NFSOwnerKey, NFSOwnerKey, NFSOwnerKey)
	register := fmt.Sprintf(`{"ID": "%s", "Name": "%s", "Address": "%s", "Port": 2049,
 "Check": {"TCP": "%s:2049", "Interval": "1s", "Timeout": "1s"}}`, NFSService, NFSService, h.Addr, h.Addr)
	// ganesha cannot list btrfs subvolumes in the container ("may have
	// unsupported subvols") and then cannot resolve one to export: a bind
	// mount of the subvolume onto itself makes it a filesystem of its own.
	var guarded []string
	if l.Hoctl != "" {
		// Tied to the guard as docs/failover.md's NixOS snippet ties it:
		// started only while the guard's lease holds, whoever starts it.
		// After the owner check, which refuses at once when the key
		// names another host; this one waits for a guard just started.
		guarded = []string{fmt.Sprintf("ExecStartPre=%s guard --key %s --unit nfs-server.service --check-lease", guardBin, NFSOwnerKey)}
	}
	service := append(append([]string{"Type=simple", "ExecStartPre=/usr/local/libexec/hoctl-lab/nfs-owner-check"}, guarded...),
		fmt.Sprintf("ExecStartPre=/bin/sh -c 'mountpoint -q %s || mount --bind %s %s'", NFSSubvol, NFSSubvol, NFSSubvol),
		"ExecStart=/usr/bin/ganesha.nfsd -F -L STDOUT -f /etc/ganesha/ganesha.conf -p /run/ganesha.pid",
		fmt.Sprintf("ExecStartPost=/usr/bin/curl -sf --max-time 5 -X PUT --data-binary @/etc/hoctl-lab/%s.json %s/v1/agent/service/register", NFSService, consul),
		fmt.Sprintf("ExecStopPost=-/usr/bin/curl -sf --max-time 5 -X PUT %s/v1/agent/service/deregister/%s", consul, NFSService),
		fmt.Sprintf("ExecStopPost=-/bin/sh -c 'if mountpoint -q %s; then umount %s; fi'", NFSSubvol, NFSSubvol))
	if err := h.installService("nfs-server.service",
		unit("NFS server (nfs-ganesha, NFSv4) for "+NFSService, []string{"network-online.target", "consul.service"}, service...),
		false,
		file{"etc/ganesha/ganesha.conf", ganesha, 0o644},
		file{"usr/local/libexec/hoctl-lab/nfs-owner-check", check, 0o755},
		file{"etc/hoctl-lab/" + NFSService + ".json", register, 0o644}); err != nil {
		return err
	}
	if l.Hoctl == "" {
		return nil
	}
	// The self-fence, as docs/failover.md's NixOS snippet writes it:
	// enabled, so it runs from boot on, before the owner key exists (it
	// only ever stops a running nfs-server). Restarted however often it
	// dies (no start limit), and killed by systemd's watchdog when its
	// loop stops turning (wedged, or SIGSTOPped).
	return h.installService(NFSGuardUnit,
		withUnit(unit("hoctl guard: stop nfs-server.service when Consul's owner key names another host", []string{"consul.service"},
			"Type=notify",
			fmt.Sprintf("ExecStart=%s guard --consul %s --key %s --unit nfs-server.service", guardBin, consul, NFSOwnerKey),
			"Restart=always",
			"RestartSec=1s",
			fmt.Sprintf("WatchdogSec=%s", GuardWatchdog),
			"WatchdogSignal=SIGKILL"),
			"StartLimitIntervalSec=0"),
		true)
}

// GuardWatchdog is the guard unit's WatchdogSec: a guard whose loop
// has not turned for this long is killed (and restarted 1 s later).
const GuardWatchdog = "5s"

// guardBin is where a machine sees Config.Hoctl.
const guardBin = "/usr/local/bin/hoctl"
