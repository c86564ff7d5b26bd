package failover

import (
	"context"
	"fmt"
	"path"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/hoctl/hoctl/pkg/exitcode"
	"github.com/hoctl/hoctl/pkg/inventory"
	"github.com/hoctl/hoctl/pkg/sshexec"
	"github.com/hoctl/hoctl/pkg/tasks"
)

// FenceDropIn is the runtime drop-in that fences an NFS unit on its old
// primary. `systemctl mask --runtime` cannot: it puts a /dev/null link in
// /run/systemd/system, which systemd reads after /etc/systemd/system, so
// for a unit whose file is in /etc (every unit on NixOS) it silently does
// nothing (systemd#10583, nixpkgs#252591; checked on the lab's real
// systemd). A plain `systemctl mask` cannot either: on NixOS /etc is the
// read-only store, and elsewhere it refuses a unit file in /etc. Drop-ins
// are read from /run whatever directory holds the unit, so this one
// applies on every layout, and it lasts until reboot (/run is a tmpfs),
// after which the unit's own owner-key check is what refuses.
func FenceDropIn(unit string) string {
	return "/run/systemd/system/" + unit + ".d/50-hoctl-fence.conf"
}

// fenceConf refuses every start, manual or by dependency, with an error
// (a Condition would skip the start and report success): the assertion
// holds only while the drop-in itself is absent.
func fenceConf(unit string) string {
	return "# hoctl failover fenced " + unit + " here: another host owns its NFS service.\n" +
		"# Until reboot; hoctl failover back to this host removes it.\n" +
		"[Unit]\nAssertPathExists=!" + FenceDropIn(unit) + "\n"
}

// armCmd loads the fence on the old primary: from its daemon-reload on,
// nothing starts the unit again, while the running server serves on (a
// unit's start assertions do not touch a running unit). It runs before
// the owner key moves, so the reload, slow on a loaded host, is not part
// of the outage.
func armCmd(unit string) string {
	d := FenceDropIn(unit)
	return "mkdir -p " + sshexec.Quote(path.Dir(d)) + " && printf %s " + sshexec.Quote(fenceConf(unit)) + " > " + sshexec.Quote(d) +
		" && systemctl daemon-reload"
}

// disarmCmd takes back a fence armed by a run that then did not move the
// owner key: the old primary stays the owner, and its guard must be able
// to start its unit again after a lease stop.
func disarmCmd(unit string) string {
	return "rm -f " + sshexec.Quote(FenceDropIn(unit)) + " && systemctl daemon-reload"
}

// fenceCmd stops the unit once the fence holds: when systemd has not
// loaded the drop-in (a run resumed after a reboot, or one whose arm step
// was cut short), it arms it first, so from the stop on nothing starts
// the unit again whatever ran before. exportfs is the kernel server's
// (its unexport is belt and braces there); a user-space server such as
// nfs-ganesha has none, and stopping the unit withdraws its exports.
func (r *Run) fenceCmd() string {
	u := r.NFS.Unit
	loaded := sshexec.QuoteArgv([]string{"systemctl", "show", "-p", "DropInPaths", "--value", u}) + " | tr ' ' '\\n' | grep -qxF " + sshexec.Quote(FenceDropIn(u))
	return "if ! " + loaded + "; then " + armCmd(u) + "; fi && " + sshexec.QuoteArgv([]string{"systemctl", "stop", u}) +
		" && { ! command -v exportfs >/dev/null || exportfs -ua; }"
}

