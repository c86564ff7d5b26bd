package e2e

import (
	"os"
	"path/filepath"
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
	if r.code != 0 || !strings.Contains(r.stdout, "+        volumes = [\"/data/services/gitea:/data\"]   # repos") || !strings.Contains(r.stderr, "2        2        2         0") {
		t.Fatalf("dry run: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	r = hoctlEnv(t, nfsLab.Inventory, env, append([]string{"--yes"}, append(args, "--write")...)...)
	if r.code != 3 || !strings.Contains(r.stderr, "MISSING /data/services/immich/upload") {
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
	if r.code != 3 || !strings.Contains(r.stderr, "EMPTY /data/services/immich/upload") {
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
	if r.code != 0 || r.stdout != "" || !strings.Contains(r.stderr, "2        0        0") {
		t.Fatalf("a second run must change nothing: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	hist := hoctlEnv(t, nfsLab.Inventory, env, "history")
	if !strings.Contains(hist.stdout, "migrate-jobs") {
		t.Fatalf("the write is not journaled:\n%s", hist.stdout)
	}
}
