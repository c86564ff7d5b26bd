// Package cli is hoctl's command line: one constructor per command, each
// with an options struct and a run function that tests call without a
// terminal. Errors come back as values and are mapped to exit codes once,
// in ExitCode.
package cli

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"

	"github.com/hoctl/hoctl/pkg/hostout"
	"github.com/hoctl/hoctl/pkg/iostreams"
	"github.com/hoctl/hoctl/pkg/tasks"
	"github.com/spf13/cobra"
)

// Main runs hoctl with args and returns the process exit code.
func Main(args []string, build BuildInfo) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	// After the first Ctrl-C, restore the default so a second one kills
	// hoctl outright if clean-up itself hangs.
	go func() { <-ctx.Done(); stop() }()

	f := &Factory{IO: iostreams.System(os.Getenv), Version: build.resolved("").Version, Build: build, Getenv: os.Getenv, Args: args, OpenTTY: openTTY}
	return Run(ctx, f, args)
}

// Run executes one command line with f, prints its error on stderr and
// returns the exit code. Main and the tests share it.
func Run(ctx context.Context, f *Factory, args []string) int {
	cmd, err := executeC(ctx, NewRootCmd(f), args)
	if err != nil && ctx.Err() != nil && !errors.Is(err, context.Canceled) {
		err = fmt.Errorf("%w: %w", context.Canceled, err)
	}
	code := ExitCode(err)
	if code == ExitOK && f.jq != nil && f.jq.Failed() {
		code = ExitFailed // as jq exits when its expression fails
	}
	if err != nil && !f.IO.JSON {
		// An unknown command or global flag fails before cobra parses
		// --json into f.IO.JSON; the caller asked for JSON all the same.
		f.IO.JSON = jsonAsked(args)
	}
	if err != nil && f.IO.JSON {
		// Machines read stdout: the error is an event there too.
		_ = f.IO.Emit(ErrorEvent{ExitCode: code, Error: errorText(err, code)})
	}
	var (
		se *SilentError
		re *tasks.ReportedError
	)
	if err != nil && !errors.As(err, &se) && !errors.As(err, &re) {
		cs := f.IO.ColorScheme()
		if errors.Is(err, context.Canceled) {
			fmt.Fprintf(f.IO.ErrOut, "%s interrupted\n", cs.FailureIcon())
		} else {
			// Errors quote hosts' output: shown, not acted on.
			fmt.Fprintf(f.IO.ErrOut, "%s %s\n", cs.Red("error:"), hostout.Sanitize(err.Error()))
		}
		var ue *UsageError
		if errors.As(err, &ue) {
			fmt.Fprintln(f.IO.ErrOut, helpHint(cmd))
		}
	}
	return code
}

// jsonAsked says whether args name --json before "--", where the words of
// a remote command begin.
func jsonAsked(args []string) bool {
	for _, a := range args {
		if a == "--" {
			return false
		}
		if v, ok := strings.CutPrefix(a, "--json"); ok && (v == "" || v[0] == '=') {
			b, err := strconv.ParseBool(strings.TrimPrefix(v, "="))
			return v == "" || (err == nil && b)
		}
	}
	return false
}

// NewRootCmd builds the command tree.
func NewRootCmd(f *Factory) *cobra.Command {
	root := &cobra.Command{
		Use:   "hoctl",
		Short: "Drive a small NixOS/Nomad/Consul cluster over SSH, with checks before and after every step",
		Long: `hoctl reads a host inventory and runs ordered steps over SSH, each with a
check before and a check after.

The commands that change things (run, replicate, failover, migrate-jobs,
deploy, runbook run, resume) take --dry-run (show the plan, change
nothing) and, those that ask, --yes (do not ask), before or after the
command name; the others refuse them.

EXIT STATUS
  0 ok · 1 a step failed · 2 usage or inventory error · 3 a before check
  refused to start · 4 a host unreachable · 5 an after check failed (the
  change happened but is not verified) · 6 not confirmed (answered no, or
  no terminal and no --yes) · 130 interrupted. See docs/exit-codes.md.`,
		SilenceErrors: true,
		SilenceUsage:  true,
		Version:       f.Version,
	}
	addGlobalFlags(root, f)
	root.SetFlagErrorFunc(flagError)
	root.SetOut(f.IO.Out)
	root.SetErr(f.IO.ErrOut)

	addCommands(root, f)
	root.SetHelpCommand(newHelpCmd())
	root.InitDefaultHelpCmd()
	root.InitDefaultCompletionCmd()
	addHelp(root)
	addCompletions(root, f)
	for _, c := range root.Commands() {
		if c.HasSubCommands() && !c.Runnable() {
			requireSubcommand(c)
		}
	}
	return root
}

