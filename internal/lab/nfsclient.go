package lab

import (
	"fmt"
	"os"
	"path/filepath"
)

// The NFS client mount: the one simulated part of the real cluster. This
// kernel has no NFS client, so a machine cannot mount the share; but the
// seed's clients (its compute hosts) mount
// data-services.service.consul:/data/services, and what that mount gives
// them can be had honestly from the real parts:
//
//   - data-services.mount is a real systemd mount unit, in
//     /etc/systemd/system as on NixOS, of the seed's source
//     data-services.service.consul:/data/services: `systemctl restart`
//     of it, a failure, an assertion refusing it are systemd's own.
//   - Its type is nfslab, so mount(8) runs /sbin/mount.nfslab, as it runs
//     mount.nfs for a real NFS mount. That helper resolves the server as
//     Consul DNS would (an instance of the service passing its health
//     checks, asked of the host's own agent), copies the export from that
//     server over real NFSv4 with libnfs (nfs-ls, nfs-cp: the lab
//     machine's libnfs-utils, copied in), and binds the copy read-only at
//     the mount point. It fails, and the mount with it, when no instance
//     passes or the server does not serve.
//
// What is simulated: the copy is taken at mount time, so a client sees
// the server's later writes only after a remount (a kernel mount is live),
// and a client whose server went away keeps reading its copy where a
// kernel mount would get ESTALE or hang.

// nfsClientTools are copied from the lab machine into each client
// (Debian bookworm's libnfs-utils, the rootfs's own release).
var nfsClientTools = map[string]string{
	"/usr/bin/nfs-ls": "usr/local/lib/hoctl-lab/nfs-ls",
	"/usr/bin/nfs-cp": "usr/local/lib/hoctl-lab/nfs-cp",
}

// libnfs is the library the tools need, found by ldconfig.
const libnfs = "libnfs.so.13"

func runsNFSClient(h *Host) bool { return hasRole(h, "compute") }

// prepareNFSClient installs the client mount of NFSService on a compute
// host. Like nfs-server it is installed, not enabled: the lab mounts it
// once the share is served (startServices), as it would fail at boot.
func (l *Lab) prepareNFSClient(h *Host) error {
	for src, dst := range nfsClientTools {
		b, err := os.ReadFile(src)
		if err != nil {
			return fmt.Errorf("the lab's NFS client needs libnfs-utils: %w", err)
		}
		if err := h.upper(dst, string(b), 0o755); err != nil {
			return err
		}
	}
	lib, err := findLib(libnfs)
	if err != nil {
		return err
	}
	b, err := os.ReadFile(lib)
	if err != nil {
		return err
	}
	if err := h.upper("usr/local/lib/hoctl-lab/"+libnfs, string(b), 0o644); err != nil {
		return err
	}
	consul := fmt.Sprintf("http://%s:%d", h.Addr, ConsulPort)
	helper := fmt.Sprintf(`#!/bin/sh
# hoctl lab: mount.nfslab SERVICE.service.consul:/EXPORT DIR [-o ...]
# (see internal/lab/nfsclient.go). Resolve the name as Consul DNS would (a
# passing instance), copy the export from that server over NFSv4, bind the
# copy read-only at DIR.
set -eu
export LD_LIBRARY_PATH=/usr/local/lib/hoctl-lab PATH=/usr/local/lib/hoctl-lab:$PATH
src=$1 dir=$2
service=${src%%%%.service.consul:*} export=${src#*:}
# mount.nfs retries a foreground mount for 2 minutes (retry=2), also when
# the name does not resolve yet: a server just started may not pass its
# Consul check for a second. 10 s here.
for i in $(seq 20); do
  addr=$(curl -sf --max-time 5 "%[1]s/v1/health/service/$service?passing" | grep -o '"Address":"[^"]*"' | head -1 | cut -d'"' -f4) || true
  [ -z "$addr" ] || break
  echo "mount.nfslab: try $i: no passing instance of $service yet" >&2; sleep 0.5
done
if [ -z "$addr" ]; then
  echo "mount.nfslab: Failed to resolve server $service.service.consul: no passing instance" >&2; exit 32
fi
url="nfs://$addr$export"
# Copies of earlier mounts: unmounted by now (systemd unmounts before it
# mounts again).
base=/run/hoctl-lab/nfs-client
rm -rf "$base" && mkdir -p "$base"
copy=$(mktemp -d "$base/copy.XXXXXX")
# A kernel mount retries a failed request (a hard mount, the default);
# libnfs's tools give up at once, and a read sometimes fails while the
# server has just started (seen: nfs-cp "Failed to read from source
# file" on the first remount after a failover): a few tries each.
# Up to 30 s, each failure said in the mount unit's journal: a client in
# the real-cluster tests once found no server for 2.5 s right after a
# failover's start, while the two others read it at once; and a server
# in its grace period refuses every open (NFS4ERR_GRACE) until it ends,
# which a kernel client retries for as long as it lasts.
`+nfsRetryShell+`retry sh -c 'nfs-ls -R "$1" > "$2"' - "$url?version=4" "$base/ls" || {
  echo "mount.nfslab: $addr:$export: server not serving" >&2; exit 32; }
# nfs-ls -R prints ls -l lines; the name is the last field (the lab's
# files have no spaces in their names).
while read -r mode _ _ _ _ name; do
  case "$mode" in
  d*) mkdir -p "$copy/$name" ;;
  -*) mkdir -p "$(dirname "$copy/$name")" && retry fetch "$url/$name?version=4" "$copy/$name" >/dev/null || {
        echo "mount.nfslab: $addr:$export/$name: read failed" >&2; exit 32; } ;;
  esac
done < "$base/ls"
echo "$addr" > "$base/server"
mount --bind "$copy" "$dir"
mount -o remount,bind,ro "$dir"
`, consul)
	mount := fmt.Sprintf(`[Unit]
Description=%[1]s from %[2]s.service.consul (lab: read over NFSv4 at mount time, see docs/lab.md)
After=consul.service

[Mount]
What=%[2]s.service.consul:%[1]s
Where=%[1]s
Type=nfslab
`, NFSExport, NFSService)
	for _, f := range []struct {
		path, content string
		mode          os.FileMode
	}{
		{"usr/sbin/mount.nfslab", helper, 0o755},
		{"etc/systemd/system/" + NFSMount, mount, 0o644},
	} {
		if err := h.upper(f.path, f.content, f.mode); err != nil {
			return err
		}
	}
	return nil
}

// nfsRetryShell is the mount helper's retry of a libnfs read (a kernel
// mount retries a failed request; libnfs's tools give up at once) and
// its copy of one file. nfs-cp refuses a destination that exists
// ("Failed to open"), and a try that failed mid-read leaves one: each
// try starts without it.
const nfsRetryShell = `retry() { for i in $(seq 60); do "$@" && return 0; echo "mount.nfslab: try $i failed: $*" >&2; sleep 0.5; done; return 1; }
fetch() { rm -f "$2" && nfs-cp "$1" "$2"; }
`

// findLib is the path of a shared library on this machine.
func findLib(name string) (string, error) {
	for _, d := range []string{"/usr/lib/x86_64-linux-gnu", "/lib/x86_64-linux-gnu", "/usr/lib/aarch64-linux-gnu", "/usr/lib64", "/usr/lib"} {
		if p, err := filepath.EvalSymlinks(filepath.Join(d, name)); err == nil {
			return p, nil
		}
	}
	return "", fmt.Errorf("the lab's NFS client needs %s (libnfs-utils)", name)
}
