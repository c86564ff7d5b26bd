package sshexectest

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/hoctl/hoctl/pkg/sshexec"
)

// Answers reach the result, or the command's writers when it has them,
// as with the real runners; a non-zero exit is an *sshexec.ExitError; a
// cut-short command keeps its result beside its error; calls are in order.
func TestHostsAnswerAndRecordAsRunnersDo(t *testing.T) {
	h := &Hosts{Answer: func(host string, c sshexec.Cmd) Reply {
		switch c.Line() {
		case "fail":
			return Reply{Stderr: "no", Code: 3}
		case "slow":
			return Reply{Code: -1, Err: sshexec.ErrTimeout}
		case "down":
			return Reply{Err: &sshexec.ConnError{Host: host, Reason: sshexec.ReasonRefused}}
		}
		return Reply{Stdout: host + " ok"}
	}}
	ctx := context.Background()
	res, err := h.Runner("a").Run(ctx, sshexec.Cmd{Script: "true"})
	if err != nil || string(res.Stdout) != "a ok" {
		t.Fatalf("%+v %v", res, err)
	}
	var out strings.Builder
	if res, err = h.Runner("b").Run(ctx, sshexec.Cmd{Script: "true", Stdout: &out}); err != nil || len(res.Stdout) != 0 || out.String() != "b ok" {
		t.Fatalf("to the writer: %+v %v %q", res, err, out.String())
	}
	var ee *sshexec.ExitError
	if res, err = h.Runner("a").Run(ctx, sshexec.Cmd{Script: "fail"}); !errors.As(err, &ee) || ee.Code != 3 || string(res.Stderr) != "no" {
		t.Fatalf("exit: %+v %v", res, err)
	}
	if res, err = h.Runner("a").Run(ctx, sshexec.Cmd{Script: "slow"}); !errors.Is(err, sshexec.ErrTimeout) || res == nil || res.ExitCode != -1 {
		t.Fatalf("timeout: %+v %v", res, err)
	}
	var ce *sshexec.ConnError
	if res, err = h.Runner("a").Run(ctx, sshexec.Cmd{Script: "down"}); !errors.As(err, &ce) || res != nil {
		t.Fatalf("down: %+v %v", res, err)
	}
	if got := strings.Join(h.Lines(), ";"); got != "a: true;b: true;a: fail;a: slow;a: down" {
		t.Fatalf("calls %q", got)
	}
	h.Reset()
	if len(h.Calls()) != 0 {
		t.Fatal("Reset")
	}
}
