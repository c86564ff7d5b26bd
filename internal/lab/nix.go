package lab

// Real Nix system generations for the machines, and the lab's real
// deploy.command.
//
// A machine's "system" is a NixOS-like closure: a store path with its own
// bin/switch-to-configuration, built by a trivial builtins.derivation
// (builder /bin/sh) in THIS machine's Nix store, as deploy-rs and
// `nixos-rebuild --target-host` build on the operator's workstation, then
// `nix copy`'d to the host over SSH (the lab's key and known_hosts, the
// host's loopback address), set as /nix/var/nix/profiles/system and
// switched to. Its switch-to-configuration does what NixOS's does, in
// small: points /run/current-system at the generation and (re)starts the
// unit the generation defines, lab-app.service, whose file lives in the
// generation (/etc/systemd/system/lab-app.service links into it, as
// NixOS's units link into /etc/static), and starts sshd if it is stopped
// (NixOS's switch starts the active targets again). lab-activate-system.service
// activates the profile's generation at boot (NixOS's stage 2 does), so a
// host that was killed and restarted runs its system again.
//
// Every machine gets its first generation when the lab starts; the lab's
// inventory names NixDeployCommand as deploy.command, so `hoctl deploy`
// and `hoctl deploy --rollback` work on real generations.
//
// What a host's next deploy does is set with SetNixDeploy. Usage, in a
// test:
//
//	restore, err := l.SaveNixSystems(ctx, "c2")   // t.Cleanup(restore)
//	l.SetNixDeploy("c2", lab.NixDeploy{Variant: lab.NixDegraded})
//	hoctl --yes deploy c2   // with deploy.command = l.NixDeployCommand()
//	// c2 now runs a new generation whose lab-app.service failed:
//	// systemctl is-system-running says degraded.
//
// Everything built here (derivations and outputs) is rooted in
// <lab dir>/nix/roots and deleted from this machine's store at Teardown
// (removeNixBuilds); a host's own /nix is
// in its overlay, which goes with the lab.

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"
)

// NixVariant is what a host's next deploy builds and does.
type NixVariant string

const (
	// NixNew builds a new generation and switches to it: the ordinary
	// deploy.
	NixNew NixVariant = "new"
	// NixDegraded builds a new generation whose lab-app.service starts
	// and then exits 1 at once, as a service with a bad configuration
	// does: the switch exits 0 (the start succeeded), the unit is failed
	// and `systemctl is-system-running` says degraded.
	NixDegraded NixVariant = "degraded"
	// NixBuildFails fails in the build (nix-build: "builder for
	// '/nix/store/…-nixos-system-HOST.drv' failed with exit code 1");
	// nothing reaches the host.
	NixBuildFails NixVariant = "build-fails"
	// NixNoChange changes nothing: the configuration is the running one,
	// which is activated again; exit 0 and the same generation.
	NixNoChange NixVariant = "no-change"
	// NixPowerOff builds, copies and sets the new generation, then kills
	// the machine (its whole cgroup, as Lab.Kill does) as a reboot into
	// it that never comes back. Lab.Restart boots it again (into the new
	// generation, which a restore then switches back).
	NixPowerOff NixVariant = "power-off"
)

// NixDeploy is what a host's next deploy does (SetNixDeploy).
type NixDeploy struct {
	Variant NixVariant
	// Activate is shell run as root at the end of the new generation's
	// switch-to-configuration (after /run/current-system points at it,
	// lab-app.service is restarted and sshd started); its failure fails
	// the switch. "systemctl stop ssh.service" is a generation that
	// leaves sshd dead: a new connection is refused (the ones open
	// stay, KillMode=process), until a switch to another generation.
	Activate string
}

// NixProfile is the system profile every machine has.
const NixProfile = "/nix/var/nix/profiles/system"

func (l *Lab) nixDir() string { return filepath.Join(l.Dir, "nix") }

// NixDeployCommand is the lab's deploy.command: run on this machine, it
// deploys the host's next generation (SetNixDeploy; NixNew unless set).
func (l *Lab) NixDeployCommand() string {
	return "sh " + filepath.Join(l.nixDir(), "deploy.sh") + " {{.Host}}"
}

