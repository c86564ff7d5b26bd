package lab

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
)

// The GlusterFS stand-in. The seed's cattle nodes mount a GlusterFS
// volume at /data/compute and run glusterd; the phase-3 runbooks
// (docs/runbooks) move data off it and retire it. The lab has no
// GlusterFS, so a test that runs those runbooks gives the hosts the
// smallest thing that behaves alike for them, and says so:
//
//   - /data/compute is a tmpfs named in /etc/fstab (so `mount
//     /data/compute`, the runbook's undo, works as with the real entry):
//     a mount point that mountpoint(1), lsof +f and umount see as one. Its
//     data does not survive an unmount, which the runbooks never rely on.
//   - glusterd.service is a unit that does nothing but stay active while
//     enabled, so `systemctl disable --now` and `is-active` are systemd's.
//   - The tools the runbooks run that the lab's rootfs lacks: this
//     machine's lsof and rsync (with rsync's libpopt), copied in, as the
//     NFS client's libnfs tools are (nfsclient.go).

const glusterFSTag = "# hoctl-lab: GlusterFS stand-in (internal/lab/glusterfs.go)"

// standInTools are copied from this machine into /usr/local/lib/hoctl-lab
// (the same Debian release as the rootfs); each gets a wrapper in
// /usr/local/bin that finds its libraries there.
var standInTools = []string{"/usr/bin/lsof", "/usr/bin/rsync"}

// standInLibs are what those tools need that the rootfs does not have.
var standInLibs = []string{"libpopt.so.0"}

// StandInGlusterFS gives each host the GlusterFS stand-in above, mounted
// and with glusterd active. remove undoes all of it (unmounting
// /data/compute if still mounted); call it also when the test fails.
func (l *Lab) StandInGlusterFS(ctx context.Context, hosts ...string) (remove func(context.Context) error, err error) {
	var done []string
	remove = func(ctx context.Context) error {
		var errs []error
		for _, h := range done {
			script := `mountpoint -q /data/compute && umount /data/compute
sed -i '/hoctl-lab: GlusterFS stand-in/,+1d' /etc/fstab
systemctl disable --now glusterd.service 2>/dev/null
rm -f /etc/systemd/system/glusterd.service /usr/local/bin/lsof /usr/local/bin/rsync \
  /usr/local/lib/hoctl-lab/lsof /usr/local/lib/hoctl-lab/rsync /usr/local/lib/hoctl-lab/libpopt.so.0
systemctl daemon-reload
rmdir /data/compute 2>/dev/null
! grep -q 'GlusterFS stand-in' /etc/fstab && ! mountpoint -q /data/compute
`
			if out, err := l.machineSh(ctx, h, script, nil); err != nil {
				errs = append(errs, fmt.Errorf("%s: removing the GlusterFS stand-in: %w: %s", h, err, out))
			}
		}
		return errors.Join(errs...)
	}
	files := map[string][]byte{}
	for _, p := range standInTools {
		if files["/usr/local/lib/hoctl-lab/"+p[strings.LastIndexByte(p, '/')+1:]], err = os.ReadFile(p); err != nil {
			return remove, fmt.Errorf("the GlusterFS stand-in needs this machine's %s: %w", p, err)
		}
	}
	for _, name := range standInLibs {
		p, err := findLib(name)
		if err != nil {
			return remove, fmt.Errorf("the GlusterFS stand-in needs %s (rsync's): %w", name, err)
		}
		if files["/usr/local/lib/hoctl-lab/"+name], err = os.ReadFile(p); err != nil {
			return remove, err
		}
	}
	for _, h := range hosts {
		if l.Host(h) == nil {
			return remove, fmt.Errorf("no lab host %q", h)
		}
		done = append(done, h)
		for dst, b := range files {
			if out, err := l.machineSh(ctx, h, "mkdir -p /usr/local/lib/hoctl-lab && cat > "+dst+" && chmod 755 "+dst, b); err != nil {
				return remove, fmt.Errorf("%s: copying %s: %w: %s", h, dst, err, out)
			}
		}
		script := `set -e
for t in lsof rsync; do
  printf '#!/bin/sh\nLD_LIBRARY_PATH=/usr/local/lib/hoctl-lab exec /usr/local/lib/hoctl-lab/%s "$@"\n' "$t" > /usr/local/bin/$t
  chmod 755 /usr/local/bin/$t
done
printf '%s\nglusterfs-standin /data/compute tmpfs size=64m,mode=0755 0 0\n' '` + glusterFSTag + `' >> /etc/fstab
mkdir -p /data/compute
mount /data/compute
cat > /etc/systemd/system/glusterd.service <<'UNIT'
[Unit]
Description=GlusterFS management daemon (lab stand-in: does nothing, see docs/lab.md)

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/bin/true

[Install]
WantedBy=multi-user.target
UNIT
systemctl daemon-reload
systemctl enable --now glusterd.service 2>/dev/null
mountpoint -q /data/compute && systemctl is-active --quiet glusterd.service
`
		if out, err := l.machineSh(ctx, h, script, nil); err != nil {
			return remove, fmt.Errorf("%s: the GlusterFS stand-in: %w: %s", h, err, out)
		}
	}
	return remove, nil
}

// machineSh runs a shell script on a host (in its namespaces), with stdin.
func (l *Lab) machineSh(ctx context.Context, host, script string, stdin []byte) (string, error) {
	cmd, err := l.Command(host, "sh", "-c", script)
	if err != nil {
		return "", err
	}
	if stdin != nil {
		cmd.Stdin = strings.NewReader(string(stdin))
	}
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		return "", err
	}
	waited := make(chan error, 1)
	go func() { waited <- cmd.Wait() }()
	select {
	case err := <-waited:
		return out.String(), err
	case <-ctx.Done():
		_ = cmd.Process.Kill()
		if err := <-waited; err != nil {
			return out.String(), fmt.Errorf("%w (killed: %w)", ctx.Err(), err)
		}
		return out.String(), ctx.Err()
	}
}
