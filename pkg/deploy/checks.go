package deploy

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	consulapi "github.com/hashicorp/consul/api"
	nomadapi "github.com/hashicorp/nomad/api"
	"github.com/hoctl/hoctl/pkg/httpapi"
	"github.com/hoctl/hoctl/pkg/inventory"
	"github.com/hoctl/hoctl/pkg/nomad"
	"github.com/hoctl/hoctl/pkg/sshexec"
	"github.com/hoctl/hoctl/pkg/tasks"
)

func (r *Run) preflight(targets []*inventory.Host, quorum bool) func(ctx context.Context, env *tasks.Env, _ *inventory.Host) (string, error) {
	return func(ctx context.Context, env *tasks.Env, _ *inventory.Host) (string, error) {
		var errs []string
		var mu sync.Mutex
		sshexec.ForEach(ctx, 0, targets, func(ctx context.Context, _ int, h *inventory.Host) {
			if _, err := env.Connect(ctx, h); err != nil {
				mu.Lock()
				errs = append(errs, fmt.Sprintf("%s: %v", h.Name, err))
				mu.Unlock()
			}
		})
		if len(errs) > 0 {
			return "", fmt.Errorf("unreachable, nothing deployed: %s", strings.Join(errs, "; "))
		}
		state, err := r.quorumHealth(ctx, quorum)
		if err != nil {
			return "", err
		}
		return fmt.Sprintf("%d targets reachable; %s", len(targets), state), nil
	}
}

// quorumHealth checks the leaders and, when strict, that each cluster can
// lose one server (autopilot failure tolerance ≥ 1).
func (r *Run) quorumHealth(ctx context.Context, strict bool) (string, error) {
	var parts []string
	if r.Clients.Consul != nil {
		part, err := r.consulQuorum(ctx, strict)
		if err != nil {
			return "", err
		}
		parts = append(parts, part)
	}
	if r.Clients.Nomad != nil {
		part, err := r.nomadQuorum(ctx, strict)
		if err != nil {
			return "", err
		}
		parts = append(parts, part)
	}
	if len(parts) == 0 {
		return "no consul or nomad in the inventory", nil
	}
	return strings.Join(parts, ", "), nil
}

// consulQuorum is quorumHealth's Consul half.
func (r *Run) consulQuorum(ctx context.Context, strict bool) (string, error) {
	c, err := r.Clients.Consul(ctx)
	if err != nil {
		return "", err
	}
	leader, err := c.Status().LeaderWithQueryOptions((&consulapi.QueryOptions{}).WithContext(ctx))
	if err != nil {
		return "", httpapi.Clean(err, "consul leader")
	}
	if leader == "" {
		return "", errors.New("consul has no leader")
	}
	if !strict {
		return "consul leader " + leader, nil
	}
	h, err := c.Operator().AutopilotServerHealth((&consulapi.QueryOptions{}).WithContext(ctx))
	if h == nil {
		if err == nil {
			err = errors.New("no answer")
		}
		return "", httpapi.Clean(err, "consul autopilot health")
	}
	if h.FailureTolerance < 1 {
		return "", fmt.Errorf("consul can lose no server now (failure tolerance %d): a quorum member must not go down", h.FailureTolerance)
	}
	return fmt.Sprintf("consul failure tolerance %d", h.FailureTolerance), nil
}

// nomadQuorum is quorumHealth's Nomad half. Autopilot's report of an
// unhealthy cluster comes as Nomad's 429 (nomad.AutopilotHealth reads
// it), and refuses as the report says.
func (r *Run) nomadQuorum(ctx context.Context, strict bool) (string, error) {
	c, err := r.Clients.Nomad(ctx)
	if err != nil {
		return "", err
	}
	var leader string
	_, err = c.Raw().Query("/v1/status/leader", &leader, (&nomadapi.QueryOptions{}).WithContext(ctx))
	if err != nil {
		return "", httpapi.Clean(err, "nomad leader")
	}
	if leader == "" {
		return "", errors.New("nomad has no leader")
	}
	if !strict {
		return "nomad leader " + leader, nil
	}
	h, err := nomad.AutopilotHealth(ctx, c)
	if err != nil {
		return "", fmt.Errorf("nomad autopilot: unhealthy (%w): a quorum member must not go down", httpapi.Clean(err, ""))
	}
	if !h.Healthy {
		why := fmt.Sprintf("failure tolerance %d", h.FailureTolerance)
		if bad := nomad.UnhealthyServers(h); len(bad) > 0 {
			why += ", unhealthy: " + strings.Join(bad, ", ")
		}
		return "", fmt.Errorf("nomad autopilot: unhealthy (%s): a quorum member must not go down", why)
	}
	if h.FailureTolerance < 1 {
		return "", fmt.Errorf("nomad can lose no server now (failure tolerance %d): a quorum member must not go down", h.FailureTolerance)
	}
	return fmt.Sprintf("nomad failure tolerance %d", h.FailureTolerance), nil
}