// unfenceCmd lifts a fence left by an earlier failover away from this
// host (and a runtime mask, an older hoctl's fence, where there is one),
// then starts the unit; its own owner-key check still decides. This runs
// while nothing serves, so it does no daemon-reload before the start
// (a reload is slow on a loaded host, and `systemctl unmask` is one):
// the fence asserts its own absence, so the start passes once the file
// is gone, and the reload that tidies systemd's view of the unit comes
// after. docs/failover.md, step "start NFS on the target".
//
// A start the unit's own checks refuse is tried again, StartTries in all,
// StartRetryDelay apart: those checks ask Consul, which fails a request
// at once while its servers elect a new leader (a leader lost just after
// the fence), and a failover that stopped there would leave nothing
// serving until an operator resumes it. Each try runs every check again.
func unfenceCmd(unit string) string {
	d, mask := sshexec.Quote(FenceDropIn(unit)), sshexec.Quote("/run/systemd/system/"+unit)
	return "fenced=; if [ -e " + d + " ]; then rm -f " + d + " && fenced=1; fi && " +
		"if [ \"$(readlink " + mask + ")\" = /dev/null ]; then " + sshexec.QuoteArgv([]string{"systemctl", "unmask", "--runtime", unit}) + "; fi && " +
		"{ i=1; until " + sshexec.QuoteArgv([]string{"systemctl", "start", unit}) + "; do " +
		"if [ $i -ge " + strconv.Itoa(StartTries) + " ]; then exit 1; fi; i=$((i+1)); sleep " + strconv.Itoa(int(StartRetryDelay/time.Second)) + "; done; }" +
		" && if [ -n \"$fenced\" ]; then systemctl daemon-reload; fi"
}

// StartTries and StartRetryDelay bound the new primary's start (unfenceCmd):
// a Consul leader election takes a few seconds.
const (
	StartTries      = 3
	StartRetryDelay = 2 * time.Second
)

// RecoveryDirs hold the NFSv4 clients an NFS server recorded in its last
// term on this host, which it lets reclaim their state in the grace
// period it enters at start: nfs-ganesha's (its fs recovery backend, at
// its default RecoveryRoot) and the Linux server's legacy tracker.
func RecoveryDirs() []string {
	return []string{"/var/lib/nfs/ganesha/v4recov", "/var/lib/nfs/ganesha/v4old", "/var/lib/nfs/v4recovery"}
}

// forgetClientsCmd empties dirs (RecoveryDirs) before a failover's start. The
// clients recorded there held state on this host in an earlier term;
// another host has served since, and granted opens and locks that such
// a reclaim would contradict, so none may come back. A server with no
// client to wait for ends its grace at once (nfs-ganesha with NLM off,
// as an NFSv4-only server runs) instead of after its whole grace period
// (90 s by default), during which no client can open a file.
func forgetClientsCmd(dirs []string) string {
	var q []string
	for _, d := range dirs {
		q = append(q, sshexec.Quote(d))
	}
	return "for d in " + strings.Join(q, " ") + `; do if [ -d "$d" ]; then find "$d" -mindepth 1 -delete || exit 1; fi; done`
}

// startCmd is the new primary's start: the earlier term's clients
// forgotten, the fence lifted, the unit started.
func startCmd(unit string) string {
	return forgetClientsCmd(RecoveryDirs()) + " && " + unfenceCmd(unit)
}

func (r *Run) fenceDesc() string {
	d := fmt.Sprintf("consul kv cas %s %s → %s", r.NFS.OwnerKey, r.Opts.From, r.Opts.To)
	if r.Opts.PrimaryDown {
		return d + "; " + r.Opts.From + " is powered off (--primary-down): nothing to stop there"
	}
	return d + "; on " + r.Opts.From + ": " + r.fenceCmd()
}

// fenceBeforeDesc is the fence's before check as planned.
func (r *Run) fenceBeforeDesc() string {
	d := fmt.Sprintf("consul kv %s is %s (or unset)", r.NFS.OwnerKey, r.Opts.From)
	if r.Opts.FenceCut {
		d += fmt.Sprintf(", or %s: written by this run's fence before it was cut short", r.Opts.To)
	}
	return d
}

// fenceBefore is the fence's before check: the owner key names the old
// primary (or is unset). In a run resumed after its fence was cut short
// (Options.FenceCut), a key naming the new primary passes too: that
// fence's compare-and-set wrote it, and what is left is the old
// primary's stop, which the fence still does before anything starts.
func (r *Run) fenceBefore(ctx context.Context, env *tasks.Env, h *inventory.Host) (string, error) {
	out, err := r.ownerIs(r.Opts.From, true)(ctx, env, h)
	if err == nil || !r.Opts.FenceCut {
		return out, err
	}
	if moved, merr := r.movedByCutFence(ctx); merr != nil || !moved {
		return out, err
	}
	return "owner " + r.Opts.To + ", written by this run's fence before it was cut short: " + r.Opts.From + " still to be stopped", nil
}

