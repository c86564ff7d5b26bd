package e2e

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// migrate-jobs on the NFS lab: the default run only shows diffs; --write
// refuses while a new host path is missing on the share (checked on a
// client over SSH) and writes nothing; once the data is there it writes
// atomically with the file's mode kept, and a second run changes nothing.
func TestMigrateJobsChecksTheShareThenWrites(t *testing.T) {
	zippy, c1, _, env := nfsStart(t)
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
	must(t, c1, "mkdir -p /data/compute/gitea /data/compute/immich/upload && echo repo > /data/compute/gitea/r && echo img > /data/compute/immich/upload/i")
	t.Cleanup(func() { must(t, c1, "rm -rf /data/compute") })
	must(t, zippy, "mkdir -p /persist/services/gitea && echo repo > /persist/services/gitea/r")

	args := []string{"migrate-jobs", "--dir", dir, "--from", "/data/compute", "--to", "/data/services"}
	r := hoctlEnv(t, nfsLab.Inventory, env, args...)
	if r.code != 0 || !strings.Contains(r.stdout, "+        volumes = [\"/data/services/gitea:/data\"]   # repos") || !regexp.MustCompile(`\n2 +2 +2 +0 +0\n`).MatchString(r.stderr) {
		t.Fatalf("dry run: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	r = hoctlEnv(t, nfsLab.Inventory, env, append([]string{"--yes"}, append(args, "--write")...)...)
	if r.code != 3 || !strings.Contains(r.stderr, "missing: /data/services/immich/upload") {
		t.Fatalf("a missing path must block --write: exit %d\n%s", r.code, r.stderr)
	}
	for n, want := range before {
		if b, _ := os.ReadFile(filepath.Join(dir, n)); string(b) != want {
			t.Fatalf("%s changed although the run was refused", n)
		}
	}

	// There but empty, while the old path has data: the copy was not done.
	must(t, zippy, "mkdir -p /persist/services/immich/upload")
	r = hoctlEnv(t, nfsLab.Inventory, env, append([]string{"--yes"}, append(args, "--write")...)...)
	if r.code != 3 || !strings.Contains(r.stderr, "empty where the old path has data: /data/services/immich/upload") {
		t.Fatalf("an empty new path must block --write: exit %d\n%s", r.code, r.stderr)
	}
	must(t, zippy, "echo img > /persist/services/immich/upload/i")
	r = hoctlEnv(t, nfsLab.Inventory, env, append([]string{"--yes"}, append(args, "--write")...)...)
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
	r = hoctlEnv(t, nfsLab.Inventory, env, append([]string{"--yes"}, append(args, "--write")...)...)
	if r.code != 0 || r.stdout != "" || !regexp.MustCompile(`\n2 +0 +0 `).MatchString(r.stderr) {
		t.Fatalf("a second run must change nothing: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	hist := hoctlEnv(t, nfsLab.Inventory, env, "history")
	if !strings.Contains(hist.stdout, "migrate-jobs") {
		t.Fatalf("the write is not journaled:\n%s", hist.stdout)
	}
}

// --plan shows Nomad's diff and changes nothing; --submit is blocked by a
// missing path, then writes and registers each job with its check index
// and HCL source, one at a time, stopping at the first whose allocations
// do not become healthy (exit 5, naming it).
func TestMigrateJobsPlanAndSubmit(t *testing.T) {
	zippy, c1, _, env := nfsStart(t)
	dir := t.TempDir()
	job := func(name, image string) string {
		return `job "` + name + `" {
  group "g" {
    task "t" {
      driver = "docker"
      config {
        image   = "` + image + `"
        volumes = ["/data/compute/` + name + `:/data"]
      }
    }
  }
}
`
	}
	files := map[string]string{"a-web.hcl": job("web", "nginx:1.27"), "b-crashy.hcl": job("crashy", "crashloop:1"), "c-db.hcl": job("db", "postgres:16")}
	for n, src := range files {
		if err := os.WriteFile(filepath.Join(dir, n), []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	must(t, c1, "mkdir -p /data/compute/web /data/compute/crashy /data/compute/db")
	t.Cleanup(func() { must(t, c1, "rm -rf /data/compute") })
	args := []string{"migrate-jobs", "--dir", dir, "--from", "/data/compute", "--to", "/data/services"}

	// --plan, with Nomad reached through an SSH tunnel to c2 (nomad.via).
	viaC2 := labInventory(t, nfsLab, "nomad:\n  address: http://"+nfsNomad.Addr+"\n", "nomad:\n  address: http://"+nfsNomad.Addr+"\n  via: c2\n")
	r := hoctlEnv(t, viaC2, env, append(args, "--plan")...)
	if r.code != 0 || !strings.Contains(r.stdout, `added job "web"`) {
		t.Fatalf("--plan: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	r = hoctlEnv(t, nfsLab.Inventory, env, append([]string{"--yes"}, append(args, "--submit")...)...)
	if r.code != 3 || !regexp.MustCompile(`missing: [^;\n]*/data/services/web`).MatchString(r.stderr) {
		t.Fatalf("a missing path must block --submit: exit %d\n%s", r.code, r.stderr)
	}
	if _, ok := nfsNomad.Submitted("web"); ok {
		t.Fatal("a job was submitted although the run was refused")
	}

	must(t, zippy, "mkdir -p /persist/services/web /persist/services/crashy /persist/services/db")
	r = hoctlEnv(t, nfsLab.Inventory, env, append([]string{"--yes"}, append(args, "--submit")...)...)
	if r.code != 5 || !strings.Contains(r.stderr, "job crashy") || !strings.Contains(r.stderr, "allocations failed") {
		t.Fatalf("an unhealthy job must stop the run with exit 5: exit %d\n%s", r.code, r.stderr)
	}
	web, ok := nfsNomad.Submitted("web")
	if !ok || !strings.Contains(web, `"/data/services/web:/data"`) {
		t.Fatalf("web was not submitted with its rewritten source: %q", web)
	}
	if _, ok := nfsNomad.Submitted("db"); ok {
		t.Fatal("db was submitted after crashy failed")
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "c-db.hcl")); !strings.Contains(string(b), "/data/services/db") {
		t.Fatal("the files are written before any job is submitted")
	}

	// Fix crashy and submit again: web is skipped (Nomad runs it already),
	// crashy and db go.
	p := filepath.Join(dir, "b-crashy.hcl")
	b, _ := os.ReadFile(p)
	if err := os.WriteFile(p, []byte(strings.Replace(string(b), "crashloop:1", "busybox:1", 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	r = hoctlEnv(t, nfsLab.Inventory, env, append([]string{"--yes"}, append(args, "--submit")...)...)
	if r.code != 0 || !strings.Contains(r.stderr, "Nomad already runs this version: not submitted") {
		t.Fatalf("--submit after the fix: exit %d\n%s", r.code, r.stderr)
	}
	if db, ok := nfsNomad.Submitted("db"); !ok || !strings.Contains(db, "/data/services/db") {
		t.Fatalf("db not submitted: %q", db)
	}
	if c, _ := nfsNomad.Submitted("crashy"); !strings.Contains(c, "busybox:1") {
		t.Fatalf("the fixed crashy not submitted: %q", c)
	}
}
