package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"
)

// directTries measures what could bring --transport direct nearer the
// local ceiling, each change against the pipeline hoctl runs today, side
// by side in one run on the transfer lab (a full send of 1 GiB of
// incompressible data, zippy → c1, compress: none):
//
//   - hoctl's own send step (`replicate --full --transport direct`);
//   - the ceiling, `btrfs send | btrfs receive` on zippy, after it;
//   - the very script hoctl's plan shows for that send (--dry-run), run
//     on zippy by hand on the newest snapshot, and that script with one
//     change each: no progress meter (dd), dd with 1 MiB blocks, mbuffer
//     between dd and ssh, mbuffer on the target before the filter (over
//     zippy's unrestricted key, the filter then started by the target's
//     shell, as the relay starts it: also measured without mbuffer), and
//     ssh's compression on;
//   - the bare `btrfs send | ssh -c aes128-gcm c1 btrfs receive`: no
//     descriptor-checked send, no progress meter, no stream check.
//
// Every variant but the bare pipe keeps the send op and the target
// filter. Beside the wall time, CPU seconds: the source's (the pipeline
// on zippy, ssh included) and the target's (c1's sshd sessions and what
// they ran: the filter and btrfs receive).
func (h *harness) directTries(ctx context.Context) error {
	t, err := h.newTransferLab(ctx, "tries", 4<<30)
	if err != nil {
		return err
	}
	defer t.stop()
	bin, err := filepath.Abs(h.cfg.hoctl)
	if err != nil {
		return err
	}
	if err := useHoctl(t.l, bin); err != nil {
		return err
	}
	script, err := t.directScript(bin)
	if err != nil {
		return err
	}
	c1 := t.l.Host("c1").Addr
	tries, err := directVariants(script, c1)
	if err != nil {
		return err
	}
	type samples struct{ wall, src, dst []time.Duration }
	res := map[string]*samples{}
	add := func(label string, wall, src, dst time.Duration) {
		s := res[label]
		if s == nil {
			s = &samples{}
			res[label] = s
		}
		s.wall, s.src, s.dst = append(s.wall, wall), append(s.src, src), append(s.dst, dst)
	}
	const hoctlLabel, ceilingLabel = "hoctl replicate --full --transport direct (its send step)", "ceiling: btrfs send | btrfs receive on zippy"
	for i := 0; i < h.cfg.runs; i++ {
		if err := t.clearC1(); err != nil {
			return err
		}
		z0, c0 := t.listenerCPU("zippy"), t.listenerCPU("c1")
		_, send, err := t.hoctlRun(bin, t.inventories["none"], "--full", "--transport", "direct")
		if err != nil {
			return err
		}
		add(hoctlLabel, send, t.listenerCPU("zippy")-z0, t.listenerCPU("c1")-c0)
		wall, cpu, err := t.ceiling(false)
		if err != nil {
			return err
		}
		add(ceilingLabel, wall, cpu, 0)
		snaps, err := t.snapshots()
		if err != nil {
			return err
		}
		snap := snaps[len(snaps)-1]
		for j := range tries {
			tr := tries[(i+j)%len(tries)]
			s := planned.ReplaceAllString(tr.script, filepath.Base(snap))
			if tr.script == "" {
				s = fmt.Sprintf("set -o pipefail; btrfs send -q %s | ssh -c aes128-gcm@openssh.com -i /root/.ssh/raw -o IdentitiesOnly=yes -o BatchMode=yes -p 2222 root@%s btrfs receive -q /persist/raw", snap, c1)
			}
			if err := t.clearC1(); err != nil {
				return err
			}
			c0 := t.listenerCPU("c1")
			wall, cpu, err := t.timed("zippy", s)
			if err != nil {
				return fmt.Errorf("%s: %w", tr.label, err)
			}
			dst := t.listenerCPU("c1") - c0
			add(tr.label, wall, cpu, dst)
			fmt.Fprintf(os.Stderr, "direct-tries: round %d: %s: %s, CPU %.2f s + %.2f s\n", i+1, tr.label, secs(wall), cpu.Seconds(), dst.Seconds())
		}
	}
	if err := t.clearC1(); err != nil {
		return err
	}

	ceil, asHoctl := median(res[ceilingLabel].wall), median(res[tries[0].label].wall)
	fmt.Printf("#### Direct transport: what could close the gap to the ceiling (full send of 1 GiB of incompressible data, zippy → c1)\n\n")
	fmt.Printf("hoctl's direct script (from `hoctl --dry-run replicate --name big --full --transport direct`, the snapshot's name replaced):\n\n```\n%s\n```\n\n", script)
	fmt.Println("| pipeline | wall (median) | × ceiling | × its round's ceiling (median) | × as hoctl | × as hoctl, its round's (median) | CPU source | CPU target | CPU total | wall, runs |")
	fmt.Println("|---|---|---|---|---|---|---|---|---|---|")
	labels := []string{ceilingLabel, hoctlLabel}
	for _, tr := range tries {
		labels = append(labels, tr.label)
	}
	for _, k := range labels {
		s := res[k]
		m := median(s.wall)
		src, dst := median(s.src), median(s.dst)
		fmt.Printf("| %s | %s | **%.2f×** | %.2f× | %.2f× | %.2f× | %.2f s | %.2f s | %.2f s | %s |\n", strings.ReplaceAll(k, "|", `\|`), secs(m), ceil.Seconds()/m.Seconds(),
			pairedRatio(res[ceilingLabel].wall, s.wall), asHoctl.Seconds()/m.Seconds(), pairedRatio(res[tries[0].label].wall, s.wall),
			src.Seconds(), dst.Seconds(), (src + dst).Seconds(), list(s.wall))
	}
	fmt.Println()
	fmt.Println("CPU: medians of each side; the source's is bash's reaped children on zippy (for hoctl's own run: zippy's sshd sessions, its other commands included), the target's c1's sshd sessions and what they ran. × as hoctl above 1.00 is faster than today's pipeline.")
	fmt.Println()
	return nil
}

