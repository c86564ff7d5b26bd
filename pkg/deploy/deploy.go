// Package deploy is the rolling NixOS deploy: hosts outside the quorum
// first (a few at a time), then quorum members strictly one by one, each
// drained from Nomad, deployed by the operator's own command (deploy-rs,
// nixos-rebuild), and checked back to health before the next host. A
// command that exits 0 without changing the system generation is not
// taken for a deploy.
package deploy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"sort"
	"strings"
	"sync"
	"text/template"
	"time"

	consulapi "github.com/hashicorp/consul/api"
	nomadapi "github.com/hashicorp/nomad/api"
	"github.com/hoctl/hoctl/pkg/hostout"
	"github.com/hoctl/hoctl/pkg/httpapi"
	"github.com/hoctl/hoctl/pkg/inventory"
	"github.com/hoctl/hoctl/pkg/sshexec"
	"github.com/hoctl/hoctl/pkg/tasks"
)

// KindDeploy is the journal kind of a deploy.
const KindDeploy = "deploy"

// Options shape one rollout.
type Options struct {
	Parallel int // hosts outside the quorum deployed at once
	// DrainDeadline is Nomad's drain deadline; Wait bounds each wait for
	// health after a host's deploy.
	DrainDeadline time.Duration
	Wait          time.Duration
	// Output receives the deploy command's output, as it comes, each
	// line under its host's name and sanitised (hostout): the command
	// relays what the host prints while it rebuilds.
	Output io.Writer
	// OutputLock, when set, is held around each write to Output, so
	// hosts deployed at once do not cut into each other's lines.
	OutputLock sync.Locker
	// Rollback switches each host back to its previous system generation
	// (on the host: RollbackCommand) instead of running deploy.command.
	Rollback bool
	// Progress reports waits (drain, health).
	Progress func(host, msg string)
	// ConfirmTimeout, when set, arms the magic rollback (confirm.go): a
	// host not confirmed over a new connection within it goes back to
	// its previous generation by itself.
	ConfirmTimeout time.Duration
}

// Clients reach the cluster's APIs; either may be nil when the inventory
// has no such section.
type Clients struct {
	Consul func(ctx context.Context) (*consulapi.Client, error)
	Nomad  func(ctx context.Context) (*nomadapi.Client, error)
	// Fresh opens a new SSH connection to h, outside the run's pool,
	// and a func that closes it: the magic rollback's proof that the
	// host can still be reached after its activation.
	Fresh func(ctx context.Context, h *inventory.Host) (sshexec.Runner, func(), error)
}

// Run is one rollout's state: what each host ran before its deploy.
type Run struct {
	Inv     *inventory.Inventory
	Opts    Options
	Clients Clients
	cmd     *template.Template

	mu     sync.Mutex
	before map[string]facts
	armed  map[string]time.Time // when each host's rollback was armed
}

type facts struct {
	generation, bootID string
}

// Order splits the targets: hosts outside the quorum first, then the
// quorum members, each in inventory order.
func Order(inv *inventory.Inventory, targets []*inventory.Host) (others, quorum []*inventory.Host) {
	q := map[string]bool{}
	if inv.Deploy.Quorum != "" {
		if hs, err := inv.Select(inv.Deploy.Quorum); err == nil {
			for _, h := range hs {
				q[h.Name] = true
			}
		}
	}
	pos := map[string]int{}
	for i, n := range inv.HostNames() {
		pos[n] = i
	}
	sorted := append([]*inventory.Host(nil), targets...)
	sort.SliceStable(sorted, func(i, j int) bool { return pos[sorted[i].Name] < pos[sorted[j].Name] })
	for _, h := range sorted {
		if q[h.Name] {
			quorum = append(quorum, h)
		} else {
			others = append(others, h)
		}
	}
	return others, quorum
}

