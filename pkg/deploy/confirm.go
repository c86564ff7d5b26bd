package deploy

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/hoctl/hoctl/pkg/inventory"
	"github.com/hoctl/hoctl/pkg/sshexec"
	"github.com/hoctl/hoctl/pkg/tasks"
)

// Magic rollback (deploy-rs's idea, done with the host's own systemd):
// before the deploy command activates a new generation, hoctl arms a
// transient timer on the host that switches back to the generation it runs
// now once ConfirmTimeout has passed. After the deploy hoctl must reach the
// host over a new SSH connection (an activation that broke sshd or the
// network cannot be confirmed over the connection it already had) and see
// the after checks pass; only then does it cancel the timer. A generation
// that cuts hoctl off rolls itself back with nobody at the keyboard.

// SystemProfile is the NixOS system profile the rollback sets back.
const SystemProfile = "/nix/var/nix/profiles/system"

// RollbackUnit is the transient unit (timer and service) of h's rollback.
// Host names are letters, digits, '-' and '_', all valid in unit names.
func RollbackUnit(h *inventory.Host) string { return "hoctl-rollback-" + h.Name }

// armScript arms the rollback to generation gen (a store path) on the
// host, firing after timeout. The profile is set back as well as the
// running system, so a reboot does not boot the unconfirmed generation;
// nix-env is pinned now, before the activation can change what PATH
// finds: its directory resolved to the store path it is in, its own name
// kept, because Nix's nix-env is a symlink to the multi-call nix, which
// acts by the name it is called by (resolved to nix, "-p" is an error).
//
// What the rollback runs is a script in /run, and the unit's command is
// only "/bin/sh SCRIPT": systemd writes a transient unit's command line
// escaped into /run/systemd/transient and, on a daemon-reload (which
// every switch-to-configuration does), reads it back garbled (systemd
// 252 turned "$1" into "\$1"), so it must hold no '$', '\', '%' or
// quotes.
//
// The rollback first leaves a marker in /run: a timer that fired just as
// hoctl confirmed cannot then pass for a cancelled one.
func armScript(unit, gen, marker, script string, timeout time.Duration) string {
	return fmt.Sprintf(`set -e
nix_env=$(readlink -f "$(dirname "$(command -v nix-env)")")/nix-env
test -x "$nix_env" || { echo "no nix-env on PATH" >&2; exit 1; }
rm -f %[6]s
umask 077
{
  echo '#!/bin/sh'
  echo '# hoctl deploy'"'"'s magic rollback: back to the generation that ran before an unconfirmed deploy.'
  echo 'set -e'
  printf "nix_env='%%s'\n" "$(printf '%%s' "$nix_env" | sed "s/'/'\\\\''/g")"
  cat <<'HOCTL_ROLLBACK'
touch %[6]s
"$nix_env" -p %[4]s --set %[5]s
%[5]s/bin/switch-to-configuration switch
HOCTL_ROLLBACK
} > %[7]s
systemd-run --quiet --unit=%[1]s --on-active=%[2]dms --timer-property=AccuracySec=100ms \
  --description=%[3]s /bin/sh %[7]s
systemctl is-active --quiet %[1]s.timer`,
		unit, timeout.Milliseconds(), sshexec.Quote("hoctl magic rollback to "+gen), SystemProfile, sshexec.Quote(gen), sshexec.Quote(marker), sshexec.Quote(script))
}

// firedMarker is the file a rollback leaves when it starts.
func firedMarker(unit string) string { return "/run/" + unit + ".fired" }

// rollbackScript is the script the rollback's unit runs.
func rollbackScript(unit string) string { return "/run/" + unit + ".sh" }

// pendingScript prints the states of h's rollback timer and service, and
// whether the host has what arming one needs.
func pendingScript(unit string) string {
	return fmt.Sprintf(`systemctl is-active %[1]s.timer %[1]s.service || true
m=; for c in systemd-run nix-env; do command -v $c >/dev/null || m=$m,$c; done
if [ -n "$m" ]; then echo "missing:${m#,}"; else echo can-arm; fi`, unit)
}