type try struct{ label, script string }

// directVariants are hoctl's direct script and its variants, each one
// change from it; the last, with no script, is the bare pipe.
func directVariants(script, c1 string) ([]try, error) {
	const meter = " | dd bs=128K status=progress"
	if !strings.Contains(script, meter) || !strings.Contains(script, "| ssh ") || !strings.Contains(script, " "+c1+" '") {
		return nil, fmt.Errorf("hoctl's direct script is not of the shape the tries change: %s", script)
	}
	// overRaw sends over zippy's unrestricted key: the remote command goes
	// to c1's shell, which runs prefix and then the target filter itself.
	overRaw := func(s, prefix string) string {
		s = strings.Replace(s, "| ssh ", "| ssh -i /root/.ssh/raw -o IdentitiesOnly=yes ", 1)
		return strings.Replace(s, " "+c1+" '", " "+c1+" '"+prefix, 1)
	}
	return []try{
		{"as hoctl runs it (its plan's script, by hand)", script},
		{"without the progress meter (no dd)", strings.Replace(script, meter, "", 1)},
		{"dd bs=1M", strings.Replace(script, meter, " | dd bs=1M status=progress", 1)},
		{"mbuffer -m 256M between dd and ssh", strings.Replace(script, meter, meter+" | mbuffer -q -m 256M", 1)},
		{"ssh -o Compression=yes", strings.Replace(script, "| ssh ", "| ssh -o Compression=yes ", 1)},
		{"the filter started by c1's shell (unrestricted key)", overRaw(script, "")},
		{"mbuffer -m 256M on c1 before the filter (unrestricted key)", overRaw(script, "mbuffer -q -m 256M | ")},
		{"bare: btrfs send | ssh -c aes128-gcm c1 btrfs receive (no send op, meter or filter)", ""},
	}, nil
}

// planned matches the snapshot name hoctl's plan makes up.
var planned = regexp.MustCompile(`big@[0-9]{8}T[0-9]{6}Z`)

var directPlanLine = regexp.MustCompile(`(?m)^\s+run\s+zippy: (set -o pipefail; .*?)   \(direct, `)

// directScript is the script hoctl's plan shows for a direct full send
// of big: what hoctl runs on zippy, with the planned snapshot's name.
func (t *transferLab) directScript(bin string) (string, error) {
	_, out, err := t.h.timeCmdOut([]string{"HOCTL_INVENTORY=" + t.inventories["none"], "XDG_STATE_HOME=" + t.state}, bin, "--dry-run", "replicate", "--name", "big", "--full", "--transport", "direct")
	if err != nil {
		return "", err
	}
	m := directPlanLine.FindStringSubmatch(out)
	if m == nil {
		return "", fmt.Errorf("no direct send script in hoctl's plan:\n%s", tailLines(out, 20))
	}
	return m[1], nil
}
