package lab

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// The NFS service of the lab's inventory (writeInventory), as the shims
// know it.
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

// systemctlShim stands in for systemd on a lab host (NFS labs only). Unit
// state lives in the host's state dir. nfs-server refuses to start
// unless the Consul owner key names this host (the real unit's
// ExecStartPre), exports the service and registers it in Consul's catalog
// with a passing check; stopping undoes both. A mount unit for the share
// "mounts" the export of whichever host Consul says serves it: a symlink
// into that host's namespace through the lab's view of the host /proc,
// because the kernel refuses bind mounts across mount namespaces. When that
// host's server goes away the link dangles, which is the lab's stale file
// handle.
const systemctlShim = `#!/bin/bash
# hoctl lab shim: systemctl (see internal/lab/shims.go)
state=@STATE@; consul=http://@CONSUL@; me=$(hostname)
mkdir -p "$state"
quiet=; args=()
for a in "$@"; do case "$a" in -q|--quiet) quiet=1;; --runtime|--no-block|--no-pager|--plain|--no-legend) ;; *) args+=("$a");; esac; done
verb=${args[0]}
unit=${args[1]%.service}
register() {
  curl -sf -X PUT "$consul/v1/catalog/register" -d "{\"Node\":\"$me\",\"Address\":\"@ADDR@\",\"Service\":{\"ID\":\"@SERVICE@\",\"Service\":\"@SERVICE@\",\"Address\":\"@ADDR@\",\"Port\":2049},\"Check\":{\"CheckID\":\"service:@SERVICE@\",\"Name\":\"nfs tcp 2049\",\"Status\":\"passing\",\"ServiceID\":\"@SERVICE@\"}}" >/dev/null
}
deregister() {
  curl -sf -X PUT "$consul/v1/catalog/deregister" -d "{\"Node\":\"$me\",\"ServiceID\":\"@SERVICE@\"}" >/dev/null
}
stop_unit() {
  if [ "$unit" = nfs-server ] && [ "$(cat "$state/$unit" 2>/dev/null)" = active ]; then rm -f "$state/exports"; deregister; fi
  echo inactive > "$state/$unit"
}
case "$verb" in
start|restart)
  # restart is stop, then start: a unit whose start check fails ends
  # inactive, as under systemd.
  if [ "$verb" = restart ] && [ "$unit" = nfs-server ]; then stop_unit; fi
  if [ -e "$state/$unit.masked" ]; then echo "Failed to $verb $unit.service: Unit $unit.service is masked." >&2; exit 1; fi
  # A drop-in asserting its own absence (hoctl's fence) refuses starts.
  for d in /run/systemd/system/$unit.service.d/*.conf; do
    if [ -e "$d" ] && grep -qx "AssertPathExists=!$d" "$d"; then echo "Assertion failed on job for $unit.service." >&2; exit 1; fi
  done
  case "$unit" in
  nfs-server)
    owner=$(curl -sf "$consul/v1/kv/@OWNERKEY@?raw")
    if [ "$owner" != "$me" ]; then
      echo "Job for nfs-server.service failed because the control process exited with error code." >&2
      echo "nfs-server: owner check: @OWNERKEY@ is '$owner', not $me: refusing to serve" >&2
      exit 1
    fi
    [ -d @SUBVOL@ ] || { echo "nfs-server: @SUBVOL@ missing" >&2; exit 1; }
    echo "@EXPORT@ *(rw,sync,no_subtree_check,fsid=1)" > "$state/exports"
    register || { echo "nfs-server: consul registration failed" >&2; exit 1; }
    ;;
  *.mount)
    node=$(curl -sf "$consul/v1/health/service/@SERVICE@?passing" | grep -o '"Node":"[^"]*"' | head -1 | cut -d'"' -f4)
    [ -n "$node" ] || { echo "mount.nfs: Failed to resolve server @SERVICE@.service.consul: Name or service not known" >&2; exit 32; }
    pid=$(cat @LABDIR@/hosts/$node/sshd.pid 2>/dev/null)
    [ -n "$pid" ] || { echo "mount.nfs: no route to $node" >&2; exit 32; }
    rm -rf @EXPORT@; ln -sfn @LABDIR@/hostproc/$pid/root@SUBVOL@ @EXPORT@
    echo "$node" > "$state/$unit.source"
    ;;
  esac
  echo active > "$state/$unit" ;;
stop) stop_unit ;;
is-active)
  # This lab has no systemd to run hoctl guard in: its unit reads as
  # active, as on the cluster the lab stands for, unless a test says
  # otherwise. The real guard runs, and is tested, on the machines.
  s=$(cat "$state/$unit" 2>/dev/null || { [ "$unit" = @GUARD@ ] && echo active; } || echo inactive)
  [ -n "$quiet" ] || echo "$s"
  [ "$s" = active ] ;;
mask) touch "$state/$unit.masked"; echo "Created symlink /run/systemd/system/$unit.service → /dev/null." ;;
unmask) rm -f "$state/$unit.masked" ;;
daemon-reload) ;;
is-system-running)
  if grep -lx failed "$state"/* >/dev/null 2>&1; then echo degraded; exit 1; fi
  echo running ;;
--failed)
  for f in "$state"/*; do [ "$(cat "$f" 2>/dev/null)" = failed ] && echo "$(basename "$f") loaded failed failed"; done; exit 0 ;;
*) echo "lab systemctl: $verb not simulated" >&2; exit 1 ;;
esac
`

