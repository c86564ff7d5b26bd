// Package sshexec runs commands on inventory hosts: one verified SSH
// connection per host per process, sessions capped per connection,
// keepalives so a dead host fails instead of hanging, remote commands that
// stop when the caller's context ends, and a pipe that streams one host's
// output into another host's command. Hosts whose address is "local" run
// through the same interface without SSH.
package sshexec

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"time"
)

// Runner runs commands on one host. *Conn (SSH) and *Local implement it;
// tests of higher packages use fakes.
type Runner interface {
	// Name is the inventory name of the host, used to label output and errors.
	Name() string
	// Run runs c to completion. A command that ran and exited non-zero
	// returns its Result and an *ExitError; a transport failure returns a
	// *ConnError.
	Run(ctx context.Context, c Cmd) (*Result, error)
}

// Dialer opens TCP connections from a host: *Conn does, through its SSH
// connection's direct-tcpip channels (the consul.via and nomad.via
// tunnels).
type Dialer interface {
	DialContext(ctx context.Context, network, addr string) (net.Conn, error)
}

// Cmd is one command to run. Exactly one of Argv and Script is set.
type Cmd struct {
	// Argv is quoted word by word for the remote shell.
	Argv []string
	// Script is a shell command line, passed to the remote shell verbatim.
	Script string
	// Stdin, when set, is copied to the command's standard input, which is
	// closed at its EOF.
	Stdin io.Reader
	// Stdout and Stderr receive output as it arrives; when nil, output is
	// captured into the Result instead.
	Stdout, Stderr io.Writer
	// Timeout overrides the host's command_timeout when non-zero.
	Timeout time.Duration
	// Secrets are values the command line refers to as shell variables
	// ("$NAME"), set in the command's shell without ever being part of a
	// command line or of any process's argv, where `ps` would show them
	// to every user of the host: over SSH the shell reads them from the
	// session's input before the command starts (and hands them to sudo
	// the same way), locally they are put in its environment. Names are
	// shell identifiers; values hold no newline or NUL. Not allowed
	// together with Stdin.
	Secrets map[string]string
}

// Line returns the shell command line c stands for, before any sudo
// wrapping: what the operator sees in plans and journals.
func (c Cmd) Line() string {
	if c.Script != "" {
		return c.Script
	}
	return QuoteArgv(c.Argv)
}

// Result describes a finished command.
type Result struct {
	Host     string        `json:"host"`
	ExitCode int           `json:"exit_code"`
	Signal   string        `json:"signal,omitempty"`
	Stdout   []byte        `json:"-"`
	Stderr   []byte        `json:"-"`
	Duration time.Duration `json:"duration"`
}

// FirstLine is the reason a command failed, for a one-line error: the
// first line of its stderr, or the error itself when it wrote none.
func FirstLine(res *Result, err error) string {
	if res != nil {
		if s := strings.TrimSpace(string(res.Stderr)); s != "" {
			return strings.SplitN(s, "\n", 2)[0]
		}
	}
	return err.Error()
}

// HostError is err as one line that names host exactly once: errors of
// this package already start with the host name, others get it prefixed.
func HostError(host string, err error) string {
	msg := err.Error()
	if strings.HasPrefix(msg, host+": ") || strings.HasPrefix(msg, host+" (") {
		return msg
	}
	return host + ": " + msg
}

// ExitError is a command that ran and did not exit zero.
type ExitError struct {
	Host   string
	Code   int
	Signal string
	Stderr string // last lines, for the error message
}

func (e *ExitError) Error() string {
	var s string
	if e.Signal != "" {
		s = fmt.Sprintf("%s: command killed by signal %s", e.Host, e.Signal)
	} else {
		s = fmt.Sprintf("%s: command exited %d", e.Host, e.Code)
	}
	if e.Stderr != "" {
		s += ": " + e.Stderr
	}
	return s
}

// Reason classifies why a host could not be reached or stopped answering.
type Reason string

// Reasons a ConnError carries; each maps to exit code 4 in the CLI.
const (
	ReasonRefused        Reason = "connection refused"
	ReasonTimeout        Reason = "timed out"
	ReasonAuth           Reason = "auth failed"
	ReasonHostKeyChanged Reason = "host key changed"
	ReasonHostKeyUnknown Reason = "host key unknown"
	ReasonHostKeyRevoked Reason = "host key revoked"
	ReasonKnownHosts     Reason = "known_hosts problem"
	ReasonHostCert       Reason = "host certificate refused"
	ReasonLost           Reason = "connection lost"
	ReasonResolve        Reason = "name not resolved"
	ReasonUnreachable    Reason = "unreachable"
	ReasonKey            Reason = "no usable key"
)

