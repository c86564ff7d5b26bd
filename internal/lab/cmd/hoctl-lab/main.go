// Command hoctl-lab starts and stops hoctl's lab cluster (see internal/lab)
// for the demo and for poking at by hand. Tests use the package directly.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/hoctl/hoctl/internal/lab"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "hoctl-lab:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	fs := flag.NewFlagSet("hoctl-lab", flag.ContinueOnError)
	dir := fs.String("dir", "/tmp/hoctl-lab", "lab directory")
	netw := fs.Int("net", 1, "loopback block: hosts get 127.0.NET.11 and up")
	hosts := fs.String("hosts", "seed", `"seed" for the seed's cluster, or a number of hosts`)
	disk := fs.Int64("disk-mib", 2048, "size of each host's btrfs /persist image in MiB (0: tmpfs)")
	machines := fs.Bool("machines", false, "boot real machines (systemd-nspawn; real Consul, Nomad, nfs-server), building the cached parts first if needed")
	fs.Usage = func() {
		fmt.Fprintln(os.Stderr, "usage: hoctl-lab [flags] up|down|check|cache|kill HOST|hang HOST|resume HOST|restart HOST")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() == 0 {
		fs.Usage()
		return fmt.Errorf("missing command")
	}
	ctx := context.Background()
	switch cmd := fs.Arg(0); cmd {
	case "up":
		cfg := lab.Config{Dir: *dir, Net: *netw, DiskSize: *disk << 20}
		if *hosts == "seed" {
			cfg.Hosts, cfg.Groups = lab.SeedHosts()
		} else {
			n, err := strconv.Atoi(*hosts)
			if err != nil {
				return fmt.Errorf("--hosts: %w", err)
			}
			cfg.Hosts, cfg.Groups = lab.NumberedHosts("h", n)
		}
		if *machines {
			cache, err := lab.CacheDir()
			if err != nil {
				return err
			}
			if cfg.Parts, err = lab.EnsureCache(ctx, cache, os.Stderr); err != nil {
				return err
			}
			// The NFS hosts run hoctl guard: make build puts hoctl beside
			// this program.
			if exe, err := os.Executable(); err == nil {
				p := filepath.Join(filepath.Dir(exe), "hoctl")
				if _, err := os.Stat(p); err == nil {
					cfg.Hoctl = p
				}
			}
		}
		start := time.Now()
		l, err := lab.Start(ctx, cfg)
		if err != nil {
			return err
		}
		fmt.Fprintf(os.Stderr, "lab up: %d hosts in %s (%s)", len(l.Hosts), l.Dir, time.Since(start).Round(10*time.Millisecond))
		if cfg.Parts != nil {
			fmt.Fprintf(os.Stderr, "; %d MiB PSS", l.MemoryPSS()>>20)
		}
		fmt.Fprintln(os.Stderr)
		fmt.Printf("export HOCTL_INVENTORY=%s\n", l.Inventory)
		return nil
	case "down":
		if err := lab.Teardown(*dir); err != nil {
			return err
		}
		return check(*dir)
	case "check":
		return check(*dir)
	case "cache":
		// Build (once) and check the real cluster's parts: the rootfs,
		// Consul and Nomad.
		cache, err := lab.CacheDir()
		if err != nil {
			return err
		}
		p, err := lab.EnsureCache(ctx, cache, os.Stderr)
		if err != nil {
			return err
		}
		fmt.Printf("consul %s\nnomad %s\nrootfs %s\n", p.Consul, p.Nomad, p.Rootfs)
		return nil
	case "kill", "hang", "resume", "restart":
		if fs.NArg() != 2 {
			return fmt.Errorf("%s needs a host name", cmd)
		}
		l, err := lab.Attach(*dir)
		if err != nil {
			return err
		}
		host := fs.Arg(1)
		switch cmd {
		case "kill":
			return l.Kill(host)
		case "hang":
			return l.Hang(host)
		case "resume":
			return l.Resume(host)
		default:
			return l.Restart(ctx, host)
		}
	default:
		fs.Usage()
		return fmt.Errorf("unknown command %q", cmd)
	}
}

// check says what a lab in dir still holds on this machine (loop devices,
// mounts, cgroups, processes): nothing, after down.
func check(dir string) error {
	if left := lab.Leftovers(dir); len(left) > 0 {
		return fmt.Errorf("the lab in %s still holds:\n  %s", dir, strings.Join(left, "\n  "))
	}
	return nil
}
