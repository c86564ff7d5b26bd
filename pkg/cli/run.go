package cli

import (
	"context"
	"errors"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/hoctl/hoctl/pkg/hostout"
	"github.com/hoctl/hoctl/pkg/inventory"
	"github.com/hoctl/hoctl/pkg/iostreams"
	"github.com/hoctl/hoctl/pkg/sshexec"
)

// RunOptions are the inputs of `hoctl run`.
type RunOptions struct {
	F        *Factory
	Targets  []string // their union
	Command  sshexec.Cmd
	Parallel int
	Group    bool
	Timeout  time.Duration
	// NoStdin is -n: the command reads /dev/null, as with ssh -n.
	NoStdin bool

	// stdin is what every host's command reads (readRunStdin).
	stdin []byte
	// printer shows each host's result, the summary and a dry run's plan.
	printer runPrinter
}

// runLong is run's help: the command's quoting, its output and its input.
const runLong = `Run a command on every host TARGET selects (several TARGETs: their
union), --parallel at a time.

With one word after --, it is a shell command line, as with ssh:
  hoctl run cattle -- 'systemctl is-active nomad && uptime'
With several words, each is quoted so the remote side sees exactly them:
  hoctl run all -- ls -l "/data/my dir"

Output is streamed as it comes, each line prefixed with its host (stdout to
stdout, stderr to stderr), or with --group printed per host when it ends.
A summary of exit codes follows on stderr. The exit status is 4 if a host
was unreachable, 1 if a command failed anywhere, else 0.

Standard input, when it is not a terminal, is read once (at most 16 MiB)
and sent to the command on every host, as ssh sends it to one:
  hoctl run cattle -- sh -s < fix.sh
-n (--no-stdin) sends none: the command reads /dev/null.`

// NewCmdRun runs an ad-hoc command on many hosts.
func NewCmdRun(f *Factory, runF func(*RunOptions) error) *cobra.Command {
	opts := &RunOptions{F: f}
	cmd := &cobra.Command{
		Use:   "run TARGET... -- CMD [ARG...]",
		Short: "Run a command on many hosts at once",
		Long:  runLong,
		Args:  runCmdArgs,
		RunE: func(c *cobra.Command, args []string) error {
			if err := opts.fromArgs(args, c.ArgsLenAtDash()); err != nil {
				return err
			}
			if runF != nil {
				return runF(opts)
			}
			return runRun(c.Context(), opts)
		},
	}
	runFlags(cmd, f, opts)
	return cmd
}

func runFlags(cmd *cobra.Command, f *Factory, opts *RunOptions) {
	cmd.Flags().IntVar(&opts.Parallel, "parallel", 32, "hosts running the command at once")
	cmd.Flags().BoolVarP(&opts.NoStdin, "no-stdin", "n", false, "send no standard input: the command reads /dev/null (as ssh -n)")
	honoursDryRun(f, cmd, "print the hosts the command would run on and the command; run nothing")
	cmd.Flags().BoolVar(&opts.Group, "group", false, "print each host's output together when it finishes")
	cmd.Flags().DurationVar(&opts.Timeout, "timeout", 0, "per-host command timeout (default: the inventory's command_timeout)")
}

// runCmdArgs wants TARGET... -- CMD [ARG...].
func runCmdArgs(c *cobra.Command, args []string) error {
	dash := c.ArgsLenAtDash()
	if dash == -1 && len(args) >= 2 {
		// `hoctl run all uptime`: the usual slip.
		return usagef("put -- between TARGET and the command: hoctl run %s -- %s", args[0], strings.Join(args[1:], " "))
	}
	if dash < 1 || len(args) <= dash {
		return usagef("expected TARGET... -- CMD [ARG...]")
	}
	return nil
}

// fromArgs takes the targets before -- and the command after it: one
// word is a shell command line, several are quoted word by word.
func (opts *RunOptions) fromArgs(args []string, dash int) error {
	opts.Targets = args[:dash]
	words := args[dash:]
	if len(words) == 1 {
		opts.Command = sshexec.Cmd{Script: words[0]}
	} else {
		opts.Command = sshexec.Cmd{Argv: words}
	}
	if strings.TrimSpace(opts.Command.Line()) == "" {
		return usagef("empty command")
	}
	if opts.Parallel < 1 {
		return usagef("--parallel must be at least 1")
	}
	opts.Command.Timeout = opts.Timeout
	return nil
}

