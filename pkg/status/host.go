package status

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/hoctl/hoctl/pkg/inventory"
	"github.com/hoctl/hoctl/pkg/replicate"
	"github.com/hoctl/hoctl/pkg/sshexec"
)

// hostScript is one round trip: uptime, load, failed units, btrfs pools.
const hostScript = `cat /proc/uptime /proc/loadavg; echo --; systemctl --failed --plain --no-legend 2>/dev/null | awk '{print $1}'; echo --; df -B1 --output=target,size,used,avail -t btrfs 2>/dev/null | tail -n +2`

func (p *Probes) host(ctx context.Context, h *inventory.Host) []Check {
	hint := "hoctl ping " + h.Name
	run, err := p.Connect(ctx, h)
	if err != nil {
		return []Check{{Area: "host", Name: h.Name, Level: Fail, Detail: p.short(ctx, err), Hint: hint}}
	}
	res, err := run.Run(ctx, sshexec.Cmd{Script: hostScript})
	if err != nil {
		return []Check{{Area: "host", Name: h.Name, Level: Fail, Detail: p.short(ctx, err), Hint: hint}}
	}
	parts := strings.Split(string(res.Stdout), "--\n")
	for len(parts) < 3 {
		parts = append(parts, "")
	}
	f := strings.Fields(parts[0])
	c := Check{Area: "host", Name: h.Name, Level: OK}
	if len(f) >= 5 {
		up, _ := strconv.ParseFloat(f[0], 64)
		c.Detail = fmt.Sprintf("up %s, load %s %s %s", (time.Duration(up) * time.Second).Round(time.Minute), f[2], f[3], f[4])
	}
	if failed := strings.Fields(parts[1]); len(failed) > 0 {
		c.Level, c.Hint = Warn, "hoctl run "+h.Name+" -- systemctl --failed"
		c.Detail += "; failed units: " + strings.Join(failed, ", ")
	}
	out := []Check{c}
	for _, l := range strings.Split(strings.TrimSpace(parts[2]), "\n") {
		if dc, ok := diskCheck(h.Name, strings.Fields(l)); ok {
			out = append(out, dc)
		}
	}
	return out
}

// diskCheck is one pool from df's target, size, used and avail. Full is
// what df says, used/(used+avail): btrfs keeps space that is neither
// (metadata, reserves), so used/size looks emptier than a pool is, and a
// pool where writes fail with "no space" showed 89%.
func diskCheck(host string, d []string) (Check, bool) {
	if len(d) != 4 {
		return Check{}, false
	}
	size, _ := strconv.ParseInt(d[1], 10, 64)
	used, _ := strconv.ParseInt(d[2], 10, 64)
	avail, _ := strconv.ParseInt(d[3], 10, 64)
	if size <= 0 || used < 0 || avail < 0 || used+avail == 0 {
		return Check{}, false
	}
	pct := (used*100 + used + avail - 1) / (used + avail) // rounded up, as df
	c := Check{Area: "disk", Name: host + ":" + d[0], Level: OK,
		Detail: fmt.Sprintf("%d%% used (%s free of %s)", pct, replicate.BytesText(avail), replicate.BytesText(size))}
	switch {
	case pct >= 100:
		c.Level, c.Hint = Fail, "hoctl run "+host+" -- btrfs filesystem usage "+d[0]
		c.Detail += ": full, writes fail (replication too)"
	case pct >= 90:
		c.Level, c.Hint = Warn, "hoctl run "+host+" -- btrfs filesystem usage "+d[0]
	}
	return c, true
}