// SetNixDeploy sets what host's deploys do from now on (until changed, or
// reset to NixNew by the restore of SaveNixSystems).
func (l *Lab) SetNixDeploy(host string, d NixDeploy) error {
	if l.Host(host) == nil {
		return fmt.Errorf("no lab host %q", host)
	}
	if d.Variant == "" {
		d.Variant = NixNew
	}
	if err := os.WriteFile(filepath.Join(l.nixDir(), host+".variant"), []byte(d.Variant), 0o644); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(l.nixDir(), host+".activate"), []byte(d.Activate), 0o644)
}

// nixSystem is the expression of a machine's system: NixOS's
// toplevel, in small. build.sh is read as a string, so the closure
// references nothing but itself.
const nixSystem = `# A lab machine's system generation (internal/lab/nix.go).
{ host, nonce, variant, activate }:
derivation {
  name = "nixos-system-${host}";
  system = builtins.currentSystem;
  builder = "/bin/sh";
  inherit host nonce variant activate;
  args = [ "-c" (builtins.readFile ./build.sh) ];
}
`

// nixBuild is the builder: the generation's files. Without a sandbox its
// PATH is Nix's placeholder, so it names this machine's /usr/bin.
const nixBuild = `export PATH=/usr/bin:/bin
set -e
if [ "$variant" = build-fails ]; then
  echo "error: the configuration of $host does not build (the lab's build-fails variant)" >&2
  exit 1
fi
mkdir -p "$out/bin" "$out/etc"
printf '%s\n' "$host" > "$out/host"
printf '%s\n' "$nonce" > "$out/nonce"
if [ "$variant" = degraded ]; then
  service='Type=simple
ExecStart=/bin/sh -c "echo lab-app: this generation is broken >&2; exit 1"'
  touch "$out/fails"
else
  service='Type=oneshot
RemainAfterExit=yes
ExecStart=/bin/true'
fi
cat > "$out/etc/lab-app.service" <<EOF
[Unit]
Description=The lab system's own service (generation $nonce of $host)

[Service]
$service
EOF
cat > "$out/etc/lab-activate-system.service" <<'EOF'
[Unit]
Description=Activate the system profile's generation (NixOS's stage 2 does at boot)
ConditionPathExists=/nix/var/nix/profiles/system/bin/switch-to-configuration

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/nix/var/nix/profiles/system/bin/switch-to-configuration boot

[Install]
WantedBy=multi-user.target
EOF
cat > "$out/bin/switch-to-configuration" <<'EOF'
#!/bin/sh
# switch-to-configuration of a lab system generation: point
# /run/current-system at it, link its units and (re)start them.
set -e
out=$(readlink -f "$0")
out=${out%/bin/switch-to-configuration}
case "$1" in
switch|test|boot) ;;
*) echo "usage: switch-to-configuration switch|test|boot" >&2; exit 1 ;;
esac
ln -sfn "$out" /run/current-system
for u in lab-app.service lab-activate-system.service; do
  ln -sfn "$out/etc/$u" /etc/systemd/system/$u
done
mkdir -p /etc/systemd/system/multi-user.target.wants
ln -sfn /etc/systemd/system/lab-activate-system.service /etc/systemd/system/multi-user.target.wants/lab-activate-system.service
if [ "$1" = boot ]; then
  # At boot, from a unit: the links are already loaded; do not wait on
  # another job from inside this one.
  systemctl restart --no-block lab-app.service
  exit 0
fi
systemctl daemon-reload
systemctl restart lab-app.service
# NixOS's switch starts the active targets again, which starts any unit
# they want that is stopped: sshd among them, so a generation that
# stopped it is undone by switching to one that did not.
systemctl start ssh.service
if [ -e "$out/fails" ]; then
  # Its start succeeded; its process dies right after. Wait for systemd
  # to see it, so the failure is there when the switch returns.
  i=0
  until systemctl is-failed --quiet lab-app.service || [ $i -ge 100 ]; do sleep 0.1; i=$((i+1)); done
fi
EOF
printf '%s\n' "$activate" >> "$out/bin/switch-to-configuration"
chmod +x "$out/bin/switch-to-configuration"
`