func runRun(ctx context.Context, opts *RunOptions) error {
	ios := opts.F.IO
	stdin, err := readRunStdin(ctx, ios, opts.NoStdin)
	if err != nil {
		return err
	}
	opts.stdin = stdin
	opts.printer = newRunPrinter(ios)
	if opts.F.DryRun {
		return runDryRun(ctx, opts)
	}
	results, he, err := fanOut(ctx, opts.F, opts.Targets, opts.Parallel,
		func(hosts []*inventory.Host) func(context.Context, Connector, *inventory.Host) RunResult {
			width := 0
			for _, h := range hosts {
				width = max(width, len(h.Name))
			}
			return func(ctx context.Context, conn Connector, h *inventory.Host) RunResult {
				return runOne(ctx, opts, conn, h, width)
			}
		},
		func(r RunResult) error { return r.err })
	if err != nil {
		return err
	}
	opts.printer.summary(results, he, len(opts.stdin))
	if he.Failed+he.Unreachable > 0 {
		return &SilentError{Code: ExitCode(he)}
	}
	return nil
}

// RunKeepHead and RunKeepTail bound what --json keeps of each host's
// stdout and stderr: the first and last bytes, with a marker line saying
// how many were dropped between them. Output is never held whole.
const (
	RunKeepHead = 64 << 10
	RunKeepTail = 192 << 10
)

func runOne(ctx context.Context, opts *RunOptions, conn Connector, h *inventory.Host, width int) RunResult {
	ios := opts.F.IO
	cmd := opts.Command
	out := newRunOutput(ios, opts.Group, h.Name, width, &cmd)
	defer out.close()
	start := time.Now()
	res, err := func() (*sshexec.Result, error) {
		run, err := conn.Runner(ctx, h)
		if err != nil {
			return nil, err
		}
		if opts.stdin == nil {
			return run.Run(ctx, cmd)
		}
		return runWithStdin(ctx, run, cmd, opts.stdin)
	}()
	out.flush()
	r := runResult(h.Name, res, err)
	r.DurationMS = millis(time.Since(start))
	if out.keepOut != nil {
		r.Stdout, r.Stderr = string(out.keepOut.Bytes()), string(out.keepErr.Bytes())
	}
	opts.printer.host(r, out)
	return r
}

// runResult is a host's outcome from what its command returned.
func runResult(host string, res *sshexec.Result, err error) RunResult {
	r := RunResult{Host: host}
	if res != nil {
		r.ExitCode, r.Signal = res.ExitCode, res.Signal
	}
	if err != nil {
		r.err = err
		r.Error = err.Error()
		if errors.Is(err, context.Canceled) {
			// Ctrl-C: said as such, with hoctl's own exit code, not Go's
			// "context canceled" and a -1.
			r.Error, r.ExitCode = "interrupted", ExitInterrupted
		}
		var ce *sshexec.ConnError
		if errors.As(err, &ce) {
			r.Reason = string(ce.Reason)
			r.ExitCode = -1
		}
	}
	return r
}

// runOutput is where one host's output goes: its head and tail kept for
// --json, spooled for --group, else host-prefixed lines as they come.
type runOutput struct {
	keepOut, keepErr   *sshexec.HeadTail
	spoolOut, spoolErr *spool
	lineOut, lineErr   *hostout.Writer
}

func newRunOutput(ios *iostreams.IOStreams, group bool, host string, width int, cmd *sshexec.Cmd) *runOutput {
	o := &runOutput{}
	switch {
	case ios.JSON:
		o.keepOut, o.keepErr = sshexec.NewHeadTail(RunKeepHead, RunKeepTail), sshexec.NewHeadTail(RunKeepHead, RunKeepTail)
		cmd.Stdout, cmd.Stderr = o.keepOut, o.keepErr
	case group:
		// Held on disk until the host ends, not in memory.
		o.spoolOut, o.spoolErr = newSpool(), newSpool()
		cmd.Stdout, cmd.Stderr = o.spoolOut, o.spoolErr
	default:
		pad := strings.Repeat(" ", width-len(host))
		o.lineOut = hostout.New(ios.Out, ios.OutColorScheme().Host(host)+pad+" | ", ios)
		o.lineErr = hostout.New(ios.ErrOut, ios.ColorScheme().Host(host)+pad+" ! ", ios)
		cmd.Stdout, cmd.Stderr = o.lineOut, o.lineErr
	}
	return o
}

// flush writes a last line the command did not end.
func (o *runOutput) flush() {
	if o.lineOut != nil {
		o.lineOut.Flush()
		o.lineErr.Flush()
	}
}

func (o *runOutput) close() {
	if o.spoolOut != nil {
		o.spoolOut.Close()
		o.spoolErr.Close()
	}
}
