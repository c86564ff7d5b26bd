#!/usr/bin/env bash
# The README's demo: start the lab (the seed's cluster as real sshd hosts in
# namespaces on 127.0.1.x) and run hoctl's jobs against it. Run as root from
# the repository root after `make build` (make demo does both).
# KEEP_LAB=1 leaves the lab running afterwards (stop it with make demo-down).
set -uo pipefail
cd "$(dirname "$0")/../.."
LAB=${LAB:-/tmp/hoctl-lab}
HOCTL=./bin/hoctl
LABCTL="./bin/hoctl-lab -dir $LAB"

step() { printf '\n\033[1m$ %s\033[0m\n' "$*"; }
run() { step "$*"; "$@"; echo "(exit $?)"; }

cleanup() {
	if [ "${KEEP_LAB:-}" = 1 ]; then
		echo; echo "Lab left running: export HOCTL_INVENTORY=$LAB/inventory.yaml; stop it with: make demo-down"
	else
		$LABCTL down
	fi
}
trap cleanup EXIT

step "hoctl-lab -apis up   # the seed's cluster: zippy, c1-c3, fractal, sunny, chilly; Consul and Nomad endpoint servers"
$LABCTL -apis up >/dev/null || exit 1
export HOCTL_INVENTORY=$LAB/inventory.yaml
# The demo's journal stays with the lab, not in your own state directory.
export XDG_STATE_HOME=$LAB/state

run $HOCTL hosts
run $HOCTL hosts quorum
run $HOCTL ping all
run $HOCTL run cattle -- uptime
run $HOCTL run cluster --group -- 'findmnt -no SOURCE,FSTYPE /persist; btrfs filesystem df -h /persist | head -1'
run $HOCTL --json run zippy -- hostname

step "hoctl-lab kill c2; hoctl-lab hang zippy   # one host down, one hung"
$LABCTL kill c2 && $LABCTL hang zippy
run $HOCTL ping all
$LABCTL resume zippy && $LABCTL restart c2
run $HOCTL ping cluster

step "replication zippy → c1 (the seed's 5-minute timer, as a verified runbook)"
$HOCTL run zippy -- 'btrfs subvolume create /persist/services >/dev/null && mkdir -p /persist/services/gitea && head -c 20000000 /dev/urandom > /persist/services/gitea/repo.pack' >/dev/null
$HOCTL run c1 -- 'mkdir -p /persist/services-standby' >/dev/null
run $HOCTL --dry-run replicate zippy c1
run $HOCTL --yes replicate zippy c1
$HOCTL run zippy -- 'for i in $(seq 1 200); do echo "photo $i" > /persist/services/gitea/p$i; done' >/dev/null
run $HOCTL --yes replicate zippy c1
run $HOCTL snapshots c1

step "NFS: zippy owns data-services (Consul owner key) and serves it; the clients (c1-c3) mount it"
curl -sf -X PUT --data zippy http://127.0.1.2:8500/v1/kv/hoctl/nfs/data-services/owner >/dev/null
$HOCTL run zippy -- systemctl start nfs-server >/dev/null
$HOCTL run cattle -- systemctl restart data-services.mount >/dev/null
run $HOCTL status

step "failover zippy → c1: fence, final sync, promote, start, Consul, clients"
run $HOCTL --dry-run failover --to c1
$HOCTL run zippy -- 'echo "written just before the failover" > /persist/services/last-write' >/dev/null
run $HOCTL --yes failover --to c1
run $HOCTL run cattle -- cat /data/services/last-write
run $HOCTL status
run $HOCTL --yes failover --to zippy

step "deploy: a rolling NixOS deploy (the lab's deploy command moves /run/current-system)"
sed 's|^  quorum: quorum$|  quorum: quorum\n  command: "sh internal/lab/demo-deploy.sh {{.Host}}"|' "$HOCTL_INVENTORY" > "$LAB/deploy-inventory.yaml"
run $HOCTL -i "$LAB/deploy-inventory.yaml" --yes deploy c1 c2 c3 zippy
run $HOCTL history