// Runbook builds the rollout of targets (managed hosts only).
func Runbook(inv *inventory.Inventory, targets []*inventory.Host, clients Clients, o Options) (*tasks.Runbook, *Run, error) {
	for _, h := range targets {
		if !h.IsManaged() {
			return nil, nil, fmt.Errorf("%s is managed: false: hoctl checks and reads it, never deploys it", h.Name)
		}
	}
	if o.Parallel < 1 {
		o.Parallel = 1
	}
	if o.Wait == 0 {
		o.Wait = 5 * time.Minute
	}
	if o.DrainDeadline == 0 {
		o.DrainDeadline = time.Hour
	}
	t, err := template.New("deploy").Option("missingkey=error").Parse(inv.Deploy.Command)
	if err != nil {
		return nil, nil, fmt.Errorf("deploy.command: %w", err)
	}
	r := &Run{Inv: inv, Opts: o, Clients: clients, cmd: t, before: map[string]facts{}, armed: map[string]time.Time{}}
	others, quorum := Order(inv, targets)
	steps := []*tasks.Step{{
		Title:  "preflight: every target reachable, Consul and Nomad have a leader" + map[bool]string{true: ", and can lose one server", false: ""}[len(quorum) > 0],
		Before: &tasks.Func{Desc: "connect to each target; leaders; autopilot failure tolerance ≥ 1 when a quorum member is in the rollout", Fn: r.preflight(targets, len(quorum) > 0)},
		Action: &tasks.Func{Desc: "nothing: the order is " + names(others) + " then " + names(quorum), Fn: func(context.Context, *tasks.Env, *inventory.Host) (string, error) {
			return "order: " + strings.Join(append(nameList(others), nameList(quorum)...), ", "), nil
		}},
	}}
	if len(others) > 0 {
		steps = append(steps, r.hostStep("deploy "+names(others)+fmt.Sprintf(" (%d at a time)", o.Parallel), others, o.Parallel, false))
	}
	for _, h := range quorum {
		steps = append(steps, r.hostStep("deploy quorum member "+h.Name, []*inventory.Host{h}, 1, true))
	}
	verb := "deploy "
	if o.Rollback {
		verb = "roll back "
	}
	return &tasks.Runbook{
		Name:        verb + strings.Join(append(nameList(others), nameList(quorum)...), ", "),
		Lock:        "deploy",
		ClusterLock: inv.Consul != nil,
		Steps:       steps,
		Kind:        KindDeploy,
		Params:      map[string]string{"targets": strings.Join(append(nameList(others), nameList(quorum)...), ",")},
	}, r, nil
}

func nameList(hs []*inventory.Host) []string {
	var out []string
	for _, h := range hs {
		out = append(out, h.Name)
	}
	return out
}

func names(hs []*inventory.Host) string {
	if len(hs) == 0 {
		return "(none)"
	}
	return strings.Join(nameList(hs), ", ")
}

// RollbackCommand makes the system profile's previous generation current
// and switches to it, on the host.
const RollbackCommand = "nix-env --rollback -p /nix/var/nix/profiles/system && /nix/var/nix/profiles/system/bin/switch-to-configuration switch"

// Command is the deploy command for h, from deploy.command.
func (r *Run) Command(h *inventory.Host) (string, error) {
	var b strings.Builder
	if err := r.cmd.Execute(&b, tasks.TemplateData{Host: h.Name, HostInfo: h, Vars: tasks.InventoryVars(r.Inv, h), Inventory: r.Inv}); err != nil {
		return "", err
	}
	return b.String(), nil
}

