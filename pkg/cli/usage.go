package cli

import (
	"errors"
	"fmt"
	"regexp"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// This file turns cobra's and pflag's complaints about a command line into
// messages a person can act on: the flag or command they probably meant,
// the `--` they left out, and which command's help to read.

// unknownGlobalFlag reports a flag before the subcommand that the root does
// not know. cobra would take `--dryrun` for a flag with a value, swallow
// the subcommand as that value and complain about the next word ("unknown
// command "zippy""); the operator mistyped a flag and should hear so.
func unknownGlobalFlag(root *cobra.Command, args []string) error {
	fs := root.PersistentFlags()
	known := func(name string) bool {
		return fs.Lookup(name) != nil || name == "help" || name == "version"
	}
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" || a == "-" || !strings.HasPrefix(a, "-") {
			return nil // the subcommand (or positional words) starts here
		}
		if name, ok := strings.CutPrefix(a, "--"); ok {
			name, _, hasVal := strings.Cut(name, "=")
			if !known(name) {
				return usagef("unknown flag --%s%s", name, didYouMeanFlag(fs, name))
			}
			if fl := fs.Lookup(name); fl != nil && fl.NoOptDefVal == "" && !hasVal {
				i++ // its value
			}
			continue
		}
		short := a[1:]
		for j := 0; j < len(short); j++ {
			c := short[j : j+1]
			fl := fs.ShorthandLookup(c)
			if fl == nil {
				if c == "h" {
					continue
				}
				return usagef("unknown flag -%s%s", c, didYouMeanFlag(fs, c))
			}
			if fl.NoOptDefVal == "" {
				if j == len(short)-1 {
					i++ // -i FILE
				}
				break // -iFILE
			}
		}
	}
	return nil
}

var (
	reUnknownLong   = regexp.MustCompile(`^unknown flag: --(\S+)`)
	reUnknownShort  = regexp.MustCompile(`^unknown shorthand flag: '(.)' in (\S+)`)
	reInvalidArg    = regexp.MustCompile(`^invalid argument "(.*)" for "(?:-\w, )?(--\S+)" flag: (.*)$`)
	reNeedsArg      = regexp.MustCompile(`^flag needs an argument: (?:'(.)' in -\S+|--(\S+))`)
	reUnknownCmd    = regexp.MustCompile(`^unknown command "([^"]*)" for "([^"]*)"`)
	reCobraArgCount = regexp.MustCompile(`^(accepts \d|accepts at most|accepts between|requires at least \d+ arg|unknown command ")`)
)

// flagError is the root's FlagErrorFunc: pflag's message made human, with
// the closest flag of the command suggested.
func flagError(cmd *cobra.Command, err error) error {
	msg := err.Error()
	fs := cmd.Flags()
	switch {
	case reUnknownLong.MatchString(msg):
		name := reUnknownLong.FindStringSubmatch(msg)[1]
		return &UsageError{Err: fmt.Errorf("unknown flag --%s for %s%s", name, cmd.CommandPath(), didYouMeanFlag(fs, name))}
	case reUnknownShort.MatchString(msg):
		c := reUnknownShort.FindStringSubmatch(msg)[1]
		return &UsageError{Err: fmt.Errorf("unknown flag -%s for %s%s", c, cmd.CommandPath(), didYouMeanFlag(fs, c))}
	case reInvalidArg.MatchString(msg):
		m := reInvalidArg.FindStringSubmatch(msg)
		fl := fs.Lookup(strings.TrimPrefix(m[2], "--"))
		var ce conflictError
		if errors.As(err, &ce) {
			// A flag that refuses another one (--become, --no-become)
			// says why itself.
			return &UsageError{Err: ce}
		}
		return &UsageError{Err: fmt.Errorf("%s %q: expected %s", m[2], m[1], expectedValue(fl))}
	case reNeedsArg.MatchString(msg):
		m := reNeedsArg.FindStringSubmatch(msg)
		name := "--" + m[2]
		if m[1] != "" {
			if fl := fs.ShorthandLookup(m[1]); fl != nil {
				name = "-" + m[1] + "/--" + fl.Name
			}
		}
		return &UsageError{Err: fmt.Errorf("%s needs a value", name)}
	}
	return &UsageError{Err: err}
}

// expectedValue says what a flag takes, for the error about a value it
// could not parse.
func expectedValue(fl *pflag.Flag) string {
	if fl == nil {
		return "a valid value"
	}
	switch fl.Value.Type() {
	case "int", "int64", "uint", "count":
		return "a whole number"
	case "duration":
		return "a duration like 30s, 5m or 1h"
	case "bool":
		return "true or false"
	}
	return "a valid value"
}

// humaneCobraError rewrites what cobra itself returns for a bad command
// line (unknown subcommand, wrong number of arguments) and marks it a
// usage error. Errors of hoctl's own pass through unchanged.
func humaneCobraError(cmd *cobra.Command, err error) error {
	var ue *UsageError
	if err == nil || errors.As(err, &ue) || !reCobraArgCount.MatchString(err.Error()) {
		return err
	}
	if m := reUnknownCmd.FindStringSubmatch(err.Error()); m != nil {
		return unknownSubcommand(cmd, m[1])
	}
	return &UsageError{Err: fmt.Errorf("wrong number of arguments; usage: %s", cmd.UseLine())}
}

// unknownSubcommand is the error for `hoctl runbook pln`: the word, the
// commands it is close to, or the ones there are.
func unknownSubcommand(parent *cobra.Command, word string) error {
	var names []string
	for _, c := range parent.Commands() {
		if c.IsAvailableCommand() {
			names = append(names, c.Name())
		}
	}
	if s := closest(word, names); len(s) > 0 {
		return usagef("unknown command %q for %s (did you mean %s?)", word, parent.CommandPath(), strings.Join(s, " or "))
	}
	if len(names) > 8 {
		return usagef("unknown command %q for %s", word, parent.CommandPath())
	}
	return usagef("unknown command %q for %s; choose one of: %s", word, parent.CommandPath(), strings.Join(names, ", "))
}

// requireSubcommand makes a command that only groups others (runbook)
// refuse an unknown word instead of printing its help and exiting 0.
func requireSubcommand(cmd *cobra.Command) {
	cmd.Args = cobra.ArbitraryArgs
	cmd.RunE = func(c *cobra.Command, args []string) error {
		if len(args) == 0 {
			return c.Help()
		}
		return unknownSubcommand(c, args[0])
	}
}

// argsRange checks the number of positional arguments and says, in words,
// what the command takes.
func argsRange(lo, hi int) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		switch {
		case len(args) > hi && hi == 0:
			return usagef("%s takes no arguments, got %s", cmd.CommandPath(), quoteWords(args))
		case len(args) > hi:
			return usagef("too many arguments (%s); usage: %s", quoteWords(args[hi:]), cmd.UseLine())
		case len(args) < lo:
			return usagef("missing argument; usage: %s", cmd.UseLine())
		}
		return nil
	}
}

func quoteWords(ws []string) string {
	q := make([]string, len(ws))
	for i, w := range ws {
		q[i] = fmt.Sprintf("%q", w)
	}
	return strings.Join(q, " ")
}

// helpHint is the line after a usage error: the help of the command that
// was being used, not the root's.
func helpHint(cmd *cobra.Command) string {
	path := "hoctl"
	if cmd != nil {
		path = cmd.CommandPath()
	}
	return fmt.Sprintf("Run '%s --help' for usage.", path)
}
