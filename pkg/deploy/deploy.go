// Package deploy is the rolling NixOS deploy: hosts outside the quorum
// first (a few at a time), then quorum members strictly one by one, each
// drained from Nomad, deployed by the operator's own command (deploy-rs,
// nixos-rebuild), and checked back to health before the next host. A
// command that exits 0 without changing the system generation is not
// taken for a deploy.
package deploy

import (
	"context"
	"fmt"
	"io"
	"sort"
	"strings"
	"sync"
	"text/template"
	"time"

	consulapi "github.com/hashicorp/consul/api"
	nomadapi "github.com/hashicorp/nomad/api"
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
