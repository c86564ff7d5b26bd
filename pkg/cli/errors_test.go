package cli

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/hoctl/hoctl/pkg/inventory"
	"github.com/hoctl/hoctl/pkg/sshexec"
	"github.com/hoctl/hoctl/pkg/sshexec/sshexectest"
)

// funcConnector hands out runners from a function.
type funcConnector func(h *inventory.Host) (sshexec.Runner, error)

func (f funcConnector) Runner(_ context.Context, h *inventory.Host) (sshexec.Runner, error) {
	return f(h)
}
func (f funcConnector) Close() error { return nil }

// A refused host and a timed-out command, each said once: the host and
// reason are not repeated, and a timeout is not "exit -1".
func TestRunSummaryNamesHostOnceAndSaysTimedOut(t *testing.T) {
	conn := funcConnector(func(h *inventory.Host) (sshexec.Runner, error) {
		if h.Name == "c1" {
			return nil, &sshexec.ConnError{Host: "c1", Addr: "127.0.14.5:22", Reason: sshexec.ReasonRefused}
		}
		return &sshexectest.Func{Host: h.Name, Fn: func(context.Context, sshexec.Cmd) (*sshexec.Result, error) {
			return &sshexec.Result{Host: h.Name, ExitCode: -1}, fmt.Errorf("%s: %w", h.Name, fmt.Errorf("%w after 1s", sshexec.ErrTimeout))
		}}, nil
	})
	h := newHarness(t)
	h.f.Connect = func(*inventory.Inventory) (Connector, error) { return conn, nil }
	h.exec("run", "c1,c2", "--", "sleep 5")
	for _, want := range []string{"\n  c1 (127.0.14.5:22): connection refused\n", "\n  c2: command timed out after 1s\n"} {
		if !strings.Contains(h.err.String(), want) {
			t.Errorf("summary lacks %q:\n%s", want, h.err)
		}
	}
	if strings.Contains(h.err.String(), "c1: c1") || strings.Contains(h.err.String(), "exit -1") {
		t.Errorf("repeated host or exit -1:\n%s", h.err)
	}

	h = newHarness(t)
	h.f.Connect = func(*inventory.Inventory) (Connector, error) { return conn, nil }
	h.exec("run", "--group", "c2", "--", "sleep 5")
	if !strings.Contains(h.out.String(), "── c2 (timed out after 1s, ") {
		t.Errorf("group header:\n%s", h.out)
	}
}
