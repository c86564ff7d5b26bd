// Command hoctl-lab starts and stops hoctl's lab cluster (see internal/lab)
// for the demo and for poking at by hand. Tests use the package directly.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/hoctl/hoctl/internal/lab"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "hoctl-lab:", err)
		var missing *lab.MissingToolsError
		if errors.As(err, &missing) {
			os.Exit(2)
		}
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
		fmt.Fprintln(os.Stderr, "usage: hoctl-lab [flags] up|down|check|cache|preflight|tools|mirror|kill HOST|hang HOST|resume HOST|restart HOST")
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
	// Every host tool first, before any long build: on a fresh machine a
	// missing one is named at once (with its package), not after the
	// cache's minutes of compiling.
	switch fs.Arg(0) {
	case "up", "cache", "preflight":
		if err := lab.Preflight(lab.ForAll); err != nil {
			return err
		}
	}
	switch cmd := fs.Arg(0); cmd {
	case "preflight":
		if err := lab.CheckLimits(); err != nil {
			return err
		}
		fmt.Fprintln(os.Stderr, "hoctl-lab preflight: every host tool is here (hoctl-lab tools lists them)")
		return nil
	case "tools":
		return tools()
	case "mirror":
		// The Debian mirror this machine's apt uses (what the rootfs is
		// built from; make fresh-check's root too).
		m, err := lab.AptMirror()
		if err != nil {
			return err
		}
		fmt.Println(m)
		return nil
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

// tools prints the table of host tools: each program, its package, who
// runs it and where it is here (or that it is missing).
func tools() error {
	w := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(w, "TOOL\tFROM\tUSED BY\tHERE\tWHY")
	for _, t := range lab.HostTools() {
		from := t.Package
		switch t.From {
		case lab.FromGo:
			from = "Go toolchain"
		case lab.FromBuild:
			from = "built here"
		}
		here := "-"
		if t.From != lab.FromBuild {
			if p, err := t.Find(); err == nil {
				here = p
			} else {
				here = "MISSING"
			}
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\n", t.Name, from, uses(t.Use), here, t.Why)
	}
	return w.Flush()
}

func uses(u lab.ToolUse) string {
	var out []string
	for _, x := range []struct {
		u    lab.ToolUse
		name string
	}{{lab.ForLab, "lab"}, {lab.ForMachines, "machines"}, {lab.ForDemo, "demo"}, {lab.ForTests, "tests"}, {lab.ForBench, "bench"}} {
		if u&x.u != 0 {
			out = append(out, x.name)
		}
	}
	return strings.Join(out, ",")
}
