package e2e

// migrate-jobs on the real cluster: Nomad v1.6.1 parses, plans and runs
// the jobs (raw_exec, the lab clients' driver), Consul v1.14.11 runs their
// service checks. c1 is the share's client the new paths are checked on;
// its /data stands in for its mount of the share (this kernel has no NFS
// client). Every job is purged after, also when a test fails.

import (
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/hoctl/hoctl/internal/lab"
)

// nomadOn runs the nomad CLI on c1 against its own agent.
func nomadOn(t *testing.T, l *lab.Lab, script string) (string, error) {
	t.Helper()
	return inMachine(l, "c1", ". /etc/profile.d/hoctl-lab-agents.sh; "+script)
}

// purgeJobsAfter stops and purges the jobs and garbage-collects, so that
// the next test finds no job, allocation or Consul service of ours.
func purgeJobsAfter(t *testing.T, l *lab.Lab, jobs ...string) {
	t.Helper()
	t.Cleanup(func() {
		for _, j := range jobs {
			_, _ = nomadOn(t, l, "nomad job stop -purge -yes "+j+" >/dev/null 2>&1")
		}
		_, _ = nomadOn(t, l, "nomad system gc")
		if out, _ := nomadOn(t, l, "nomad job status"); !strings.Contains(out, "No running jobs") {
			t.Errorf("jobs left on the real cluster:\n%s", out)
		}
	})
}

// jobsInventory is the real cluster's inventory (the share's clients:
// cattle, c1-c3), with edits.
func jobsInventory(t *testing.T, l *lab.Lab, edits ...string) string {
	t.Helper()
	return labInventory(t, l, edits...)
}

// rawJob is a service job of the lab's clients: a raw_exec task that
// renders a template from a host path (what migrate-jobs moves) and
// sleeps; extra goes into its group (a service, a check).
func rawJob(name, tplDir, extra string) string {
	return `job "` + name + `" {
  datacenters = ["lab"]
  group "g" {
    update {
      min_healthy_time  = "1s"
      healthy_deadline  = "10s"
      progress_deadline = "0"
    }
` + extra + `    task "t" {
      driver = "raw_exec"
      config {
        command = "/bin/sh"
        args    = ["-c", "cat local/app.conf; exec sleep 3600"]
      }
      template {
        source      = "` + tplDir + `/app.tpl"
        destination = "local/app.conf"
      }
    }
  }
}
`
}

// failingCheck is a service whose Consul TCP check nothing answers.
const failingCheck = `    network {
      port "http" {}
    }
    service {
      name     = "hoctl-e2e-chk"
      port     = "http"
      provider = "consul"
      check {
        type     = "tcp"
        interval = "1s"
        timeout  = "1s"
      }
    }
`