// addCommands adds every command, in the order help lists them.
func addCommands(root *cobra.Command, f *Factory) {
	root.AddCommand(
		NewCmdHosts(f, nil),
		NewCmdPing(f, nil),
		NewCmdRun(f, nil),
		NewCmdCopy(f, nil),
		NewCmdReplicate(f, nil),
		NewCmdSnapshots(f, nil),
		NewCmdTargetFilter(f, nil),
		NewCmdDirOp(f),
		NewCmdGuard(f, nil),
		NewCmdFailover(f, nil),
		NewCmdMigrateJobs(f, nil),
		NewCmdStatus(f, nil),
		NewCmdDeploy(f, nil),
		NewCmdRunbook(f, nil),
		NewCmdCheck(f, nil),
		NewCmdHistory(f, nil),
		NewCmdResume(f, nil),
		NewCmdVersion(f),
	)
}

// Execute runs the command tree, turning cobra's untyped complaints about
// the command line into UsageErrors so they exit 2.
func Execute(ctx context.Context, root *cobra.Command) error {
	cmd, err := root.ExecuteContextC(ctx)
	return humaneCobraError(cmd, err)
}

// executeC runs args like Execute, checks the global flags before the
// subcommand first, and also returns the command that ran (or was
// being parsed), whose help a usage error points at.
func executeC(ctx context.Context, root *cobra.Command, args []string) (*cobra.Command, error) {
	root.SetArgs(args)
	if err := unknownGlobalFlag(root, args); err != nil {
		return root, err
	}
	cmd, err := root.ExecuteContextC(ctx)
	return cmd, humaneCobraError(cmd, err)
}

// NewCmdVersion prints the version, commit, build date and Go version.
func NewCmdVersion(f *Factory) *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print hoctl's version, commit, build date and Go version",
		Args:  rangeArgs(0, 0),
		RunE: func(*cobra.Command, []string) error {
			b := f.Build.resolved(f.Version)
			if f.IO.JSON {
				return f.IO.Emit(versionEvent{Version: b.Version, Commit: b.Commit, Date: b.Date, Go: b.GoVersion})
			}
			_, err := fmt.Fprintf(f.IO.Out, "hoctl %s\ncommit: %s\nbuilt:  %s\ngo:     %s\n", b.Version, b.Commit, b.Date, b.GoVersion)
			return err
		},
	}
}

// becomeFlag is --become or --no-become: each sets Factory.Become, and
// naming both is refused (the flag error exits 2) rather than letting the
// last one win silently.
type becomeFlag struct {
	f    *Factory
	mode string
	set  bool
}

func (b *becomeFlag) String() string { return strconv.FormatBool(b.set) }
func (b *becomeFlag) Type() string   { return "bool" }
func (b *becomeFlag) IsBoolFlag() bool {
	return true
}

func (b *becomeFlag) Set(s string) error {
	v, err := strconv.ParseBool(s)
	if err != nil {
		return err
	}
	if !v {
		return nil
	}
	if b.f.Become != "" && b.f.Become != b.mode {
		return conflictError("--become and --no-become contradict each other: give one")
	}
	b.set, b.f.Become = true, b.mode
	return nil
}

// conflictError is a flag that contradicts another already given.
type conflictError string

func (e conflictError) Error() string { return string(e) }

// rangeArgs accepts lo to hi positional arguments.
func rangeArgs(lo, hi int) cobra.PositionalArgs { return argsRange(lo, hi) }