// ConnError is a host that could not be reached, authenticated or kept.
type ConnError struct {
	Host   string
	Addr   string
	Reason Reason
	Err    error
}

func (e *ConnError) Error() string {
	msg := fmt.Sprintf("%s (%s): %s", e.Host, e.Addr, e.Reason)
	if e.Err != nil {
		if d := e.Err.Error(); d != "" && d != string(e.Reason) {
			msg += ": " + d
		}
	}
	return msg
}

func (e *ConnError) Unwrap() error { return e.Err }

// HostKeyError is a host whose key known_hosts does not let us trust. It
// carries the fingerprints so the operator can decide with facts.
type HostKeyError struct {
	Addr      string
	Presented string   // "ssh-ed25519 SHA256:..."
	Expected  []string // "ssh-ed25519 SHA256:... (~/.ssh/known_hosts:12)"
	Unknown   bool     // no key at all on file (strict policy)
	Files     []string
	Revoked   string // where the presented key is marked @revoked ("file:line")
	Problem   string // a known_hosts line that forbids trusting the host
	Cert      string // why a host certificate (or its absence) was refused
}

// Reason classifies the refusal for ConnError.
func (e *HostKeyError) Reason() Reason {
	switch {
	case e.Unknown:
		return ReasonHostKeyUnknown
	case e.Revoked != "":
		return ReasonHostKeyRevoked
	case e.Problem != "":
		return ReasonKnownHosts
	case e.Cert != "":
		return ReasonHostCert
	}
	return ReasonHostKeyChanged
}

func (e *HostKeyError) Error() string {
	switch {
	case e.Unknown:
		return fmt.Sprintf("no known_hosts entry for %s (presented %s); verify the fingerprint and add it to %s, or set host_key_policy: accept-new",
			e.Addr, e.Presented, strings.Join(e.Files, ", "))
	case e.Revoked != "":
		return fmt.Sprintf("the key %s presented by %s is marked @revoked (%s); do not connect until the host has a new key", e.Presented, e.Addr, e.Revoked)
	case e.Problem != "":
		return fmt.Sprintf("not trusting %s (presented %s): known_hosts %s", e.Addr, e.Presented, e.Problem)
	case e.Cert != "":
		msg := fmt.Sprintf("%s presented %s: %s", e.Addr, e.Presented, e.Cert)
		if len(e.Expected) > 0 {
			msg += "; expected " + strings.Join(e.Expected, " or ")
		}
		return msg
	}
	return fmt.Sprintf("HOST KEY CHANGED for %s: presented %s, expected %s; if the host was reinstalled, remove the old entry (%s) after verifying the new key",
		e.Addr, e.Presented, strings.Join(e.Expected, " or "), e.removeCommand())
}

// removeCommand is the ssh-keygen line that removes the host's entry:
// known_hosts names a host on another port as [addr]:port, and hoctl's
// known_hosts may not be ~/.ssh/known_hosts, where ssh-keygen looks by
// default.
func (e *HostKeyError) removeCommand() string {
	// The name OpenSSH looks up: ssh-keygen -R hashes exactly it.
	cmd := "ssh-keygen -R " + Quote(parseKHAddr(e.Addr).name())
	if len(e.Files) > 0 {
		cmd += " -f " + Quote(e.Files[0])
	}
	return cmd
}

// ErrTimeout is returned (wrapped) when a command outlives its timeout.
var ErrTimeout = errors.New("command timed out")

// tail returns the last few lines of b, for error messages.
func tail(b []byte, lines int) string {
	s := strings.TrimRight(string(b), "\n")
	parts := strings.Split(s, "\n")
	if len(parts) > lines {
		parts = parts[len(parts)-lines:]
	}
	out := strings.Join(parts, "\n")
	if len(out) > 512 {
		out = "…" + out[len(out)-512:]
	}
	return out
}

// Pinger is a Runner that can measure a round trip without running a
// command.
type Pinger interface {
	Ping(ctx context.Context) (time.Duration, error)
}
