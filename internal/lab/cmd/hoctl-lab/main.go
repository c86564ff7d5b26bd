// Command hoctl-lab starts and stops hoctl's lab cluster (see internal/lab)
// for the demo and for poking at by hand. Tests use the package directly.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"strconv"
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
	apis := fs.Bool("apis", false, "also run the lab's Consul and Nomad endpoint servers (127.0.NET.2:8500, 127.0.NET.3:4646) and the NFS shims")
	machines := fs.Bool("machines", false, "boot real machines (systemd-nspawn; real Consul, Nomad, nfs-server), building the cached parts first if needed")
	fs.Usage = func() {
		fmt.Fprintln(os.Stderr, "usage: hoctl-lab [flags] up|down|cache|kill HOST|hang HOST|resume HOST|restart HOST|generation HOST|serve-apis")
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
		if *apis {
			cfg.ConsulAddr, cfg.NomadAddr, cfg.NFS = fmt.Sprintf("127.0.%d.2:8500", *netw), fmt.Sprintf("127.0.%d.3:4646", *netw), true
		}
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
			if *apis {
				return fmt.Errorf("-machines runs the real Consul and Nomad: no -apis")
			}
			cache, err := lab.CacheDir()
			if err != nil {
				return err
			}
			if cfg.Parts, err = lab.EnsureCache(ctx, cache, os.Stderr); err != nil {
				return err
			}
		}
		stopAPIs(*dir)
		start := time.Now()
		l, err := lab.Start(ctx, cfg)
		if err != nil {
			return err
		}
		if *apis {
			if err := startAPIs(*dir, cfg.ConsulAddr, cfg.NomadAddr); err != nil {
				_ = lab.Teardown(*dir)
				return err
			}
		}
		fmt.Fprintf(os.Stderr, "lab up: %d hosts in %s (%s)\n", len(l.Hosts), l.Dir, time.Since(start).Round(10*time.Millisecond))
		fmt.Printf("export HOCTL_INVENTORY=%s\n", l.Inventory)
		return nil
	case "down":
		stopAPIs(*dir)
		return lab.Teardown(*dir)
	case "generation":
		if fs.NArg() != 2 {
			return fmt.Errorf("generation HOST")
		}
		// The script a lab deploy runs on HOST: a new NixOS-like
		// generation, switched to.
		fmt.Println(lab.NewGeneration(fs.Arg(1), fmt.Sprintf("%032x", time.Now().UnixNano())))
		return nil
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
	case "serve-apis":
		if fs.NArg() != 3 {
			return fmt.Errorf("serve-apis CONSUL-ADDR NOMAD-ADDR")
		}
		return serveAPIs(fs.Arg(1), fs.Arg(2))
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