// writeNixFiles writes the system expression and the deploy command.
func (l *Lab) writeNixFiles() error {
	dir := l.nixDir()
	if err := os.MkdirAll(filepath.Join(dir, "roots"), 0o755); err != nil {
		return err
	}
	var hosts strings.Builder
	for _, h := range l.Hosts {
		fmt.Fprintf(&hosts, "%s) addr=%s cgroup=%s ;;\n", h.Name, h.Addr, filepath.Join("/sys/fs/cgroup/unified", l.hostCgroup(h)))
	}
	ssh := fmt.Sprintf("-F /dev/null -p %d -i %s -o IdentitiesOnly=yes -o UserKnownHostsFile=%s -o GlobalKnownHostsFile=/dev/null -o StrictHostKeyChecking=yes -o BatchMode=yes -o ConnectTimeout=10",
		Port, l.ClientKey, l.KnownHosts)
	script := `#!/bin/sh
# The lab's deploy.command (internal/lab/nix.go): build HOST's next system
# generation in this machine's Nix store, nix copy it to HOST, set HOST's
# system profile to it and run its switch-to-configuration switch.
set -eu
host=$1
nix=` + dir + `
case $host in
` + hosts.String() + `*) echo "no lab machine $host" >&2; exit 2 ;;
esac
variant=$(cat "$nix/$host.variant" 2>/dev/null || echo new)
export NIX_SSHOPTS="` + ssh + `"
on() { ssh $NIX_SSHOPTS "root@$addr" "$1"; }
if [ "$variant" = no-change ]; then
  echo "$host: the configuration did not change; activating the running generation again"
  on '/run/current-system/bin/switch-to-configuration switch'
  exit 0
fi
nonce=$(date +%s%N)
echo "building nixos-system-$host ($variant)"
drv=$(nix-instantiate --add-root "$nix/roots/$host-$nonce.drv" --indirect "$nix/system.nix" \
  --argstr host "$host" --argstr nonce "$nonce" --argstr variant "$variant" \
  --argstr activate "$(cat "$nix/$host.activate" 2>/dev/null || true)")
# No build users: their uids (nixbld1, ...) are this machine's, shared
# with any other Nix store on it (make fresh-check's root has one), and
# Nix kills every process of a build user before a build, so one store's
# build killed the other's builder (signal 9). The builder is the lab's
# own /bin/sh script; it runs as root, as on the machines.
nix-store --realise --add-root "$nix/roots/$host-$nonce" --indirect \
  --option substituters '' --option keep-build-log false --option build-users-group '' "$drv" >/dev/null
p=$(readlink "$nix/roots/$host-$nonce")
echo "copying $p to $host"
nix --extra-experimental-features nix-command copy --option substituters '' --to "ssh://root@$addr" "$p"
if [ "$variant" = power-off ]; then
  on "nix-env -p ` + NixProfile + ` --set $p"
  echo "$host: rebooting into $p"
  echo 1 > "$cgroup/cgroup.kill"
  exit 0
fi
echo "activating $p on $host"
on "nix-env -p ` + NixProfile + ` --set $p && $p/bin/switch-to-configuration switch"
`
	for name, content := range map[string]string{"system.nix": nixSystem, "build.sh": nixBuild, "deploy.sh": script} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o755); err != nil {
			return err
		}
	}
	return nil
}