func (r *Run) hostStep(title string, hosts []*inventory.Host, serial int, quorum bool) *tasks.Step {
	return &tasks.Step{
		Title:  title,
		Hosts:  hosts,
		Serial: serial,
		Before: &tasks.Func{DescFn: func(h *inventory.Host) string {
			d := "readlink /run/current-system; boot id"
			if quorum {
				d = "Consul and Nomad leaders and failure tolerance ≥ 1; " + d
			}
			return d
		}, Fn: r.beforeHost(quorum)},
		Action: &tasks.Func{DescFn: func(h *inventory.Host) string {
			drain := "drain the Nomad node (ignore system jobs, deadline " + r.Opts.DrainDeadline.String() + ") and mark it ineligible; "
			if r.Opts.Rollback {
				return drain + "on " + h.Name + ": " + RollbackCommand
			}
			c, err := r.Command(h)
			if err != nil {
				c = "deploy.command: " + err.Error()
			}
			return drain + "run on this machine: " + c
		}, Fn: r.deployHost},
		After: &tasks.Func{Desc: "reachable; the generation changed; systemctl is-system-running = running; the Consul agent alive with passing checks; the Nomad node ready, then eligible again; failure tolerance back", Fn: r.afterHost(quorum)},
	}
}

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
		if strict {
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
			parts = append(parts, fmt.Sprintf("consul failure tolerance %d", h.FailureTolerance))
		} else {
			parts = append(parts, "consul leader "+leader)
		}
	}
	if r.Clients.Nomad != nil {
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
		if strict {
			h, _, err := c.Operator().AutopilotServerHealth((&nomadapi.QueryOptions{}).WithContext(ctx))
			if err != nil {
				return "", fmt.Errorf("nomad autopilot: unhealthy (%w): a quorum member must not go down", httpapi.Clean(err, ""))
			}
			if h.FailureTolerance < 1 {
				return "", fmt.Errorf("nomad can lose no server now (failure tolerance %d): a quorum member must not go down", h.FailureTolerance)
			}
			parts = append(parts, fmt.Sprintf("nomad failure tolerance %d", h.FailureTolerance))
		} else {
			parts = append(parts, "nomad leader "+leader)
		}
	}
	if len(parts) == 0 {
		return "no consul or nomad in the inventory", nil
	}
	return strings.Join(parts, ", "), nil
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

// nomadNode finds the Nomad client node of h (by name); nil when h is not
// a Nomad client.
func (r *Run) nomadNode(ctx context.Context, h *inventory.Host) (*nomadapi.Client, *nomadapi.NodeListStub, error) {
	if r.Clients.Nomad == nil {
		return nil, nil, nil
	}
	c, err := r.Clients.Nomad(ctx)
	if err != nil {
		return nil, nil, err
	}
	nodes, _, err := c.Nodes().List((&nomadapi.QueryOptions{}).WithContext(ctx))
	if err != nil {
		return nil, nil, httpapi.Clean(err, "nomad nodes")
	}
	for _, n := range nodes {
		if n.Name == h.Name {
			return c, n, nil
		}
	}
	return c, nil, nil
}

func (r *Run) progress(h *inventory.Host, msg string) {
	if r.Opts.Progress != nil {
		r.Opts.Progress(h.Name, msg)
	}
}

