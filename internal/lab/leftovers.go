package lab

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// Leftovers lists what a lab in dir still holds on this machine: loop
// devices backed by its disk images, mounts under dir, its cgroups, live
// processes started from it (its hosts' wrappers and nspawn name dir; a
// machine's own processes are counted in its cgroup), its partitions'
// nftables table, and the roots of
// what its deploy command built in this machine's Nix store. Mounts are
// those of this machine's mount table: a host's own mounts (overlay,
// loop, /run/systemd) live in its wrapper's private mount namespace and
// go with its last process. Empty after Teardown;
// `hoctl-lab check` and the teardown tests read it.
func Leftovers(dir string) []string {
	dir = filepath.Clean(dir)
	var left []string
	out, _ := ToolCmd(context.Background(), "losetup", "-a").Output()
	for _, line := range strings.Split(string(out), "\n") {
		if strings.Contains(line, "("+dir+"/") {
			left = append(left, "loop device "+line)
		}
	}
	for _, m := range mountsUnder(dir) {
		left = append(left, "mount "+m)
	}
	left = append(left, partitionLeftovers(dir)...)
	for _, hier := range cgroupHierarchies {
		if cg := filepath.Join(hier, labCgroup(dir)); exists(cg) {
			left = append(left, fmt.Sprintf("cgroup %s (%d processes)", cg, len(cgroupPids(cg))))
		}
	}
	// What the lab's deploy command built in this machine's Nix store
	// (nix.go), still rooted there (through Nix's own indirect-root
	// links) after the lab is gone.
	links, _ := filepath.Glob("/nix/var/nix/gcroots/auto/*")
	for _, link := range links {
		if target, err := os.Readlink(link); err == nil && strings.HasPrefix(target, dir+"/nix/") {
			left = append(left, "nix build root "+target)
		}
	}
	procs, _ := filepath.Glob("/proc/[0-9]*")
	for _, p := range procs {
		pid, err := strconv.Atoi(filepath.Base(p))
		if err != nil || pid == os.Getpid() || gone(pid) {
			continue
		}
		cmdline, _ := os.ReadFile(p + "/cmdline")
		if strings.Contains(string(cmdline), dir+"/hosts/") {
			comm, _ := os.ReadFile(p + "/comm")
			left = append(left, fmt.Sprintf("process %d (%s)", pid, strings.TrimSpace(string(comm))))
		}
	}
	return left
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}
