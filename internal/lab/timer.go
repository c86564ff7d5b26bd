package lab

import (
	"context"
	"encoding/base64"
	"fmt"
	"os"
	"path"
	"strings"
)

// The seed's replication timer (docs/replicate.md, "Unattended, on the
// source host"), installed on a running machine as the units NixOS
// generates from that snippet: systemd.services.<name> and
// systemd.timers.<name> become <name>.service and <name>.timer in
// /etc/systemd/system, keys in name order as NixOS writes them, no
// [Install] section (wantedBy is a timers.target.wants link). The Nix
// store paths become this Debian rootfs' own: hoctl is the one bound in
// at /usr/local/bin/hoctl, `path` the standard PATH holding btrfs-progs,
// coreutils, findutils, zstd and openssh; NixOS's LOCALE_ARCHIVE and
// TZDIR, which only point into the store, are left out.

// ReplicationTimer is one replication's timer on its source host.
type ReplicationTimer struct {
	// Replication is the inventory's replication the unit runs (--name).
	Replication string
	// Description is the service's, e.g. "hoctl replicate services
	// (zippy -> c1)".
	Description string
	// OnCalendar, RandomizedDelaySec and AccuracySec are the timer's
	// (AccuracySec empty: systemd's default of a minute, as the snippet).
	OnCalendar, RandomizedDelaySec, AccuracySec string
	// Inventory is /etc/hoctl/inventory.yaml's text.
	Inventory string
}

// Unit is the timer's unit name without a suffix.
func (t ReplicationTimer) Unit() string { return "hoctl-replicate-" + t.Replication }

// ReplicationTimerStateDir is the unit's XDG_STATE_HOME (StateDirectory
// hoctl): `hoctl history` there lists its runs.
const ReplicationTimerStateDir = "/var/lib/hoctl"

// ReplicationTimerInventory is where the unit's inventory is.
const ReplicationTimerInventory = "/etc/hoctl/inventory.yaml"

// ServiceFile is the generated service unit.
func (t ReplicationTimer) ServiceFile() string {
	return fmt.Sprintf(`[Unit]
After=network-online.target
Description=%s
Wants=network-online.target

[Service]
Environment="PATH=/usr/local/bin:/usr/local/sbin:/usr/bin:/usr/sbin:/bin:/sbin"
Environment="XDG_STATE_HOME=%s"
ExecStart=/usr/local/bin/hoctl -i %s --yes replicate --name %s
StateDirectory=hoctl
Type=oneshot
`, t.Description, ReplicationTimerStateDir, ReplicationTimerInventory, t.Replication)
}

// TimerFile is the generated timer unit.
func (t ReplicationTimer) TimerFile() string {
	var b strings.Builder
	b.WriteString("[Unit]\n\n[Timer]\n")
	if t.AccuracySec != "" {
		fmt.Fprintf(&b, "AccuracySec=%s\n", t.AccuracySec)
	}
	fmt.Fprintf(&b, "OnCalendar=%s\nPersistent=true\n", t.OnCalendar)
	if t.RandomizedDelaySec != "" {
		fmt.Fprintf(&b, "RandomizedDelaySec=%s\n", t.RandomizedDelaySec)
	}
	return b.String()
}

// InstallReplicationTimer writes the timer's units, its inventory, and
// root's SSH identity (the lab's client key, authorised on every host)
// and known_hosts on the running machine host, reloads systemd and starts
// the timer. The returned remove stops and deletes all of it, the unit's
// state directory and its failed state included.
func (l *Lab) InstallReplicationTimer(ctx context.Context, host string, t ReplicationTimer) (remove func(context.Context) error, err error) {
	key, err := os.ReadFile(l.ClientKey)
	if err != nil {
		return nil, err
	}
	known, err := os.ReadFile(l.KnownHosts)
	if err != nil {
		return nil, err
	}
	unit := t.Unit()
	files := []struct {
		path, content, mode string
	}{
		{"/etc/systemd/system/" + unit + ".service", t.ServiceFile(), "644"},
		{"/etc/systemd/system/" + unit + ".timer", t.TimerFile(), "644"},
		{ReplicationTimerInventory, t.Inventory, "644"},
		{"/root/.ssh/id_ed25519", string(key), "600"},
		{"/root/.ssh/known_hosts", string(known), "644"},
	}
	var script strings.Builder
	script.WriteString("set -e\nmkdir -p /root/.ssh /etc/hoctl /etc/systemd/system/timers.target.wants\nchmod 700 /root/.ssh\n")
	for _, f := range files {
		fmt.Fprintf(&script, "echo %s | base64 -d > %s\nchmod %s %s\n", base64.StdEncoding.EncodeToString([]byte(f.content)), f.path, f.mode, f.path)
	}
	fmt.Fprintf(&script, "ln -sfn ../%s.timer /etc/systemd/system/timers.target.wants/%s.timer\n", unit, unit)
	fmt.Fprintf(&script, "systemctl daemon-reload\nsystemctl start %s.timer\n", unit)
	remove = func(ctx context.Context) error {
		var rm []string
		for _, f := range files {
			rm = append(rm, f.path)
		}
		out, err := l.RunOn(ctx, host, fmt.Sprintf(`systemctl stop %[1]s.timer %[1]s.service
rm -f %[2]s /etc/systemd/system/timers.target.wants/%[1]s.timer
rmdir /etc/hoctl 2>/dev/null
systemctl daemon-reload && systemctl reset-failed && rm -rf %[3]s`, unit, strings.Join(rm, " "), path.Clean(ReplicationTimerStateDir)))
		if err != nil {
			return fmt.Errorf("%s: removing %s: %w: %s", host, unit, err, out)
		}
		return nil
	}
	if out, err := l.RunOn(ctx, host, script.String()); err != nil {
		_ = remove(ctx)
		return nil, fmt.Errorf("%s: installing %s: %w: %s", host, unit, err, out)
	}
	return remove, nil
}
