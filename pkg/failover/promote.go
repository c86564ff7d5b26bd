package failover

import (
	"context"
	"fmt"
	"path"
	"strings"

	"github.com/hoctl/hoctl/pkg/inventory"
	"github.com/hoctl/hoctl/pkg/replicate"
	"github.com/hoctl/hoctl/pkg/sshexec"
	"github.com/hoctl/hoctl/pkg/tasks"
)

func (r *Run) promotable(ctx context.Context, env *tasks.Env, _ *inventory.Host) (string, error) {
	copy, err := r.newestCopy(ctx, env)
	if err != nil {
		return "", err
	}
	run, err := env.Connect(ctx, r.Inv.Host(r.Opts.To))
	if err != nil {
		return "", err
	}
	if res, err := run.Run(ctx, sshexec.Cmd{Script: "exportfs -v"}); err == nil && exported(string(res.Stdout), r.NFS.Export) {
		return "", fmt.Errorf("%s already exports %s", r.Opts.To, r.NFS.Export)
	}
	r.mu.Lock()
	r.chosen = copy
	r.mu.Unlock()
	return "will promote " + copy.Name(), nil
}

// promoteCmd makes a writable snapshot of the copy at the service's path,
// moving aside (never deleting) whatever stale data is there, as after a
// failback. The received copy itself stays read-only: flipping it would
// break later receives. It is the dir primitive's promote (run by hoctl on
// the host, never through a restricted key): the copy is opened by its
// one name in the replication dir, whose names a stream wrote, and
// checked to be the read-only received subvolume with the UUID listed;
// the snapshot is made from that descriptor, so no planted symlink can
// make it read or write anything else.
func (r *Run) promoteCmd(run sshexec.Runner, copyName, uuid string) sshexec.Cmd {
	sub := r.NFS.Subvolume
	aside := sub + ".before-failover-" + r.Opts.Now().UTC().Format("20060102T150405Z")
	return replicate.PromoteCmd(run, r.Ends.TargetDir, copyName, uuid, sub, aside, r.marker())
}

// marker is what the promote step writes and every client must read back
// through its mount: proof that it sees the new primary's data.
func (r *Run) marker() string {
	return fmt.Sprintf("hoctl failover %s to %s %s", r.Opts.Service, r.Opts.To, r.Opts.Token)
}

// promote promotes the copy its before check chose: the replication
// dir cannot change in between (the final sync holds its host lock to
// the run's end, and the primitive checks the copy's UUID), so listing
// it again would only lengthen the outage. Without that check's choice
// (its step retried), it lists again.
func (r *Run) promote(ctx context.Context, env *tasks.Env, h *inventory.Host) (string, error) {
	r.mu.Lock()
	copy := r.chosen
	r.chosen = nil
	r.mu.Unlock()
	if copy == nil {
		var err error
		if copy, err = r.newestCopy(ctx, env); err != nil {
			return "", err
		}
	}
	run, err := env.Connect(ctx, h)
	if err != nil {
		return "", err
	}
	res, err := run.Run(ctx, r.promoteCmd(run, copy.Name(), copy.UUID))
	if err != nil {
		return "", fmt.Errorf("%s: promoting %s: %w", h.Name, copy.Name(), sshexec.OneLine(res, err))
	}
	return r.promoted(copy.Name(), res.Stdout), nil
}

// promoted is the promote step's line: what the primitive moved aside
// (stale data at the service's path, or a directory in the data under the
// marker's name) is the operator's to look at, so its lines are kept.
func (r *Run) promoted(copyName string, stdout []byte) string {
	msg := fmt.Sprintf("%s is a writable snapshot of %s", r.NFS.Subvolume, copyName)
	for _, l := range strings.Split(string(stdout), "\n") {
		if strings.HasPrefix(l, "moved ") {
			msg += "; " + l
		}
	}
	return msg
}

func (r *Run) writableCheck() string {
	sub := r.NFS.Subvolume
	return sshexec.QuoteArgv([]string{"btrfs", "property", "get", "-ts", sub, "ro"}) + " | grep -qx ro=false && " +
		"grep -qx " + sshexec.Quote(r.marker()) + " " + sshexec.Quote(path.Join(sub, ".hoctl-failover"))
}

func (r *Run) clientCheck() string {
	e := r.NFS.Export
	return "stat " + sshexec.Quote(e+"/") + " >/dev/null && grep -qx " + sshexec.Quote(r.marker()) + " " + sshexec.Quote(path.Join(e, ".hoctl-failover"))
}

func (r *Run) servedBy(host string) func(ctx context.Context, _ *tasks.Env, _ *inventory.Host) (string, error) {
	return func(ctx context.Context, _ *tasks.Env, _ *inventory.Host) (string, error) {
		passing, err := r.passing(ctx)
		if err != nil {
			return "", err
		}
		if len(passing) != 1 || passing[0] != host {
			return "", fmt.Errorf("passing %s instances: [%s], want exactly [%s]", r.Opts.Service, strings.Join(passing, ", "), host)
		}
		return "one passing instance, on " + host, nil
	}
}