// pending refuses a host whose rollback from an earlier deploy is still
// armed or running (another deploy would cancel or race it), or failed:
// then the host may still run the generation that was never confirmed,
// and the failed transient unit would also keep the next one from being
// armed under its name.
func pending(h *inventory.Host, stdout []byte) error {
	unit := RollbackUnit(h)
	st := strings.Fields(string(stdout))
	if len(st) != 3 {
		return fmt.Errorf("%s: the state of %s.timer and .service unreadable: %q", h.Name, unit, stdout)
	}
	switch timer, service := st[0], st[1]; {
	case st[2] != "can-arm":
		return fmt.Errorf("%s: the magic rollback needs systemd-run and nix-env on the host, and its PATH has no %s: nothing deployed; without it: --confirm-timeout 0",
			h.Name, strings.ReplaceAll(strings.TrimPrefix(st[2], "missing:"), ",", " and no "))
	case timer == "active":
		return fmt.Errorf("%s: an earlier deploy's magic rollback is still armed (%s.timer): let it fire, or cancel it on the host with systemctl stop %s.timer", h.Name, unit, unit)
	case service == "active" || service == "activating" || service == "deactivating" || service == "reloading":
		return fmt.Errorf("%s: an earlier deploy's magic rollback is running now (%s.service): wait for it to finish", h.Name, unit)
	case service == "failed":
		return fmt.Errorf("%s: an earlier deploy's magic rollback failed (journalctl -u %s.service says why), so the host may still run the generation that was never confirmed; once it is set right, clear it with systemctl reset-failed %s.service", h.Name, unit, unit)
	}
	return nil
}

// arm sets h's rollback to the generation it runs before the deploy.
func (r *Run) arm(ctx context.Context, env *tasks.Env, h *inventory.Host) error {
	r.mu.Lock()
	before := r.before[h.Name]
	r.mu.Unlock()
	run, err := env.Connect(ctx, h)
	if err != nil {
		return err
	}
	if res, err := run.Run(ctx, sshexec.Cmd{Script: armScript(RollbackUnit(h), before.generation, firedMarker(RollbackUnit(h)), rollbackScript(RollbackUnit(h)), r.Opts.ConfirmTimeout)}); err != nil {
		return fmt.Errorf("%s: arming the magic rollback (systemd-run, nix-env) failed, nothing deployed: %w", h.Name, sshexec.OneLine(res, err))
	}
	r.mu.Lock()
	r.armed[h.Name] = time.Now()
	r.mu.Unlock()
	return nil
}

// holdBack restarts h's rollback timer every few seconds while the deploy
// command runs, over the run's own connection, so that the confirm
// timeout counts from the command's end, as deploy-rs's does from the
// activation's, and not from before a build and a copy that may take
// longer than it. try-restart restarts only a timer still waiting: one
// that fired is not armed again. The returned release stops it after one
// last restart, and sets the time the host counts from. A heartbeat that
// fails (the activation cut the network) leaves the host counting from
// the last one that passed.
func (r *Run) holdBack(ctx context.Context, env *tasks.Env, h *inventory.Host) (release func()) {
	hold := "systemctl try-restart " + RollbackUnit(h) + ".timer"
	beat := func(ctx context.Context) {
		run, err := env.Connect(ctx, h)
		if err != nil {
			return
		}
		ctx, cancel := context.WithTimeout(ctx, r.Opts.ConfirmTimeout/3)
		defer cancel()
		_, _ = run.Run(ctx, sshexec.Cmd{Script: hold})
	}
	hctx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-hctx.Done():
				return
			case <-time.After(min(5*time.Second, r.Opts.ConfirmTimeout/3)):
			}
			beat(hctx)
		}
	}()
	return func() {
		stop()
		<-done
		r.mu.Lock()
		r.armed[h.Name] = time.Now()
		r.mu.Unlock()
		beat(ctx)
	}
}

// RolledBackError is a host that went back to its previous generation
// because the new one was not confirmed.
type RolledBackError struct {
	Host, Generation string
	Why              error
}