// installSystems gives every machine its first generation (what it was
// installed with), through the deploy command itself.
func (l *Lab) installSystems(ctx context.Context) error {
	if err := l.writeNixFiles(); err != nil {
		return err
	}
	// On a fresh machine the first Nix command makes the store's
	// database; seven deploys at once raced there ("error:
	// '/nix/var/nix/db/schema' is corrupt", in make fresh-check), so it
	// is made once, first.
	if out, err := ToolCmd(ctx, "nix-store", "--init").CombinedOutput(); err != nil {
		return fmt.Errorf("this machine's Nix store: %w: %s", err, out)
	}
	errs := make([]error, len(l.Hosts))
	var wg sync.WaitGroup
	for i, h := range l.Hosts {
		wg.Go(func() {
			cmd := ToolCmd(ctx, "sh", filepath.Join(l.nixDir(), "deploy.sh"), h.Name)
			if out, err := cmd.CombinedOutput(); err != nil {
				errs[i] = fmt.Errorf("%s: installing its first system generation: %w: %s", h.Name, err, lastLines(string(out), 10))
			}
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

// removeNixBuilds deletes from this machine's Nix store what the lab in
// dir built: each output, then each derivation (kept while an output
// built from it lives), with their roots, and the lock a failed build
// leaves beside the output it did not make. A path someone else also
// holds stays; that is not ours to force.
func removeNixBuilds(dir string) {
	roots, _ := filepath.Glob(filepath.Join(dir, "nix", "roots", "*"))
	var outs, drvs []string
	for _, r := range roots {
		p, err := os.Readlink(r)
		if err != nil {
			continue
		}
		if strings.HasSuffix(p, ".drv") {
			drvs = append(drvs, p)
			if o, err := ToolCmd(context.Background(), "nix-store", "--query", "--outputs", p).Output(); err == nil {
				for _, out := range strings.Fields(string(o)) {
					if _, err := os.Lstat(out); os.IsNotExist(err) {
						_ = os.Remove(out + ".lock")
					}
				}
			}
		} else {
			outs = append(outs, p)
		}
		_ = os.Remove(r)
	}
	paths := append(append([]string{}, outs...), drvs...)
	if len(paths) == 0 {
		return
	}
	// One collection for all of them: each nix-store --delete looks for
	// the roots anew (every process's open files and maps on this
	// machine), seconds apiece on a busy machine, minutes for a lab that
	// deployed often. It deletes nothing when one of them is alive; then
	// one by one, outputs first, so that the rest still go.
	if ToolCmd(context.Background(), "nix-store", append([]string{"--delete"}, paths...)...).Run() == nil {
		return
	}
	for _, p := range paths {
		_ = ToolCmd(context.Background(), "nix-store", "--delete", p).Run()
	}
}

// SaveNixSystems records the system generation each named machine runs
// now; the returned restore switches each back to it, deletes the
// generations made since (and their store paths on the host) and resets
// its deploys to NixNew. For a test's t.Cleanup.
func (l *Lab) SaveNixSystems(ctx context.Context, hosts ...string) (restore func(context.Context) error, err error) {
	saved := map[string]int{}
	for _, name := range hosts {
		h := l.Host(name)
		if h == nil {
			return nil, fmt.Errorf("no lab host %q", name)
		}
		out, err := l.run(ctx, h, "readlink "+NixProfile)
		if err != nil {
			return nil, fmt.Errorf("%s: %s: %w: %s", name, NixProfile, err, out)
		}
		n, err := strconv.Atoi(strings.TrimSuffix(strings.TrimPrefix(out, "system-"), "-link"))
		if err != nil {
			return nil, fmt.Errorf("%s: %s points at %q, not a generation", name, NixProfile, out)
		}
		saved[name] = n
	}
	return func(ctx context.Context) error {
		var errs []string
		for _, name := range hosts {
			if err := l.SetNixDeploy(name, NixDeploy{}); err != nil {
				errs = append(errs, err.Error())
			}
			if out, err := l.run(ctx, l.Host(name), restoreScript(saved[name])); err != nil {
				errs = append(errs, fmt.Sprintf("%s: restoring generation %d: %v: %s", name, saved[name], err, out))
			}
		}
		if len(errs) > 0 {
			return fmt.Errorf("%s", strings.Join(errs, "; "))
		}
		return nil
	}, nil
}

// restoreScript switches a machine back to generation n and removes the
// generations after it, with their store paths.
func restoreScript(n int) string {
	return fmt.Sprintf(`set -e
systemctl is-system-running --wait >/dev/null || true # a host just restarted: its boot done first
p=%[1]s
nix-env -p $p --switch-generation %[2]d
$p/bin/switch-to-configuration switch
newer=$(ls -d $p-*-link | sed 's/.*system-\([0-9]*\)-link$/\1/' | awk '$1 > %[2]d')
paths=
for g in $newer; do paths="$paths $(readlink -f $p-$g-link)"; done
if [ -n "$newer" ]; then nix-env -p $p --delete-generations $newer; fi
for x in $paths; do nix-store --delete $x >/dev/null 2>&1 || true; done
test "$(readlink -f /run/current-system)" = "$(readlink -f $p)"`, NixProfile, n)
}

// nixInstallTimeout bounds installing the first generations.
const nixInstallTimeout = 2 * time.Minute
