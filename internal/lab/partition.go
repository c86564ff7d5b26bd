package lab

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"
)

// A network partition between machines (a fault, as Kill and Hang are).
//
// Every machine shares this machine's network and binds its own
// loopback address, but an outgoing connection need not be bound to it
// (Linux picks 127.0.0.1 as the source for 127.0.0.0/8), so addresses
// alone cannot say which machine sent a packet. Its cgroup can:
// nftables' `socket cgroupv2` matches the cgroup of the sending socket,
// and each machine runs in its own (hoctl-lab/<dir>/<host>). A rule
// drops, in this machine's output hook, what a machine's sockets send
// to a peer's address and what the peer's sockets send to the machine's
// address: both directions, every protocol, established connections
// included. Only the lab's own loopback addresses are ever named.
//
// The rules live in one nftables table per lab (partitionTable), which
// Teardown deletes: a test killed while a partition stands leaves it
// only until the next Start (or hoctl-lab down) in that directory, and
// Leftovers reports it.

// OperatorSSH, as a peer of Partition, stands for this machine's own
// connections to the host's sshd (the operator's hoctl and ssh): the
// operator loses the host, while the rest of this machine (an NFS client
// reading its export, say) still reaches it.
const OperatorSSH = "operator-ssh"

// partitionTable is the nftables table (family inet) of the lab in dir.
func partitionTable(dir string) string {
	sum := sha256.Sum256([]byte(filepath.Clean(dir)))
	return fmt.Sprintf("hoctl_lab_%x", sum[:6])
}

var partitionSeq atomic.Int64

// Partition cuts host off from each of peers (machines of the lab, or
// OperatorSSH) until heal is called: every packet between them is
// dropped, in both directions, while both keep running. Partitions add
// up; heal removes only its own. The machines must be the real
// cluster's (each in its own cgroup).
func (l *Lab) Partition(host string, peers ...string) (heal func() error, err error) {
	h := l.Host(host)
	if h == nil {
		return nil, fmt.Errorf("no lab host %q", host)
	}
	if len(peers) == 0 {
		return nil, fmt.Errorf("partition %s: no peers", host)
	}
	var rules []string
	for _, p := range peers {
		if p == OperatorSSH {
			rules = append(rules, fmt.Sprintf(`ip daddr %s tcp dport %d counter drop comment "operator ssh -> %s"`, h.Addr, Port, host))
			continue
		}
		ph := l.Host(p)
		if ph == nil || p == host {
			return nil, fmt.Errorf("partition %s: no other lab host %q", host, p)
		}
		for _, dir := range [][2]*Host{{h, ph}, {ph, h}} {
			from, to := dir[0], dir[1]
			cg, level, err := l.machineCgroup(from)
			if err != nil {
				return nil, err
			}
			rules = append(rules, fmt.Sprintf(`ip daddr %s socket cgroupv2 level %d %q counter drop comment "%s -> %s"`, to.Addr, level, cg, from.Name, to.Name))
		}
	}
	table := partitionTable(l.Dir)
	chain := fmt.Sprintf("p%d_%d", os.Getpid(), partitionSeq.Add(1))
	var script strings.Builder
	fmt.Fprintf(&script, "table inet %s {\n\tchain %s {\n\t\ttype filter hook output priority filter; policy accept;\n", table, chain)
	for _, r := range rules {
		fmt.Fprintf(&script, "\t\t%s\n", r)
	}
	script.WriteString("\t}\n}\n")
	if err := nft(script.String()); err != nil {
		return nil, fmt.Errorf("partition %s from %s: %w", host, strings.Join(peers, ", "), err)
	}
	healed := false
	return func() error {
		if healed {
			return nil
		}
		if err := nft(fmt.Sprintf("delete chain inet %s %s\n", table, chain)); err != nil && tableExists(table) {
			return fmt.Errorf("healing the partition of %s: %w", host, err)
		}
		healed = true
		return nil
	}, nil
}

// machineCgroup is h's cgroup as nftables names it (relative to
// /sys/fs/cgroup, where this machine's cgroup2 hierarchy is
// /sys/fs/cgroup/unified) and its level in that hierarchy.
func (l *Lab) machineCgroup(h *Host) (string, int, error) {
	rel := l.hostCgroup(h)
	if _, err := os.Stat(filepath.Join("/sys/fs/cgroup/unified", rel)); err != nil {
		return "", 0, fmt.Errorf("partition: %s is not a machine of the real cluster (no cgroup %s): %w", h.Name, rel, err)
	}
	return filepath.Join("unified", rel), len(strings.Split(rel, "/")), nil
}

func nft(script string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := ToolCmd(ctx, "nft", "-f", "-")
	cmd.Stdin = strings.NewReader(script)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("nft: %w: %s", err, strings.TrimSpace(out.String()))
	}
	return nil
}

func tableExists(table string) bool {
	if _, err := FindTool("nft"); err != nil {
		return false
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return ToolCmd(ctx, "nft", "list", "table", "inet", table).Run() == nil
}

// removePartitions deletes the lab's partition table, if any: every
// partition of the lab in dir heals.
func removePartitions(dir string) error {
	table := partitionTable(dir)
	if !tableExists(table) {
		return nil
	}
	return nft(fmt.Sprintf("delete table inet %s\n", table))
}

// partitionLeftovers is the lab's partition table, if it is still there.
func partitionLeftovers(dir string) []string {
	if t := partitionTable(dir); tableExists(t) {
		return []string{"nftables table inet " + t}
	}
	return nil
}