func (e *RolledBackError) Error() string {
	return fmt.Sprintf("%s ROLLED BACK to %s: the new generation was not confirmed (%v)", e.Host, e.Generation, e.Why)
}

func (e *RolledBackError) Unwrap() error { return e.Why }

// confirm proves the deployed host over a new connection, runs health,
// and cancels the rollback; otherwise it lets the rollback happen (or
// starts it at once when the host answers but is unhealthy) and reports
// the host as rolled back.
func (r *Run) confirm(ctx context.Context, env *tasks.Env, h *inventory.Host, health func(context.Context) (string, error)) (string, error) {
	r.mu.Lock()
	before, armedAt := r.before[h.Name], r.armed[h.Name]
	r.mu.Unlock()
	unit := RollbackUnit(h)
	deadline := armedAt.Add(r.Opts.ConfirmTimeout)

	fresh, closeFresh, err := r.freshUntil(ctx, h, deadline, "confirming "+h.Name+" over a new connection")
	if err != nil {
		if ctx.Err() != nil {
			return "", ctx.Err()
		}
		// Not wrapped: the dial's own deadline is not this run being
		// interrupted.
		return "", r.awaitRollback(ctx, h, before, deadline, errors.New("no new SSH connection before the confirm timeout: "+err.Error()))
	}
	defer closeFresh()
	// The checks wait for the host to be healthy at most until the
	// rollback would fire: not healthy by then is not confirmed.
	health = boundedBy(deadline, health)
	if res, err := fresh.Run(ctx, sshexec.Cmd{Script: factsScript}); err == nil {
		if f := strings.Fields(string(res.Stdout)); len(f) == 2 && f[1] != before.bootID {
			// A transient timer does not survive a reboot: there is
			// nothing left to cancel, and nothing will switch back.
			notes, err := health(ctx)
			if err != nil {
				return "", fmt.Errorf("%w; %s rebooted during the deploy, which dropped its magic rollback: nothing switches it back by itself. To roll back: hoctl deploy --rollback %s", err, h.Name, h.Name)
			}
			return notes + "; rebooted during the deploy, which dropped its magic rollback: nothing to cancel", nil
		}
	}
	notes, err := health(ctx)
	if err != nil {
		// It answers but is not healthy: no reason to wait for the timer.
		return "", r.undo(ctx, fresh, h, deadline, err)
	}
	if res, err := fresh.Run(ctx, sshexec.Cmd{Script: cancelScript(unit)}); err != nil || !time.Now().Before(deadline) {
		if err == nil {
			err = errors.New("the confirm timeout passed while the checks ran")
		}
		return "", r.awaitRollback(ctx, h, before, deadline, fmt.Errorf("cancelling the rollback failed: %w", sshexec.OneLine(res, err)))
	}
	return notes + "; confirmed over a new SSH connection, rollback cancelled", nil
}

// cancelScript disarms a rollback that has not fired, and fails if it has.
func cancelScript(unit string) string {
	return "systemctl stop " + unit + ".timer && ! systemctl is-active --quiet " + unit + ".timer && ! test -e " + firedMarker(unit) + " && rm -f " + rollbackScript(unit)
}

// undo ends a deploy that failed on a host whose rollback is armed: when
// the host still runs and boots the generation it ran before (the build
// failed, or the command exited 0 having changed nothing) there is
// nothing to roll back, and the rollback is disarmed rather than left to
// switch the host to what it runs; otherwise the rollback starts at once
// and hoctl waits for it.
func (r *Run) undo(ctx context.Context, run sshexec.Runner, h *inventory.Host, deadline time.Time, why error) error {
	r.mu.Lock()
	before := r.before[h.Name]
	r.mu.Unlock()
	unit := RollbackUnit(h)
	res, err := run.Run(ctx, sshexec.Cmd{Script: "readlink /run/current-system; readlink -f " + SystemProfile})
	if f := strings.Fields(string(res.Stdout)); err == nil && len(f) == 2 && f[0] == before.generation && f[1] == before.generation {
		if _, err := run.Run(ctx, sshexec.Cmd{Script: cancelScript(unit)}); err == nil {
			return fmt.Errorf("%w; %s runs and boots the generation it ran before, so its magic rollback is disarmed: nothing to roll back", why, h.Name)
		}
	}
	// Start the rollback's service first: with its timer stopped first,
	// the transient service could be unloaded before it runs.
	if res, err := run.Run(ctx, sshexec.Cmd{Script: "systemctl start --no-block " + unit + ".service && systemctl stop " + unit + ".timer"}); err != nil {
		// A side note, as text: why stays the cause the exit code is
		// read from.
		why = fmt.Errorf("%w; starting the rollback at once failed too (%s), the timer fires by itself", why, sshexec.FirstLine(res, err))
	}
	return r.awaitRollback(ctx, h, before, deadline, why)
}

