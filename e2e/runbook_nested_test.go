package e2e

import (
	"fmt"
	"os"
	"strings"
	"testing"
)

// A runbook step that runs a command which asks for confirmation (here a
// hoctl without --yes) fails at once with exit 6 and "--yes", while the
// operator sits at a terminal and has answered the outer run's question.
// Before, the inner hoctl found the operator's terminal, asked on it from
// a background process group, was stopped by the kernel (SIGTTIN) under
// the outer progress line, and the step hung until its timeout.
func TestPromptInsideARunbookStepFailsFast(t *testing.T) {
	dir := t.TempDir()
	marker := dir + "/inner-ran"
	inner := writeRunbook(t, fmt.Sprintf("name: inner\nsteps:\n  - {title: touch, run: 'touch %s'}\n", marker))
	outer := writeRunbook(t, fmt.Sprintf("name: outer\nsteps:\n  - {title: nested hoctl, run: '%s runbook run %s', timeout: 45s}\n", hoctlBin, inner))
	r := startOnTTY(t, stateEnv(t), "runbook", "run", outer)
	r.waitScreen(t, "Run 1 step(s) on 1 host(s)? [y/N]")
	if _, err := r.master.Write([]byte("y\n")); err != nil {
		t.Fatal(err)
	}
	code := r.exitCode(t)
	out := r.out.String()
	if code != 1 || !strings.Contains(out, "exit 6") || !strings.Contains(out, "use --yes") {
		t.Fatalf("exit %d, want 1 with the step's exit 6 and the inner hoctl's \"use --yes\":\n%s", code, out)
	}
	t.Log(out)
	if strings.Contains(out, "timed out") {
		t.Fatalf("the step ran into its timeout:\n%s", out)
	}
	if _, err := os.Stat(marker); err == nil {
		t.Fatal("the inner runbook ran without confirmation")
	}
}