const factsScript = `readlink /run/current-system; cat /proc/sys/kernel/random/boot_id`

func (r *Run) facts(ctx context.Context, env *tasks.Env, h *inventory.Host) (facts, error) {
	run, err := env.Connect(ctx, h)
	if err != nil {
		return facts{}, err
	}
	res, err := run.Run(ctx, sshexec.Cmd{Script: factsScript})
	if err != nil {
		return facts{}, err
	}
	f := strings.Fields(string(res.Stdout))
	if len(f) != 2 {
		return facts{}, fmt.Errorf("%s: /run/current-system or the boot id unreadable: %q", h.Name, res.Stdout)
	}
	return facts{generation: f[0], bootID: f[1]}, nil
}

func (r *Run) beforeHost(quorum bool) func(ctx context.Context, env *tasks.Env, h *inventory.Host) (string, error) {
	return func(ctx context.Context, env *tasks.Env, h *inventory.Host) (string, error) {
		var state string
		if quorum {
			var err error
			if state, err = r.quorumHealth(ctx, true); err != nil {
				return "", err
			}
			state = "; " + state
		}
		f, err := r.facts(ctx, env, h)
		if err != nil {
			return "", err
		}
		if r.magic() {
			run, err := env.Connect(ctx, h)
			if err != nil {
				return "", err
			}
			res, err := run.Run(ctx, sshexec.Cmd{Script: pendingScript(RollbackUnit(h))})
			if err != nil {
				return "", fmt.Errorf("%s: reading the state of its magic rollback: %w", h.Name, sshexec.OneLine(res, err))
			}
			if err := pending(h, res.Stdout); err != nil {
				return "", err
			}
		}
		r.mu.Lock()
		r.before[h.Name] = f
		r.mu.Unlock()
		return "running " + f.generation + state, nil
	}
}
func (r *Run) afterHost(quorum bool) func(ctx context.Context, env *tasks.Env, h *inventory.Host) (string, error) {
	return func(ctx context.Context, env *tasks.Env, h *inventory.Host) (string, error) {
		var notes string
		var err error
		if r.magic() {
			notes, err = r.confirm(ctx, env, h, func(ctx context.Context) (string, error) { return r.health(ctx, env, h, quorum) })
		} else if notes, err = r.health(ctx, env, h, quorum); err != nil {
			// Nothing switches it back by itself: say what is left and
			// the way back, as the deploy command's own failure does.
			return "", fmt.Errorf("%w; %s stays on the new generation%s. To roll back: hoctl deploy --rollback %s", err, h.Name, r.leftDrained(ctx, h), h.Name)
		}
		if err != nil {
			return "", err
		}
		// Eligible only once healthy and, with the magic rollback,
		// confirmed: a node made eligible just before its rollback
		// fired would take allocations on a host switching back.
		eligible, err := r.eligible(ctx, h)
		if err != nil {
			return "", err
		}
		return notes + eligible, nil
	}
}

// leftDrained says that h's Nomad node stays drained, if h is a client.
func (r *Run) leftDrained(ctx context.Context, h *inventory.Host) string {
	if _, node, err := r.nomadNode(ctx, h); err == nil && node != nil {
		return ", its Nomad node drained and ineligible"
	}
	return ""
}

// eligible marks h's Nomad node eligible again after its deploy.
func (r *Run) eligible(ctx context.Context, h *inventory.Host) (string, error) {
	c, node, err := r.nomadNode(ctx, h)
	if err != nil || node == nil {
		return "", err
	}
	if _, err := c.Nodes().ToggleEligibility(node.ID, true, (&nomadapi.WriteOptions{}).WithContext(ctx)); err != nil {
		return "", fmt.Errorf("%s: marking eligible: %w", h.Name, httpapi.Clean(err, ""))
	}
	return "; nomad node eligible again", nil
}