// freshUntil dials h anew, again and again, until deadline: an activation
// may restart sshd or the network for a while.
func (r *Run) freshUntil(ctx context.Context, h *inventory.Host, deadline time.Time, waiting string) (sshexec.Runner, func(), error) {
	if r.Clients.Fresh == nil {
		return nil, nil, errors.New("no way to open a new connection")
	}
	var last error
	for {
		cctx, cancel := context.WithDeadline(ctx, deadline)
		run, closeFn, err := r.Clients.Fresh(cctx, h)
		if err == nil {
			_, err = run.Run(cctx, sshexec.Cmd{Argv: []string{"true"}})
			if err == nil && !time.Now().Before(deadline) {
				err = errors.New("connected only after the deadline")
			}
			if err == nil {
				cancel()
				return run, closeFn, nil
			}
			closeFn()
		}
		// An attempt cut by the deadline says less than the one before
		// it ("connection refused").
		if last == nil || cctx.Err() == nil {
			last = err
		}
		cancel()
		if ctx.Err() != nil || !time.Now().Before(deadline) {
			return nil, nil, last
		}
		r.progress(h, waiting)
		select {
		case <-ctx.Done():
			return nil, nil, ctx.Err()
		case <-time.After(min(time.Second, time.Until(deadline))):
		}
	}
}

// awaitRollback waits, past the deadline, for h to answer again on its
// previous generation with its rollback finished: the switch points
// /run/current-system back first and restarts units after, so the link
// alone is not a host that is back.
func (r *Run) awaitRollback(ctx context.Context, h *inventory.Host, before facts, deadline time.Time, why error) error {
	unit := RollbackUnit(h)
	until := deadline.Add(r.Opts.Wait)
	for {
		r.progress(h, "waiting for "+h.Name+" to roll itself back")
		if run, closeFn, err := r.freshUntil(ctx, h, until, "waiting for "+h.Name+" to roll itself back"); err == nil {
			res, err := run.Run(ctx, sshexec.Cmd{Script: "readlink /run/current-system; systemctl is-active " + unit + ".service || true"})
			closeFn()
			if f := strings.Fields(string(res.Stdout)); err == nil && len(f) == 2 {
				switch gen, state := f[0], f[1]; {
				case state == "failed":
					return fmt.Errorf("%s: not confirmed (%w), and its rollback to %s failed on the host (journalctl -u %s.service says why); it runs %s", h.Name, why, before.generation, unit, gen)
				case gen == before.generation && state != "active" && state != "activating" && state != "deactivating":
					return &RolledBackError{Host: h.Name, Generation: before.generation, Why: why}
				}
			}
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if !time.Now().Before(until) {
			return fmt.Errorf("%s: not confirmed (%w), and not seen back on %s within %s past the confirm timeout, when its rollback (%s.timer, on the host) was due: see its console, journalctl -u %s.service",
				h.Name, why, before.generation, r.Opts.Wait, unit, unit)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Second):
		}
	}
}

// boundedBy is health with deadline as its latest end.
func boundedBy(deadline time.Time, health func(context.Context) (string, error)) func(context.Context) (string, error) {
	return func(ctx context.Context) (string, error) {
		ctx, cancel := context.WithDeadline(ctx, deadline)
		defer cancel()
		return health(ctx)
	}
}
