package cli

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/hoctl/hoctl/pkg/format"
	"github.com/hoctl/hoctl/pkg/hostout"
	"github.com/hoctl/hoctl/pkg/iostreams"
	"github.com/hoctl/hoctl/pkg/sshexec"
)

// runPrinter shows run: each host's result as it ends (a host_result
// event, or with --group its output together), the summary of every host
// (text only: on stderr), and the plan of --dry-run (a run_plan event,
// or the hosts and the command).
type runPrinter interface {
	host(r RunResult, out *runOutput)
	summary(results []RunResult, he *HostsError, stdinBytes int)
	plan(ev runPlanEvent) error
}

func newRunPrinter(ios *iostreams.IOStreams) runPrinter {
	if ios.JSON {
		return jsonRunPrinter{ios}
	}
	return textRunPrinter{ios}
}

type jsonRunPrinter struct{ io *iostreams.IOStreams }

func (p jsonRunPrinter) host(r RunResult, _ *runOutput) { _ = p.io.Emit(r) }

func (jsonRunPrinter) summary([]RunResult, *HostsError, int) {}

func (p jsonRunPrinter) plan(ev runPlanEvent) error { return p.io.Emit(ev) }

type textRunPrinter struct{ io *iostreams.IOStreams }

// host shows a --group host's output; without --group it went out line
// by line as it came.
func (p textRunPrinter) host(r RunResult, out *runOutput) {
	if out.spoolOut != nil {
		printGroup(p.io, r, out.spoolOut, out.spoolErr)
	}
}

func (p textRunPrinter) summary(results []RunResult, he *HostsError, stdinBytes int) {
	printRunSummary(p.io, results, he, stdinBytes)
}

func (p textRunPrinter) plan(ev runPlanEvent) error {
	io := p.io
	cs := io.OutColorScheme()
	fmt.Fprintf(io.Out, "%s would run on %d host(s), %d at a time: %s\n", cs.Bold("Plan:"), len(ev.Hosts), min(ev.Parallel, len(ev.Hosts)), strings.Join(ev.Hosts, ", "))
	fmt.Fprintf(io.Out, "     run     %s\n", ev.Cmd)
	if ev.StdinBytes > 0 {
		fmt.Fprintf(io.Out, "     stdin   %s, the same to every host\n", format.Bytes(int64(ev.StdinBytes)))
	}
	fmt.Fprintln(io.ErrOut, "dry run: nothing was run")
	return nil
}

// group writes a host's output together, under a line with its status.
func printGroup(ios *iostreams.IOStreams, r RunResult, stdout, stderr *spool) {
	cs := ios.OutColorScheme()
	ios.Lock()
	defer ios.Unlock()
	status := cs.Green("exit 0")
	switch {
	case r.Reason != "":
		status = cs.Red(r.Reason)
	case errors.Is(r.err, context.Canceled):
		status = cs.Yellow("interrupted")
	case errors.Is(r.err, sshexec.ErrTimeout):
		status = cs.Red(strings.TrimPrefix(r.Error, r.Host+": command "))
	case r.Signal != "":
		status = cs.Red("signal " + r.Signal)
	case r.ExitCode != 0:
		status = cs.Red(fmt.Sprintf("exit %d", r.ExitCode))
	}
	fmt.Fprintf(ios.Out, "── %s (%s, %s)\n", cs.Bold(cs.Host(r.Host)), status, ms(r.DurationMS))
	stdout.copyTo(ios.Out)
	stderr.copyTo(ios.ErrOut)
	if r.Reason != "" {
		fmt.Fprintln(ios.ErrOut, hostout.Sanitize(r.Error))
	}
}

func printRunSummary(ios *iostreams.IOStreams, results []RunResult, he *HostsError, stdinBytes int) {
	cs := ios.ColorScheme()
	var bad []string
	for _, r := range results {
		switch {
		case r.Reason != "", errors.Is(r.err, sshexec.ErrTimeout):
			bad = append(bad, sshexec.HostError(r.Host, r.err))
		case r.err != nil && r.Signal != "":
			bad = append(bad, fmt.Sprintf("%s: killed by %s", r.Host, r.Signal))
		case r.err != nil && r.ExitCode != 0:
			bad = append(bad, fmt.Sprintf("%s: exit %d", r.Host, r.ExitCode))
		case r.err != nil:
			bad = append(bad, sshexec.HostError(r.Host, r.err))
		}
	}
	ok := he.Total - len(bad)
	// Whether the hosts were given input is part of what happened.
	input := ""
	if stdinBytes > 0 {
		input = fmt.Sprintf(" (given %s of stdin)", format.Bytes(int64(stdinBytes)))
	}
	if len(bad) == 0 {
		fmt.Fprintf(ios.ErrOut, "%s %d/%d hosts exited 0%s\n", cs.SuccessIcon(), ok, he.Total, input)
		return
	}
	fmt.Fprintf(ios.ErrOut, "%s %d/%d hosts exited 0%s; %d failed, %d unreachable\n", cs.FailureIcon(), ok, he.Total, input, he.Failed, he.Unreachable)
	for _, b := range bad {
		fmt.Fprintf(ios.ErrOut, "  %s\n", hostout.Sanitize(b))
	}
}
