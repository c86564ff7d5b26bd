package e2e

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hoctl/hoctl/internal/lab"
)

// docs/runbooks/phase3-update-jobs.yaml, as shipped, on the repository's
// own sample jobs (pkg/jobs/testdata/jobs), in a git checkout, against the
// storage lab (its NFS client c1 is where migrate-jobs checks the share).
//
//  1. Two sample jobs build a host path from a variable under
//     /data/compute: step 2's before check refuses (exit 3) and names them,
//     nothing is asked or changed.
//  2. Those variables changed by hand and committed, the operator runs it at
//     a terminal, says yes, and no at step 3 (submit: the storage lab has no
//     Nomad). Steps 1 and 2 run without hanging (the inner hoctl has
//     --yes), the after check passes although env, args, heredocs and
//     template text still mention /data/compute on purpose, and the rewrite
//     stays (no undo).
func TestPhase3UpdateJobsRunbookOnSampleJobs(t *testing.T) {
	rb, err := filepath.Abs("../docs/runbooks/phase3-update-jobs.yaml")
	if err != nil {
		t.Fatal(err)
	}
	repo := t.TempDir()
	services := filepath.Join(repo, "services")
	if err := os.Mkdir(services, 0o755); err != nil {
		t.Fatal(err)
	}
	samples, _ := filepath.Glob("../pkg/jobs/testdata/jobs/*")
	for _, p := range samples {
		if b := filepath.Base(p); b == "broken.hcl" || !strings.HasSuffix(b, ".hcl") && !strings.HasSuffix(b, ".nomad") {
			continue
		}
		data, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(services, filepath.Base(p)), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	git := func(args ...string) string {
		t.Helper()
		cmd := lab.ToolCmd(context.Background(), "git", append([]string{"-c", "user.name=op", "-c", "user.email=op@example.invalid", "-c", "init.defaultBranch=main"}, args...)...)
		cmd.Dir = repo
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
		return string(out)
	}
	git("init", "-q")
	git("add", "services")
	git("commit", "-q", "-m", "jobs on GlusterFS")

	env := append(stateEnv(t), "PATH="+filepath.Dir(hoctlBin)+":"+os.Getenv("PATH"), "HOCTL_INVENTORY="+storage.Inventory)
	inRepo := func(args ...string) result {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, hoctlBin, args...)
		cmd.Dir = repo
		cmd.Env = append(append(os.Environ(), "NO_COLOR=1", "SSH_AUTH_SOCK="), env...)
		cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
		var out, errOut bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errOut
		err := cmd.Run()
		r := result{stdout: out.String(), stderr: errOut.String()}
		if ee, ok := err.(*exec.ExitError); ok {
			r.code = ee.ExitCode()
		} else if err != nil {
			t.Fatalf("hoctl %v: %v\n%s%s", args, err, r.stdout, r.stderr)
		}
		return r
	}

	// 1. Host paths built from variables: refused before anything is asked.
	r := inRepo("runbook", "run", rb)
	if r.code != 3 || !strings.Contains(r.stdout+r.stderr, "vaultwarden.hcl:13:20 docker volumes (host side) built from var.data_root") ||
		!strings.Contains(r.stdout+r.stderr, "esphome.hcl:13:25 docker volumes (host side) built from local.config_dir") {
		t.Fatalf("exit %d, want 3 naming esphome's and vaultwarden's variables:\n%s%s", r.code, r.stdout, r.stderr)
	}
	if d := git("status", "--porcelain"); d != "" {
		t.Fatalf("the refused run changed files:\n%s", d)
	}

	// 2. The operator moves those variables, commits, and creates the new
	// paths on the share (here: on c1, the client the check runs on).
	for f, old := range map[string]string{"esphome.hcl": `config_dir = "/data/compute/esphome"`, "vaultwarden.hcl": `default = "/data/compute"`} {
		p := filepath.Join(services, f)
		b, _ := os.ReadFile(p)
		fixed := strings.Replace(string(b), old, strings.Replace(old, "/data/compute", "/data/services", 1), 1)
		if fixed == string(b) {
			t.Fatalf("%s: %q not found", f, old)
		}
		if err := os.WriteFile(p, []byte(fixed), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	git("commit", "-q", "-am", "move the variables by hand")
	// The refusal lists every missing path (the plan shortens the list).
	r = inRepo("migrate-jobs", "--dir", "services", "--from", "/data/compute", "--to", "/data/services", "--write", "--yes")
	m := regexp.MustCompile(`missing: (.*?) \(copy the data first`).FindStringSubmatch(r.stderr)
	if r.code != 3 || m == nil {
		t.Fatalf("exit %d, want 3 listing the missing paths:\n%s", r.code, r.stderr)
	}
	paths := strings.Split(m[1], ", ")
	t.Cleanup(func() { hoctl(t, storage.Inventory, "run", "c1", "--", "rm -rf /data/services") })
	if r := hoctl(t, storage.Inventory, append([]string{"run", "c1", "--", "mkdir", "-p"}, paths...)...); r.code != 0 {
		t.Fatalf("mkdir on c1: %s", r.stderr)
	}

	tty := startOnTTYIn(t, repo, env, "runbook", "run", rb)
	tty.waitScreen(t, "Run 3 step(s) on 1 host(s)? [y/N]")
	if _, err := tty.master.Write([]byte("y\n")); err != nil {
		t.Fatal(err)
	}
	tty.waitScreen(t, "plan and submit the rewritten jobs to Nomad — go ahead? [y/N]")
	if _, err := tty.master.Write([]byte("n\n")); err != nil {
		t.Fatal(err)
	}
	if code := tty.exitCode(t); code != 6 {
		t.Fatalf("exit %d, want 6 (step 3 not confirmed)\n%s", code, tty.out.String())
	}
	out := tty.out.String()
	if strings.Contains(out, "local undo") || strings.Contains(out, "timed out") || !strings.Contains(out, "✓ local after") {
		t.Fatalf("step 2 undone or timed out:\n%s", out)
	}
	// Rewritten and kept: no diff left for migrate-jobs, the files differ
	// from the commit, and the mentions kept on purpose are still there.
	r = inRepo("migrate-jobs", "--dir", "services", "--from", "/data/compute", "--to", "/data/services")
	if r.code != 0 || r.stdout != "" {
		t.Fatalf("left to rewrite after the run (exit %d):\n%s", r.code, r.stdout)
	}
	if changed := strings.Count(git("status", "--porcelain"), "\n"); changed != 20 {
		t.Fatalf("%d files rewritten, want 20 (the rest have nothing to move)\n%s", changed, out)
	}
	if b, _ := os.ReadFile(filepath.Join(services, "nextcloud.hcl")); !strings.Contains(string(b), "/data/compute") {
		t.Fatal("nextcloud.hcl's heredoc mention was rewritten")
	}
}