// --plan shows real Nomad's diff and changes nothing; --submit is blocked
// by a missing path, then writes and registers job by job with the
// confirmed plan's check index, stopping at a job whose Consul check
// fails (exit 5, naming the allocation and why); a job someone else
// registers while the operator reads the plan is refused by Nomad's
// EnforceIndex, not overwritten; the last run submits what is left.
func TestMigrateJobsPlanAndSubmit(t *testing.T) {
	l := realCluster(t)
	env := stateEnv(t)
	purgeJobsAfter(t, l, "web", "chk", "db")
	nodes := []string{"zippy", "c1", "c2", "c3"}
	for _, h := range nodes {
		mustInMachine(t, l, h, `for j in web chk db; do mkdir -p /data/compute/$j; echo "old $j" > /data/compute/$j/app.tpl; done`)
	}
	// The new path: the share on the clients (c1-c3 mount it), and
	// zippy's own /data/services (zippy is a Nomad client too).
	newPaths := `for j in web chk; do mkdir -p /data/services/$j; echo "new $j" > /data/services/$j/app.tpl; done; rm -rf /data/services/db`
	mustInMachine(t, l, "zippy", newPaths)
	onShare(t, l, newPaths)
	t.Cleanup(func() {
		for _, h := range nodes {
			_, _ = inMachine(l, h, "rm -rf /data/compute")
		}
		_, _ = inMachine(l, "zippy", "rm -rf /data/services/web /data/services/chk /data/services/db")
		onShare(t, l, "rm -rf /data/services/web /data/services/chk /data/services/db")
	})
	dir := t.TempDir()
	files := map[string]string{
		"a-web.hcl": rawJob("web", "/data/compute/web", ""),
		"b-chk.hcl": rawJob("chk", "/data/compute/chk", failingCheck),
		"c-db.hcl":  rawJob("db", "/data/compute/db", ""),
	}
	for n, src := range files {
		if err := os.WriteFile(filepath.Join(dir, n), []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// Nomad runs web as it is today, from the old path.
	if out, err := nomadOn(t, l, "cat > /root/web.hcl <<'EOF'\n"+files["a-web.hcl"]+"EOF\nnomad job run /root/web.hcl"); err != nil {
		t.Fatalf("nomad job run web: %v\n%s", err, out)
	}
	// version is the job's version and template source as Nomad has
	// them, or Nomad's "No job(s) ... found".
	version := func(job string) string {
		out, _ := nomadOn(t, l, "nomad job inspect -t '{{.Version}} {{(index (index (index .TaskGroups 0).Tasks 0).Templates 0).SourcePath}}' "+job+" 2>&1")
		return strings.TrimSpace(out)
	}
	args0 := func(job string) string {
		out, _ := nomadOn(t, l, "nomad job inspect -t '{{index (index (index .TaskGroups 0).Tasks 0).Config \"args\"}}' "+job+" 2>&1")
		return out
	}
	if v := version("web"); v != "0 /data/compute/web/app.tpl" {
		t.Fatalf("web before: %q", v)
	}
	inv := jobsInventory(t, l)
	args := []string{"migrate-jobs", "--dir", dir, "--from", "/data/compute", "--to", "/data/services"}

	// --plan, with Nomad reached through an SSH tunnel to c2 (nomad.via).
	nomadAddr := "nomad:\n  address: http://" + l.Host("c1").Addr + ":4646\n"
	viaC2 := jobsInventory(t, l, nomadAddr, nomadAddr+"  via: c2\n")
	r := hoctlEnv(t, viaC2, env, append(args, "--plan")...)
	t.Logf("--plan:\n%s", r.stdout)
	if r.code != 0 || !strings.Contains(r.stdout, "edited job \"web\"\n  edited task g/t\n    Template.SourcePath: \"/data/compute/web/app.tpl\" => \"/data/services/web/app.tpl\"\n  group g: 0 create, 1 destroy/create") ||
		!strings.Contains(r.stdout, `added job "db"`) || strings.Contains(r.stdout, "ChangeMode") {
		t.Fatalf("--plan: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if v := version("web"); v != "0 /data/compute/web/app.tpl" {
		t.Fatalf("--plan changed web: %q", v)
	}

	// db's new path is not on the share yet: nothing is written or
	// submitted.
	r = hoctlEnv(t, inv, env, append([]string{"--yes"}, append(args, "--submit")...)...)
	if r.code != 3 || !regexp.MustCompile(`missing: [^;\n]*/data/services/db`).MatchString(r.stderr) {
		t.Fatalf("a missing path must block --submit: exit %d\n%s", r.code, r.stderr)
	}
	if v := version("chk"); !strings.Contains(v, "No job(s)") {
		t.Fatalf("chk was submitted although the run was refused: %q", v)
	}
	mustInMachine(t, l, "zippy", "mkdir -p /data/services/db && echo 'new db' > /data/services/db/app.tpl")
	onShare(t, l, "mkdir -p /data/services/db && echo 'new db' > /data/services/db/app.tpl")

	// web moves (a real destructive update, healthy); chk runs but its
	// Consul check fails: Nomad fails its deployment at healthy_deadline,
	// and the run stops there (exit 5); db is not submitted.
	r = hoctlEnv(t, inv, env, append([]string{"--yes"}, append(args, "--submit")...)...)
	t.Logf("--submit:\n%s", r.stderr)
	if r.code != 5 || !strings.Contains(r.stderr, "job chk: deployment ") || !strings.Contains(r.stderr, "failed: Failed due to unhealthy allocations; allocations failed: ") ||
		!strings.Contains(r.stderr, `Consul check "service: \"hoctl-e2e-chk\" check" critical`) {
		t.Fatalf("a job failing its health check must stop the run with exit 5, naming its allocation and check: exit %d\n%s", r.code, r.stderr)
	}
	// status shows it too: chk runs, but its deployment failed.
	if st := hoctlEnv(t, inv, env, "status"); st.code != 1 || !strings.Contains(st.stdout, "failed deployments: chk (version 0: Failed due to unhealthy allocations)") {
		t.Errorf("status must show chk's failed deployment: exit %d\n%s", st.code, st.stdout)
	}
	if v := version("web"); v != "1 /data/services/web/app.tpl" {
		t.Fatalf("web after --submit: %q", v)
	}
	if out, _ := nomadOn(t, l, `curl -sf "$NOMAD_ADDR/v1/job/web/submission?version=1"`); !strings.Contains(out, `source      = \"/data/services/web/app.tpl\"`) || !strings.Contains(out, `"Format":"hcl2"`) {
		t.Fatalf("web's submission is not its rewritten HCL source:\n%s", out)
	}
	if v := version("db"); !strings.Contains(v, "No job(s)") {
		t.Fatalf("db was submitted after chk failed: %q", v)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "c-db.hcl")); !strings.Contains(string(b), "/data/services/db") {
		t.Fatal("the files are written before any job is submitted")
	}

	// chk fixed (no check), submitted again on a terminal; while the
	// operator reads the plan, someone else registers db. Nomad refuses
	// hoctl's register of db (check index 0: the job must not exist).
	p := filepath.Join(dir, "b-chk.hcl")
	if err := os.WriteFile(p, []byte(rawJob("chk", "/data/services/chk", "")), 0o644); err != nil {
		t.Fatal(err)
	}
	tty := startOnTTY(t, append(env, "HOCTL_INVENTORY="+inv), append(args, "--submit")...)
	tty.waitScreen(t, "[y/N]")
	theirs := strings.Replace(rawJob("db", "/data/services/db", ""), "sleep 3600", "sleep 3599", 1)
	if out, err := nomadOn(t, l, "cat > /root/db.hcl <<'EOF'\n"+theirs+"EOF\nnomad job run -detach /root/db.hcl"); err != nil {
		t.Fatalf("someone else's nomad job run db: %v\n%s", err, out)
	}
	if _, err := tty.master.Write([]byte("y\n")); err != nil {
		t.Fatal(err)
	}
	code := tty.exitCode(t)
	t.Logf("--submit with db registered meanwhile: exit %d\n%s", code, tty.out.String())
	if code != 1 || !strings.Contains(tty.out.String(), "Nomad already runs this version: not submitted") ||
		!strings.Contains(tty.out.String(), "nomad: db changed since it was planned") {
		t.Fatalf("exit %d, want 1: web skipped, chk submitted, db refused by its check index\n%s", code, tty.out.String())
	}
	if out := args0("db"); !strings.Contains(out, "sleep 3599") {
		t.Fatalf("hoctl overwrote the job someone else registered:\n%s", out)
	}
	if v := version("chk"); !strings.HasPrefix(v, "1 ") {
		t.Fatalf("the fixed chk was not submitted: %q", v)
	}

	// Run again: it plans db anew (from what Nomad runs now) and submits.
	r = hoctlEnv(t, inv, env, append([]string{"--yes"}, append(args, "--submit")...)...)
	if r.code != 0 || !strings.Contains(r.stderr, "deployment ") || !strings.Contains(r.stderr, "successful") {
		t.Fatalf("--submit after the conflict: exit %d\n%s", r.code, r.stderr)
	}
	if out := args0("db"); !strings.Contains(out, "sleep 3600") {
		t.Fatalf("db not submitted from its file:\n%s", out)
	}
	// chk's fix is a later, successful deployment: status is clear of it.
	if st := hoctlEnv(t, inv, env, "status"); strings.Contains(st.stdout, "failed deployments") {
		t.Errorf("status still shows a failed deployment after the fix:\n%s", st.stdout)
	}
}

// migrate-jobs --write: the default run only shows diffs; --write refuses
// while a new host path is missing on the share (checked on the client
// c1 over SSH) and writes nothing; once the data is there it writes
// atomically with the file's mode kept, and a second run changes nothing.
func TestMigrateJobsChecksTheShareThenWrites(t *testing.T) {
	l := realCluster(t)
	env := stateEnv(t)
	dir := t.TempDir()
	for name, src := range map[string]string{
		"gitea.hcl": `job "gitea" {
  group "g" {
    task "gitea" {
      driver = "docker"
      config {
        image   = "gitea/gitea:1.22"
        volumes = ["/data/compute/gitea:/data"]   # repos
      }
    }
  }
}
`,
		"immich.nomad": "job \"immich\" {\r\n  group \"g\" {\r\n    task \"s\" {\r\n      driver = \"docker\"\r\n      config {\r\n        mount {\r\n          type   = \"bind\"\r\n          source = \"/data/compute/immich/upload\"\r\n          target = \"/upload\"\r\n        }\r\n      }\r\n    }\r\n  }\r\n}\r\n",
	} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(src), 0o640); err != nil {
			t.Fatal(err)
		}
	}
	before := map[string]string{}
	for _, n := range []string{"gitea.hcl", "immich.nomad"} {
		b, _ := os.ReadFile(filepath.Join(dir, n))
		before[n] = string(b)
	}
	// The old share (GlusterFS on the clients) has data for both.
	mustInMachine(t, l, "c1", "mkdir -p /data/compute/gitea /data/compute/immich/upload && echo repo > /data/compute/gitea/r && echo img > /data/compute/immich/upload/i")
	onShare(t, l, "mkdir -p /data/services/gitea && echo repo > /data/services/gitea/r")
	t.Cleanup(func() {
		_, _ = inMachine(l, "c1", "rm -rf /data/compute")
		onShare(t, l, "rm -rf /data/services/gitea /data/services/immich")
	})
	inv := jobsInventory(t, l)

	args := []string{"migrate-jobs", "--dir", dir, "--from", "/data/compute", "--to", "/data/services"}
	r := hoctlEnv(t, inv, env, args...)
	if r.code != 0 || !strings.Contains(r.stdout, "+        volumes = [\"/data/services/gitea:/data\"]   # repos") || !regexp.MustCompile(`\n2 +2 +2 +0 +0\n`).MatchString(r.stderr) {
		t.Fatalf("dry run: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	r = hoctlEnv(t, inv, env, append([]string{"--yes"}, append(args, "--write")...)...)
	if r.code != 3 || !strings.Contains(r.stderr, "missing: /data/services/immich/upload") {
		t.Fatalf("a missing path must block --write: exit %d\n%s", r.code, r.stderr)
	}
	for n, want := range before {
		if b, _ := os.ReadFile(filepath.Join(dir, n)); string(b) != want {
			t.Fatalf("%s changed although the run was refused", n)
		}
	}

	// There but empty, while the old path has data: the copy was not done.
	onShare(t, l, "mkdir -p /data/services/immich/upload")
	r = hoctlEnv(t, inv, env, append([]string{"--yes"}, append(args, "--write")...)...)
	if r.code != 3 || !strings.Contains(r.stderr, "empty where the old path has data: /data/services/immich/upload") {
		t.Fatalf("an empty new path must block --write: exit %d\n%s", r.code, r.stderr)
	}
	onShare(t, l, "echo img > /data/services/immich/upload/i")
	r = hoctlEnv(t, inv, env, append([]string{"--yes"}, append(args, "--write")...)...)
	if r.code != 0 {
		t.Fatalf("--write: exit %d\n%s", r.code, r.stderr)
	}
	for n, old := range before {
		p := filepath.Join(dir, n)
		b, _ := os.ReadFile(p)
		if want := strings.Replace(old, "\"/data/compute/", "\"/data/services/", 1); string(b) != want {
			t.Fatalf("%s:\n%q\nwant\n%q", n, b, want)
		}
		if st, _ := os.Stat(p); st.Mode().Perm() != 0o640 {
			t.Fatalf("%s mode %v, want 0640 kept", n, st.Mode())
		}
	}
	if leftovers, _ := filepath.Glob(filepath.Join(dir, ".*hoctl*")); len(leftovers) > 0 {
		t.Fatalf("temporary files left: %v", leftovers)
	}
	r = hoctlEnv(t, inv, env, append([]string{"--yes"}, append(args, "--write")...)...)
	if r.code != 0 || r.stdout != "" || !regexp.MustCompile(`\n2 +0 +0 `).MatchString(r.stderr) {
		t.Fatalf("a second run must change nothing: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	hist := hoctlEnv(t, inv, env, "history")
	if !strings.Contains(hist.stdout, "migrate-jobs") {
		t.Fatalf("the write is not journaled:\n%s", hist.stdout)
	}
}

// onShare changes the NFS share as a client's write would: the script,
// written with the export's paths, runs on the serving zippy (its
// subvolume), then every client mounts the share again (the lab's client
// mounts are read at mount time and read-only, docs/lab.md).
func onShare(t *testing.T, l *lab.Lab, script string) {
	t.Helper()
	mustInMachine(t, l, "zippy", strings.ReplaceAll(script, lab.NFSExport, lab.NFSSubvol))
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := l.MountNFSClients(ctx); err != nil {
		t.Fatalf("remounting the share on the clients: %v", err)
	}
}