// movedByCutFence says whether the owner key names the new primary in a
// run resumed after its fence was cut short: the cut fence moved it.
func (r *Run) movedByCutFence(ctx context.Context) (bool, error) {
	if !r.Opts.FenceCut {
		return false, nil
	}
	c, err := r.Consul(ctx)
	if err != nil {
		return false, err
	}
	v, _, ok, err := c.Get(ctx, r.NFS.OwnerKey)
	return err == nil && ok && v == r.Opts.To, err
}

// fence moves the owner key first: from then on the old primary's unit
// refuses to start, whatever happens next; then it stops what serves.
// A resumed run whose cut fence already moved the key (movedByCutFence)
// only stops: the key is not written again, and the run does not know
// when it moved (a --primary-down start waits out a whole lease from
// now).
func (r *Run) fence(ctx context.Context, env *tasks.Env, _ *inventory.Host) (string, error) {
	o := r.Opts
	c, err := r.Consul(ctx)
	if err != nil {
		return "", err
	}
	v, idx, ok, err := c.Get(ctx, r.NFS.OwnerKey)
	if err != nil {
		return "", err
	}
	if o.FenceCut && ok && v == o.To {
		return r.stopOld(ctx, env, "owner "+o.To+" (moved by this run's fence before it was cut short)")
	}
	if ok && v != o.From {
		return "", r.disarm(ctx, env, fmt.Errorf("owner key %s changed to %q meanwhile", r.NFS.OwnerKey, v))
	}
	if !ok {
		idx = 0
	}
	won, err := c.CAS(ctx, r.NFS.OwnerKey, o.To, idx)
	if err != nil {
		return "", err
	}
	if !won {
		return "", r.disarm(ctx, env, fmt.Errorf("owner key %s changed while it was being moved: someone else is at work", r.NFS.OwnerKey))
	}
	moved := time.Now()
	// The write's own index: read back at once, a value naming o.To
	// means no write that named the old primary came in between.
	v, movedIdx, ok, err := c.Get(ctx, r.NFS.OwnerKey)
	if err != nil || !ok || v != o.To {
		movedIdx = 0
	}
	r.mu.Lock()
	r.keyMoved, r.movedIndex = moved, movedIdx
	r.mu.Unlock()
	return r.stopOld(ctx, env, "owner "+o.To)
}

// stopOld is the fence's part after the owner key moved (owner says
// so): the old primary fenced and stopped over SSH, or nothing with
// --primary-down.
func (r *Run) stopOld(ctx context.Context, env *tasks.Env, owner string) (string, error) {
	o := r.Opts
	if o.PrimaryDown {
		return fmt.Sprintf("%s; %s powered off (operator's word)", owner, o.From), nil
	}
	run, err := env.Connect(ctx, r.Inv.Host(o.From))
	if err != nil {
		return "", err
	}
	if res, err := run.Run(ctx, sshexec.Cmd{Script: r.fenceCmd()}); err != nil {
		return "", fmt.Errorf("%s: stopping %s: %w", o.From, r.NFS.Unit, sshexec.OneLine(res, err))
	}
	return fmt.Sprintf("%s; %s fenced (%s) and stopped on %s", owner, r.NFS.Unit, FenceDropIn(r.NFS.Unit), o.From), nil
}

// armDesc is the arm step's action as planned.
func (r *Run) armDesc() string {
	return "on " + r.Opts.From + ": " + armCmd(r.NFS.Unit)
}

