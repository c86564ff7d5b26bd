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
//     /etc/systemd/system as on NixOS: `systemctl restart` of it, a
//     failure, an assertion refusing it are systemd's own.
//   - Before it mounts, hoctl-lab-nfs-client.service (a oneshot it
//     Requires) resolves the share's server as Consul DNS would (the
//     instance of data-services passing its health checks, asked of the
//     host's own agent) and copies the export from that server over real
//     NFSv4 with libnfs (nfs-ls, nfs-cp, the lab machine's libnfs-utils
//     copied in). It fails, and the mount with it, when no instance
//     passes or the server does not serve.
//   - The mount binds that copy read-only at /data/services.
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
	copyDir := "/run/hoctl-lab/nfs-client" + NFSExport
	fetch := fmt.Sprintf(`#!/bin/sh
# hoctl lab: the NFS client mount's data (see internal/lab/nfsclient.go).
# Resolve %[1]s.service.consul as Consul DNS would (a passing instance),
# then copy %[2]s from that server over NFSv4 into %[3]s.
set -eu
export LD_LIBRARY_PATH=/usr/local/lib/hoctl-lab PATH=/usr/local/lib/hoctl-lab:$PATH
addr=$(curl -sf --max-time 5 '%[4]s/v1/health/service/%[1]s?passing' | grep -o '"Address":"[^"]*"' | head -1 | cut -d'"' -f4) || true
if [ -z "$addr" ]; then
  echo "mount.nfs: Failed to resolve server %[1]s.service.consul: no passing instance" >&2; exit 32
fi
url="nfs://$addr%[2]s"
new=%[3]s.new
rm -rf "$new" && mkdir -p "$new"
# nfs-ls -R prints ls -l lines; the name is the last field (the lab's
# files have no spaces in their names).
nfs-ls -R "$url?version=4" > /run/hoctl-lab/nfs-client/ls || {
  echo "mount.nfs: $addr:%[2]s: server not serving" >&2; exit 32; }
while read -r mode _ _ _ _ name; do
  case "$mode" in
  d*) mkdir -p "$new/$name" ;;
  -*) mkdir -p "$(dirname "$new/$name")" && nfs-cp "$url/$name?version=4" "$new/$name" >/dev/null ;;
  esac
done < /run/hoctl-lab/nfs-client/ls
echo "$addr" > "$new/../server"
rm -rf %[3]s && mv "$new" %[3]s
`, NFSService, NFSExport, copyDir, consul)
	service := fmt.Sprintf(`[Unit]
Description=lab NFS client: %s over NFSv4 for %s (simulated mount, see docs/lab.md)
After=consul.service

[Service]
Type=oneshot
ExecStart=/usr/local/libexec/hoctl-lab/nfs-client-fetch
`, NFSService, NFSMount)
	mount := fmt.Sprintf(`[Unit]
Description=%s from %s.service.consul (lab: read over NFSv4 at mount time, see docs/lab.md)
Requires=hoctl-lab-nfs-client.service
After=hoctl-lab-nfs-client.service

[Mount]
What=%s
Where=%s
Type=none
Options=bind,ro
`, NFSExport, NFSService, copyDir, NFSExport)
	for _, f := range []struct {
		path, content string
		mode          os.FileMode
	}{
		{"usr/local/libexec/hoctl-lab/nfs-client-fetch", fetch, 0o755},
		{"etc/systemd/system/hoctl-lab-nfs-client.service", service, 0o644},
		{"etc/systemd/system/" + NFSMount, mount, 0o644},
	} {
		if err := h.upper(f.path, f.content, f.mode); err != nil {
			return err
		}
	}
	return nil
}

// findLib is the path of a shared library on this machine.
func findLib(name string) (string, error) {
	for _, d := range []string{"/usr/lib/x86_64-linux-gnu", "/lib/x86_64-linux-gnu", "/usr/lib/aarch64-linux-gnu", "/usr/lib64", "/usr/lib"} {
		if p, err := filepath.EvalSymlinks(filepath.Join(d, name)); err == nil {
			return p, nil
		}
	}
	return "", fmt.Errorf("the lab's NFS client needs %s (libnfs-utils)", name)
}