// deployHost drains the host's Nomad node, then runs the deploy command
// on this machine, its output streamed.
func (r *Run) deployHost(ctx context.Context, env *tasks.Env, h *inventory.Host) (string, error) {
	var notes []string
	c, node, err := r.nomadNode(ctx, h)
	if err != nil {
		return "", err
	}
	if node == nil {
		notes = append(notes, "not a Nomad client: no drain")
	} else {
		_, err := c.Nodes().UpdateDrainOpts(node.ID, &nomadapi.DrainOptions{DrainSpec: &nomadapi.DrainSpec{Deadline: r.Opts.DrainDeadline, IgnoreSystemJobs: true}},
			(&nomadapi.WriteOptions{}).WithContext(ctx))
		if err != nil {
			return "", fmt.Errorf("draining %s: %w", h.Name, httpapi.Clean(err, ""))
		}
		for {
			n, _, err := c.Nodes().Info(node.ID, (&nomadapi.QueryOptions{}).WithContext(ctx))
			if err != nil {
				return "", fmt.Errorf("draining %s: %w", h.Name, httpapi.Clean(err, ""))
			}
			if n.DrainStrategy == nil {
				break
			}
			r.progress(h, "draining: allocations moving off "+h.Name)
			select {
			case <-ctx.Done():
				return "", ctx.Err()
			case <-time.After(200 * time.Millisecond):
			}
		}
		notes = append(notes, "drained and ineligible")
	}
	var tail tailBuffer
	out := io.Writer(&tail)
	if r.Opts.Output != nil {
		out = &teeWriter{tail: &tail, shown: hostout.New(r.Opts.Output, h.Name+" | ", r.Opts.OutputLock)}
	}
	if r.Opts.Rollback {
		run, err := env.Connect(ctx, h)
		if err != nil {
			return "", err
		}
		_, err = run.Run(ctx, sshexec.Cmd{Script: RollbackCommand, Stdout: out, Stderr: out})
		if tw, ok := out.(*teeWriter); ok {
			tw.shown.Flush()
		}
		if err != nil {
			return "", fmt.Errorf("rollback on %s failed (%w): %s; the node stays drained and ineligible", h.Name, err, tail.last())
		}
		return strings.Join(append(notes, "switched to the previous generation"), "; "), nil
	}
	line, err := r.Command(h)
	if err != nil {
		return "", fmt.Errorf("deploy.command: %w", err)
	}
	release := func() {}
	if r.magic() {
		if err := r.arm(ctx, env, h); err != nil {
			return "", err
		}
		release = r.holdBack(ctx, env, h)
		notes = append(notes, fmt.Sprintf("magic rollback armed (%s from the deploy command's end)", r.Opts.ConfirmTimeout))
	}
	cmd := exec.CommandContext(ctx, "sh", "-c", line)
	cmd.Stdout, cmd.Stderr = out, out
	err = cmd.Run()
	release()
	if tw, ok := out.(*teeWriter); ok {
		tw.shown.Flush() // a last line without a newline
	}
	if err != nil {
		err = fmt.Errorf("deploy command for %s failed (%w): %s; the node stays drained and ineligible", h.Name, err, tail.last())
		if !r.magic() {
			return "", fmt.Errorf("%w. To roll back: hoctl deploy --rollback %s", err, h.Name)
		}
		run, cerr := env.Connect(ctx, h)
		if cerr != nil {
			return "", fmt.Errorf("%w; its magic rollback fires within %s", err, r.Opts.ConfirmTimeout)
		}
		r.mu.Lock()
		deadline := r.armed[h.Name].Add(r.Opts.ConfirmTimeout)
		r.mu.Unlock()
		return "", r.undo(ctx, run, h, deadline, err)
	}
	return strings.Join(append(notes, "deploy command exited 0"), "; "), nil
}

// magic reports whether deploys arm the magic rollback: a --rollback
// switches to a generation that already ran, and arms nothing.
func (r *Run) magic() bool { return r.Opts.ConfirmTimeout > 0 && !r.Opts.Rollback }

func (r *Run) afterHost(quorum bool) func(ctx context.Context, env *tasks.Env, h *inventory.Host) (string, error) {
	return func(ctx context.Context, env *tasks.Env, h *inventory.Host) (string, error) {
		var notes string
		var err error
		if r.magic() {
			notes, err = r.confirm(ctx, env, h, func(ctx context.Context) (string, error) { return r.health(ctx, env, h, quorum) })
		} else {
			notes, err = r.health(ctx, env, h, quorum)
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

// tailBuffer keeps the last lines written, for the error message.
type tailBuffer struct {
	mu  sync.Mutex
	buf []byte
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, p...)
	if len(t.buf) > 4096 {
		t.buf = t.buf[len(t.buf)-4096:]
	}
	return len(p), nil
}

func (t *tailBuffer) last() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	lines := strings.Split(strings.TrimSpace(string(t.buf)), "\n")
	return lines[len(lines)-1]
}

// teeWriter keeps the tail for errors and shows the output.
type teeWriter struct {
	tail  *tailBuffer
	shown *hostout.Writer
}

func (t *teeWriter) Write(b []byte) (int, error) {
	_, _ = t.tail.Write(b)
	return t.shown.Write(b)
}