// arm loads the fence on the old primary before the owner key moves.
func (r *Run) arm(ctx context.Context, env *tasks.Env, _ *inventory.Host) (string, error) {
	run, err := env.Connect(ctx, r.Inv.Host(r.Opts.From))
	if err != nil {
		return "", err
	}
	if res, err := run.Run(ctx, sshexec.Cmd{Script: armCmd(r.NFS.Unit)}); err != nil {
		return "", fmt.Errorf("%s: arming the fence of %s: %w", r.Opts.From, r.NFS.Unit, sshexec.OneLine(res, err))
	}
	return fmt.Sprintf("%s fenced against any new start on %s (%s); it serves on until the fence stops it", r.NFS.Unit, r.Opts.From, FenceDropIn(r.NFS.Unit)), nil
}

// disarmedMark is in every error of a fence whose compare-and-set did
// not move the owner key (disarm): a resume reads it in the journal
// (fenceCut).
const disarmedMark = "the fence armed on"

// disarm removes the armed fence after the owner key was found not to
// move (cause), and returns cause, with what it left behind if it could
// not.
func (r *Run) disarm(ctx context.Context, env *tasks.Env, cause error) error {
	if r.Opts.PrimaryDown {
		return cause
	}
	run, err := env.Connect(ctx, r.Inv.Host(r.Opts.From))
	if err == nil {
		var res *sshexec.Result
		if res, err = run.Run(ctx, sshexec.Cmd{Script: disarmCmd(r.NFS.Unit)}); err == nil {
			return fmt.Errorf("%w (%s %s was removed: it serves on, and may start again)", cause, disarmedMark, r.Opts.From)
		}
		err = sshexec.OneLine(res, err)
	}
	return fmt.Errorf("%w (%s %s is still there: %s refuses to start there until `rm %s && systemctl daemon-reload`: %w)", cause, disarmedMark, r.Opts.From, r.NFS.Unit, FenceDropIn(r.NFS.Unit), err)
}

func (r *Run) fenced(ctx context.Context, env *tasks.Env, _ *inventory.Host) (string, error) {
	o := r.Opts
	passing, err := r.passing(ctx)
	if err != nil {
		return "", err
	}
	if slices.Contains(passing, o.From) {
		return "", fmt.Errorf("Consul still has a passing %s instance on %s", o.Service, o.From)
	}
	run, err := env.Connect(ctx, r.Inv.Host(o.From))
	if err != nil {
		return "", err
	}
	if _, err := run.Run(ctx, sshexec.Cmd{Argv: []string{"systemctl", "is-active", "-q", r.NFS.Unit}}); err == nil {
		return "", fmt.Errorf("%s is still active on %s", r.NFS.Unit, o.From)
	}
	return fmt.Sprintf("no passing instance on %s; %s inactive there", o.From, r.NFS.Unit), nil
}

// changedError is a step that stopped after the fence moved the owner
// key: whatever it says of itself (a replication refused, exit 3,
// "nothing was changed"), the failover has changed things, so it exits
// 1 and says how to go on.
type changedError struct{ err error }

func (e *changedError) Error() string {
	return e.err.Error() + " (the failover has moved the owner key and fenced the old primary: fix this, then hoctl resume RUN-ID)"
}

// ExitCode is exitcode.Failed, not the refusal of the error it holds.
func (e *changedError) ExitCode() int { return exitcode.Failed }

// afterFenceStep makes a refusal of step's action, which runs after the
// fence, exit 1 (afterFence).
func afterFenceStep(s *tasks.Step) {
	if f, ok := s.Action.(*tasks.Func); ok {
		f.Fn = afterFence(f.Fn)
	}
}

// afterFence wraps the action of a step after the fence: an error that
// would exit 3 becomes a changedError (exit 1). Other errors keep their
// codes (an unreachable host is still 4).
func afterFence(fn func(context.Context, *tasks.Env, *inventory.Host) (string, error)) func(context.Context, *tasks.Env, *inventory.Host) (string, error) {
	return func(ctx context.Context, env *tasks.Env, h *inventory.Host) (string, error) {
		out, err := fn(ctx, env, h)
		if err != nil && exitcode.Of(err) == exitcode.Refused {
			return out, &changedError{err: err}
		}
		return out, err
	}
}