// exportfsShim lists (-v) and withdraws (-u, -ua) the exports the
// nfs-server shim made.
const exportfsShim = `#!/bin/bash
# hoctl lab shim: exportfs (see internal/lab/shims.go)
state=@STATE@
case "$1" in
-v|"") cat "$state/exports" 2>/dev/null; exit 0 ;;
-ua|-u) rm -f "$state/exports" ;;
-ra|-r) exit 0 ;;
*) echo "lab exportfs: $* not simulated" >&2; exit 1 ;;
esac
`

// NewGeneration is a shell script, run on a lab host, that adds a NixOS
// system generation (a store path whose bin/switch-to-configuration
// points /run/current-system at it), makes it the profile's current one
// and switches to it: what a deploy does to a NixOS host.
func NewGeneration(host, hash string) string {
	return fmt.Sprintf(`set -e
mkdir -p /nix/var/nix/profiles
n=$(ls -d /nix/var/nix/profiles/system-*-link 2>/dev/null | sed 's/.*system-\([0-9]*\)-link/\1/' | sort -n | tail -1)
n=$(( ${n:-0} + 1 ))
g=/nix/store/%s-nixos-system-%s-$n
mkdir -p $g/bin
printf '#!/bin/sh\nln -sfn %%s /run/current-system\n' $g > $g/bin/switch-to-configuration
chmod +x $g/bin/switch-to-configuration
ln -sfn $g /nix/var/nix/profiles/system-$n-link
ln -sfn system-$n-link /nix/var/nix/profiles/system
$g/bin/switch-to-configuration switch`, hash, host)
}

// nixEnvShim does nix-env --rollback -p PROFILE: the profile goes back to
// the generation before its current one.
const nixEnvShim = `#!/bin/bash
# hoctl lab shim: nix-env --rollback (see internal/lab/shims.go)
[ "$1" = --rollback ] && [ "$2" = -p ] || { echo "lab nix-env: $* not simulated" >&2; exit 1; }
p=$3
cur=$(readlink "$p" | sed 's/.*-\([0-9]*\)-link/\1/')
prev=$(ls -d "$p"-*-link | sed 's/.*-\([0-9]*\)-link/\1/' | sort -n | awk -v c="$cur" '$1 < c' | tail -1)
[ -n "$prev" ] || { echo "error: no generation older than the current ($cur)" >&2; exit 1; }
ln -sfn "$(basename "$p")-$prev-link" "$p"
echo "switching profile from version $cur to $prev"
`

// writeShims installs a host's shims into its bin dir, first on its PATH.
func (l *Lab) writeShims(h *Host) error {
	r := strings.NewReplacer("@STATE@", filepath.Join(h.Dir, "state"), "@CONSUL@", l.ConsulAddr, "@ADDR@", h.Addr,
		"@SERVICE@", NFSService, "@OWNERKEY@", NFSOwnerKey, "@EXPORT@", NFSExport, "@SUBVOL@", NFSSubvol, "@LABDIR@", l.Dir,
		"@GUARD@", strings.TrimSuffix(NFSGuardUnit, ".service"))
	for name, body := range map[string]string{"systemctl": systemctlShim, "exportfs": exportfsShim, "nix-env": nixEnvShim} {
		if err := os.WriteFile(filepath.Join(h.Dir, "bin", name), []byte(r.Replace(body)), 0o755); err != nil {
			return err
		}
	}
	return nil
}

// mountHostProc gives the hosts a view of this machine's processes (the
// clients' shim follows the serving host's /proc/PID/root); unmounted by
// Teardown.
func mountHostProc(dir string) error {
	p := filepath.Join(dir, "hostproc")
	if err := os.MkdirAll(p, 0o755); err != nil {
		return err
	}
	if out, err := exec.Command("mount", "-t", "proc", "proc", p).CombinedOutput(); err != nil {
		return fmt.Errorf("mount proc on %s: %w: %s", p, err, out)
	}
	return nil
}

func unmountHostProc(dir string) error {
	p := filepath.Join(dir, "hostproc")
	for i := 0; exec.Command("mountpoint", "-q", p).Run() == nil; i++ {
		if i == 3 {
			return fmt.Errorf("%s is still mounted", p)
		}
		if exec.Command("umount", p).Run() != nil {
			_ = exec.Command("umount", "-l", p).Run()
		}
	}
	return nil
}
