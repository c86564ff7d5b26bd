package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/hoctl/hoctl/internal/lab"
)

// memory: peak RSS of hoctl while one host prints 1 GiB, in each way
// hoctl shows output (streamed lines, --group, --json, a runbook step
// with its journal), and how far past --timeout a command flooding its
// output is stopped (issue 11, Medium 4: target < 100 MB, within 1 s).
func (h *harness) memory(ctx context.Context, net int) error {
	hosts, groups := lab.NumberedHosts("m", 1)
	l, err := lab.Start(ctx, lab.Config{Dir: "/tmp/hoctl-bench-memory", Net: net, Hosts: hosts, Groups: groups, ConnectTimeout: 10 * time.Second})
	if err != nil {
		return err
	}
	defer func() { _ = l.Stop() }()
	env := append(os.Environ(), "HOCTL_INVENTORY="+l.Inventory, "NO_COLOR=1", "SSH_AUTH_SOCK=", "XDG_STATE_HOME="+filepath.Join(h.dir, "memstate"))
	// 1 GiB in lines of 1000 bytes.
	const flood = `yes "$(printf '%0999d' 0)" | head -c 1073741824`
	rb := filepath.Join(h.dir, "flood.yaml")
	if err := os.WriteFile(rb, []byte("name: flood\nsteps:\n  - title: print 1 GiB\n    hosts: m01\n    run: '"+strings.ReplaceAll(flood, "'", "''")+"'\n"), 0o600); err != nil {
		return err
	}
	fmt.Printf("#### Output: one host prints 1 GiB (lab host on 127.0.%d.x)\n\n", net)
	fmt.Println("| hoctl command | peak RSS | hoctl CPU | wall |")
	fmt.Println("|---|---|---|---|")
	for _, c := range []struct {
		name string
		args []string
	}{
		{"hoctl run m01 -- CMD (streamed, stdout to /dev/null)", []string{"run", "m01", "--", flood}},
		{"hoctl run --group m01 -- CMD", []string{"run", "--group", "m01", "--", flood}},
		{"hoctl --json run m01 -- CMD", []string{"--json", "run", "m01", "--", flood}},
		{"hoctl --yes runbook run (one step: CMD; journaled)", []string{"--yes", "runbook", "run", rb}},
	} {
		d, ru, err := runQuiet(env, h.cfg.hoctl, c.args...)
		if err != nil {
			return err
		}
		fmt.Printf("| %s | %.1f MB | %s | %s |\n", c.name, float64(ru.Maxrss)/1024, secs(cpu(ru)), secs(d))
	}
	fmt.Println()
	fmt.Println("| --timeout with a command flooding output (`yes`) | peak RSS | wall | past the timeout |")
	fmt.Println("|---|---|---|---|")
	for _, args := range [][]string{{"--json", "run", "--timeout", "3s", "m01", "--", "yes"}, {"run", "--timeout", "3s", "m01", "--", "yes"}} {
		d, ru, _ := runQuiet(env, h.cfg.hoctl, args...) // exits 1: timed out
		if ru == nil {
			return fmt.Errorf("hoctl %s did not run", strings.Join(args, " "))
		}
		fmt.Printf("| hoctl %s | %.1f MB | %s | %s |\n", strings.Join(args, " "), float64(ru.Maxrss)/1024, secs(d), secs(d-3*time.Second))
	}
	fmt.Println()
	fmt.Println("CMD = `" + flood + "`. `CMD` costs the host's sshd and hoctl the SSH encryption of 1 GiB; the figures are one run each.")
	fmt.Println()
	return nil
}

// runQuiet runs hoctl with its stdout to /dev/null and returns its wall
// time and resource usage.
func runQuiet(env []string, bin string, args ...string) (time.Duration, *syscall.Rusage, error) {
	devnull, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	if err != nil {
		return 0, nil, err
	}
	defer func() { _ = devnull.Close() }()
	cmd := lab.ToolCmd(context.Background(), bin, args...)
	cmd.Env = env
	var errOut strings.Builder
	cmd.Stdout, cmd.Stderr = devnull, &errOut
	start := time.Now()
	err = cmd.Run()
	d := time.Since(start)
	ru, _ := cmd.ProcessState.SysUsage().(*syscall.Rusage)
	if err != nil {
		return d, ru, fmt.Errorf("hoctl %s: %w\n%s", strings.Join(args, " "), err, tailLines(errOut.String(), 10))
	}
	return d, ru, nil
}
