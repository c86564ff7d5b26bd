package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/hoctl/hoctl/pkg/sshexec"
)

// runbook: 10 steps, each a trivial command on every host, as a hoctl
// runbook and as an Ansible playbook of 10 raw tasks (forks = hosts, no
// fact gathering), interleaved.
func (h *harness) runbook() error {
	cmds := tenCommands()
	var rb, play strings.Builder
	rb.WriteString("name: bench\nsteps:\n")
	play.WriteString("- hosts: all\n  gather_facts: false\n  tasks:\n")
	for i, c := range cmds {
		fmt.Fprintf(&rb, "  - {title: step %d, hosts: '%s', run: '%s'}\n", i+1, h.view(h.cfg.hosts).target, c)
		fmt.Fprintf(&play, "    - name: step %d\n      raw: '%s'\n", i+1, c)
	}
	rbPath, playPath := filepath.Join(h.dir, "bench.yaml"), filepath.Join(h.dir, "play.yml")
	if err := os.WriteFile(rbPath, []byte(rb.String()), 0o600); err != nil {
		return err
	}
	if err := os.WriteFile(playPath, []byte(play.String()), 0o600); err != nil {
		return err
	}
	state := filepath.Join(h.dir, "state")
	var hoctl, ansible []time.Duration
	for i := 0; i < h.cfg.runs; i++ {
		d, _, err := h.timeCmd([]string{"XDG_STATE_HOME=" + state}, h.cfg.hoctl, "--yes", "runbook", "run", rbPath)
		if err != nil {
			return err
		}
		hoctl = append(hoctl, d)
		cp := filepath.Join(h.dir, fmt.Sprintf("cpr%d", i))
		if err := os.MkdirAll(cp, 0o700); err != nil {
			return err
		}
		d, _, err = h.timeCmd([]string{"ANSIBLE_SSH_CONTROL_PATH_DIR=" + cp}, "ansible-playbook", "-i", h.view(h.cfg.hosts).ansInv, "-f", strconv.Itoa(h.cfg.hosts), playPath)
		if err != nil {
			return err
		}
		ansible = append(ansible, d)
	}
	printVersus(fmt.Sprintf("Runbook: 10 steps, each a trivial command on %d hosts", h.cfg.hosts),
		"hoctl --yes runbook run (plan, journal, 10 steps)", hoctl,
		fmt.Sprintf("ansible-playbook, 10 raw tasks, forks %d", h.cfg.hosts), ansible, " (target ≤ 0.10)")
	return nil
}

func (h *harness) sequence(ctx context.Context) error {
	targets, err := h.targets()
	if err != nil {
		return err
	}
	cmds := tenCommands()
	var hoctl, pdsh []time.Duration
	for i := 0; i < h.cfg.runs; i++ {
		start := time.Now()
		pool := sshexec.NewPool(sshexec.PoolOptions{})
		for _, c := range cmds {
			var failed error
			sshexec.ForEach(ctx, 32, targets, func(ctx context.Context, _ int, t *sshexec.Target) {
				r, err := pool.Runner(ctx, t)
				if err == nil {
					_, err = r.Run(ctx, sshexec.Cmd{Script: c})
				}
				if err != nil {
					failed = err
				}
			})
			if failed != nil {
				_ = pool.Close()
				return failed
			}
		}
		_ = pool.Close()
		hoctl = append(hoctl, time.Since(start))

		start = time.Now()
		for _, c := range cmds {
			if _, _, err := h.timeCmd(nil, "pdsh", "-R", "ssh", "-f", strconv.Itoa(h.cfg.hosts), "-l", "root", "-w", h.view(h.cfg.hosts).pdshHosts, c); err != nil {
				return err
			}
		}
		pdsh = append(pdsh, time.Since(start))
	}
	printVersus(fmt.Sprintf("Sequence: 10 commands one after another on %d hosts", h.cfg.hosts),
		"hoctl engine (pkg/sshexec, one connection per host)", hoctl,
		fmt.Sprintf("10 × pdsh -R ssh -f %d", h.cfg.hosts), pdsh, "")
	return nil
}

// tenCommands are the runbook's and the sequence's steps: trivial, so
// that what is measured is the tool's cost per step.
func tenCommands() []string {
	return []string{"hostname", "uptime", "id -u", "true", "uname -r", "date +%s", "test -d /persist", "cat /proc/loadavg", "df -h /data", "echo done"}
}

// printVersus prints hoctl's runs against another tool's as a table, with
// hoctl's median as a ratio of the other's (note follows the ratio).
func printVersus(title, hoctlLabel string, hoctl []time.Duration, otherLabel string, other []time.Duration, note string) {
	mh, mo := median(hoctl), median(other)
	fmt.Printf("#### %s\n\n", title)
	fmt.Println("| tool | median wall | runs | hoctl ratio |")
	fmt.Println("|---|---|---|---|")
	fmt.Printf("| %s | %s | %s | 1.00 |\n", hoctlLabel, secs(mh), list(hoctl))
	fmt.Printf("| %s | %s | %s | **%.3f×**%s |\n\n", otherLabel, secs(mo), list(other), mh.Seconds()/mo.Seconds(), note)
}