// health is the after check of one host's deploy; it changes nothing.
func (r *Run) health(ctx context.Context, env *tasks.Env, h *inventory.Host, quorum bool) (string, error) {
	r.mu.Lock()
	before := r.before[h.Name]
	r.mu.Unlock()
	ctx, cancel := context.WithTimeout(ctx, r.Opts.Wait)
	defer cancel()
	// A reboot kills the run's connection; the pool dials again once
	// it knows the old one is dead, so retry until the wait ends.
	var now facts
	for {
		var err error
		if now, err = r.facts(ctx, env, h); err == nil {
			break
		}
		if ctx.Err() != nil {
			return "", fmt.Errorf("%s did not come back within %s: %w", h.Name, r.Opts.Wait, err)
		}
		r.progress(h, "waiting for "+h.Name+" to come back")
		select {
		case <-ctx.Done():
		case <-time.After(time.Second):
		}
	}
	var notes []string
	if now.generation == before.generation {
		return "", fmt.Errorf("%s still runs %s: the deploy command exited 0 but the system generation did not change (nothing deployed, or rolled back)", h.Name, now.generation)
	}
	notes = append(notes, "now "+now.generation)
	if now.bootID != before.bootID {
		notes = append(notes, "rebooted")
	}
	// Up on its new generation; healthy within the same wait. What the
	// activation restarted takes a moment to pass again: Consul runs each
	// check on its own interval (Nomad's every 10 s), so a check last run
	// before the switch, or during it, is read until it runs again; a
	// restarted server is unhealthy to autopilot for a while. Only a
	// failed unit stays as it is.
	for {
		more, final, err := r.healthy(ctx, env, h, quorum)
		if err == nil {
			return strings.Join(append(notes, more...), "; "), nil
		}
		if final {
			return "", err
		}
		if ctx.Err() != nil {
			return "", fmt.Errorf("%s not healthy in time: %w", h.Name, err)
		}
		r.progress(h, "waiting for "+h.Name+" to be healthy: "+err.Error())
		select {
		case <-ctx.Done():
		case <-time.After(time.Second):
		}
	}
}

// healthy is one look at a host on its new generation: systemd running
// with no failed unit (final when not: a failed unit stays failed), the
// Consul agent alive with passing checks, the Nomad node ready and, for a
// quorum member, each cluster able to lose a server again.
func (r *Run) healthy(ctx context.Context, env *tasks.Env, h *inventory.Host, quorum bool) (notes []string, final bool, err error) {
	run, err := env.Connect(ctx, h)
	if err != nil {
		return nil, false, err
	}
	res, err := run.Run(ctx, sshexec.Cmd{Script: "systemctl is-system-running; systemctl --failed --plain --no-legend | awk '{print $1}'"})
	if res == nil {
		return nil, false, err
	}
	lines := strings.Fields(string(res.Stdout))
	if len(lines) == 0 || lines[0] != "running" {
		state := strings.Join(lines[:min(1, len(lines))], "")
		return nil, state == "degraded", fmt.Errorf("%s: systemctl is-system-running says %q; failed units: %s", h.Name, state, strings.Join(lines[min(1, len(lines)):], ", "))
	}
	if err := r.consulBack(ctx, h); err != nil {
		return nil, false, err
	}
	_, node, err := r.nomadNode(ctx, h)
	if err != nil {
		return nil, false, err
	}
	if node != nil {
		if node.Status != "ready" {
			return nil, false, fmt.Errorf("%s: nomad node %s, not ready", h.Name, node.Status)
		}
		notes = append(notes, "nomad node ready")
	}
	if quorum {
		state, err := r.quorumHealth(ctx, true)
		if err != nil {
			return nil, false, fmt.Errorf("after %s: %w", h.Name, err)
		}
		notes = append(notes, state)
	}
	return notes, false, nil
}

// consulBack checks that the host's Consul agent is alive and its checks
// pass (hosts that are not Consul members are skipped).
func (r *Run) consulBack(ctx context.Context, h *inventory.Host) error {
	if r.Clients.Consul == nil {
		return nil
	}
	c, err := r.Clients.Consul(ctx)
	if err != nil {
		return err
	}
	// Agent().Members takes no context; the raw call to its endpoint does.
	var members []*consulapi.AgentMember
	_, err = c.Raw().Query("/v1/agent/members", &members, (&consulapi.QueryOptions{}).WithContext(ctx))
	if err != nil {
		return httpapi.Clean(err, "consul members")
	}
	member := false
	for _, m := range members {
		if m.Name == h.Name {
			member = true
			if m.Status != 1 {
				return fmt.Errorf("%s: the Consul agent is not alive (serf status %d)", h.Name, m.Status)
			}
		}
	}
	if !member {
		return nil
	}
	checks, _, err := c.Health().Node(h.Name, (&consulapi.QueryOptions{}).WithContext(ctx))
	if err != nil {
		return httpapi.Clean(err, "consul checks of "+h.Name)
	}
	for _, ch := range checks {
		if ch.Status != consulapi.HealthPassing {
			return fmt.Errorf("%s: Consul check %q is %s", h.Name, ch.Name, ch.Status)
		}
	}
	return nil
}
