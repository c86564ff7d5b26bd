package inventory

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestExampleInventoryLoads(t *testing.T) {
	inv, err := Load(context.Background(), filepath.Join("..", "..", "inventory.yaml"))
	if err != nil {
		t.Fatalf("example inventory: %v", err)
	}
	want := []string{"zippy", "c1", "c2", "c3", "fractal", "sunny", "chilly"}
	if got := inv.HostNames(); !reflect.DeepEqual(got, want) {
		t.Fatalf("host order = %v, want %v", got, want)
	}
	if inv.Host("fractal").IsManaged() {
		t.Error("fractal is managed: false in the file")
	}
	r := inv.Replication["services"]
	if r == nil || r.Source.Host != "zippy" || r.Target.Dir != "/persist/services-standby" || r.Keep.Target.Count != 48 {
		t.Errorf("replication.services = %+v", r)
	}
	n := inv.NFS["data-services"]
	if n == nil || n.MaxLag != 15*time.Minute || n.Standbys[0] != "c1" {
		t.Errorf("nfs.data-services = %+v", n)
	}
	s := inv.Settings(inv.Host("c2"))
	if s.User != "root" || s.Port != 22 || s.ConnectTimeout != 10*time.Second || s.HostKeyPolicy != "strict" {
		t.Errorf("merged settings for c2 = %+v", s)
	}
	if len(inv.Hash) != 64 {
		t.Errorf("hash = %q", inv.Hash)
	}
}

const minimal = `
hosts:
  a1: {address: 10.0.0.1, roles: [web]}
  a2: {address: 10.0.0.2, roles: [web, db], port: 2222}
  b1: {address: local}
groups:
  pair: [a1, b1]
`

func parse(t *testing.T, src string) (*Inventory, error) {
	t.Helper()
	return Parse("test.yaml", []byte(src))
}

func TestSelect(t *testing.T) {
	inv, err := parse(t, minimal)
	if err != nil {
		t.Fatal(err)
	}
	cases := map[string][]string{
		"all":      {"a1", "a2", "b1"},
		"a1":       {"a1"},
		"web":      {"a1", "a2"},
		"db":       {"a2"},
		"pair":     {"a1", "b1"},
		"a*":       {"a1", "a2"},
		"b1,a2":    {"a2", "b1"},
		"web,pair": {"a1", "a2", "b1"},
		" a1 , a1": {"a1"},
		"?1":       {"a1", "b1"},
	}
	for expr, want := range cases {
		hosts, err := inv.Select(expr)
		if err != nil {
			t.Errorf("Select(%q): %v", expr, err)
			continue
		}
		var got []string
		for _, h := range hosts {
			got = append(got, h.Name)
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("Select(%q) = %v, want %v", expr, got, want)
		}
	}
}

func TestSelectUnknownSuggests(t *testing.T) {
	inv, err := parse(t, minimal)
	if err != nil {
		t.Fatal(err)
	}
	for expr, wantSub := range map[string]string{
		"a3":     `did you mean "a1" or "a2"`,
		"wbe":    `"web"`,
		"pari":   `"pair"`,
		"z*":     "glob matches no host",
		"a1,,a2": "empty term",
		"":       "empty target",
		"[":      "bad glob",
	} {
		_, err := inv.Select(expr)
		var te *TargetError
		if !errors.As(err, &te) {
			t.Errorf("Select(%q) err = %v, want TargetError", expr, err)
			continue
		}
		if !strings.Contains(err.Error(), wantSub) {
			t.Errorf("Select(%q) = %q, want it to contain %q", expr, err, wantSub)
		}
	}
}

func TestErrorsNameFileLineColumnAndField(t *testing.T) {
	cases := []struct {
		name, src, want string
	}{
		{"unknown field", "hosts:\n  a: {address: x, colour: red}\n", "test.yaml:2:19: hosts.a: unknown field \"colour\""},
		{"unknown top-level", "hosts:\n  a: {address: x}\nhostz: {}\n", "test.yaml:3:1: unknown field \"hostz\""},
		{"bad port", "hosts:\n  a:\n    address: x\n    port: 70000\n", "test.yaml:4:11: hosts.a.port: expected a TCP port"},
		{"port type", "hosts:\n  a:\n    address: x\n    port: twenty\n", "test.yaml:4:11"},
		{"ignore policy", "defaults:\n  host_key_policy: ignore\nhosts:\n  a: {address: x}\n", "test.yaml:2:20: defaults.host_key_policy: \"ignore\" is not supported"},
		{"group member", "hosts:\n  a: {address: x}\ngroups:\n  g: [a, b]\n", "test.yaml:4:10: groups.g.1: \"b\" is not a host"},
		{"replication source", "hosts:\n  zippy: {address: x}\n  c1: {address: y}\nreplication:\n  s:\n    source: {host: zipy, subvolume: /persist/s}\n    target: {host: c1, dir: /persist/t}\n",
			`test.yaml:6:20: replication.s.source.host: "zipy" is not a host of this inventory; did you mean "zippy"?`},
		{"nfs standby", "hosts:\n  z: {address: x}\nnfs:\n  d:\n    export: /data/d\n    subvolume: /persist/d\n    primary: z\n    standbys: [c9]\n", `test.yaml:8:16: nfs.d.standbys.0: "c9" is not a host`},
		{"relative path", "hosts:\n  z: {address: x}\nreplication:\n  s:\n    source: {host: z, subvolume: persist/s}\n    target: {host: z, dir: /t}\n", "replication.s.source.subvolume: expected a clean absolute path"},
		{"bad duration", "defaults:\n  connect_timeout: soon\nhosts:\n  a: {address: x}\n", "test.yaml:2:20: defaults.connect_timeout: expected a duration such as 10s"},
		{"syntax", "hosts:\n  a: {address: x\n", "test.yaml:2:"},
		{"empty", "   \n", "inventory is empty"},
		{"no hosts", "groups: {}\n", "hosts: expected at least one host"},
		{"jump loop", "hosts:\n  a: {address: x, jump: b}\n  b: {address: y, jump: a}\n", "jump hosts form a loop"},
		{"jump unknown", "hosts:\n  a: {address: x, jump: bastion}\n", `hosts.a.jump: expected a host of this inventory or user@host:port, got "bastion"`},
		{"deploy quorum", "hosts:\n  a: {address: x}\ndeploy:\n  quorum: quorum\n", `deploy.quorum: "quorum" is neither a role nor a group`},
		{"deploy template", "hosts:\n  a: {address: x}\ndeploy:\n  command: \"deploy {{.Host\"\n", "deploy.command: bad template"},
		{"role is host", "hosts:\n  a: {address: x, roles: [b]}\n  b: {address: y}\n", `role "b" is also a host name`},
		{"duplicate key", "hosts:\n  a: {address: x}\n  a: {address: y}\n", "test.yaml:3:3"},
		{"consul url", "hosts:\n  a: {address: x}\nconsul: {address: 127.0.0.1:8500}\n", "consul.address: expected an http:// or https:// URL"},
		// An address is a host name or an IP address: one shell word a
		// runbook may paste as it is ({{.HostInfo.Address}}).
		{"address with a shell character", "hosts:\n  a: {address: 'x;id'}\n", `hosts.a.address: expected a host name, an IP address or "local", got "x;id"`},
		{"address with a quote", "hosts:\n  a: {address: \"x'y\"}\n", `hosts.a.address: expected a host name, an IP address or "local", got "x'y"`},
		{"address with a dollar", "hosts:\n  a: {address: 'x$HOME'}\n", `hosts.a.address: expected a host name, an IP address or "local"`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := parse(t, c.src)
			if err == nil {
				t.Fatalf("no error for %q", c.src)
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error = %q\nwant it to contain %q", err, c.want)
			}
		})
	}
}

func TestDefaultsAreFilledWhereFileIsSilent(t *testing.T) {
	inv, err := parse(t, "hosts:\n  z: {address: x}\n  c: {address: y}\nreplication:\n  s:\n    source: {host: z, subvolume: /persist/services}\n    target: {host: c, dir: /persist/standby}\nnfs:\n  d: {export: /data/d, subvolume: /persist/services, primary: z}\n")
	if err != nil {
		t.Fatal(err)
	}
	r := inv.Replication["s"]
	if r.Source.SnapshotDir != "/persist/services-snapshots" || r.Keep.Source.Count != DefaultKeepSource || r.Transport != "relay" || r.Compress != "none" {
		t.Errorf("replication defaults: %+v", r)
	}
	d := inv.NFS["d"]
	if d.OwnerKey != "hoctl/nfs/d/owner" || d.Unit != DefaultNFSUnit || d.MaxLag != DefaultMaxLag {
		t.Errorf("nfs defaults: %+v", d)
	}
	if inv.Deploy.Command != DefaultDeployCmd || inv.Jobs.Dir != "services" {
		t.Errorf("deploy/jobs defaults: %+v %+v", inv.Deploy, inv.Jobs)
	}
}

func TestHostSettingsOverrideDefaults(t *testing.T) {
	inv, err := parse(t, "defaults: {user: admin, port: 22, become: sudo}\nhosts:\n  a: {address: x, port: 2200, user: root}\n  b: {address: y}\n")
	if err != nil {
		t.Fatal(err)
	}
	a := inv.Settings(inv.Host("a"))
	b := inv.Settings(inv.Host("b"))
	if a.User != "root" || a.Port != 2200 || a.Become != "sudo" {
		t.Errorf("a = %+v", a)
	}
	if b.User != "admin" || b.Port != 22 {
		t.Errorf("b = %+v", b)
	}
	if got := inv.GroupsOf("a"); len(got) != 0 {
		t.Errorf("groups of a = %v", got)
	}
}

func TestLoadMissingFile(t *testing.T) {
	_, err := Load(context.Background(), filepath.Join(t.TempDir(), "nope.yaml"))
	if err == nil || !strings.Contains(err.Error(), "nope.yaml: cannot read inventory: no such file") {
		t.Fatalf("err = %v", err)
	}
}

func TestParseJump(t *testing.T) {
	for in, want := range map[string][3]string{
		"bastion":            {"", "bastion", "0"},
		"admin@bastion:2222": {"admin", "bastion", "2222"},
		"bastion:22":         {"", "bastion", "22"},
		"u@[::1]:22":         {"u", "::1", "22"},
	} {
		u, h, p, err := ParseJump(in)
		if err != nil {
			t.Errorf("ParseJump(%q): %v", in, err)
			continue
		}
		if u != want[0] || h != want[1] || strconv.Itoa(p) != want[2] {
			t.Errorf("ParseJump(%q) = %q %q %d", in, u, h, p)
		}
	}
	for _, bad := range []string{"u@:22", "h:port", "h:0"} {
		if _, _, _, err := ParseJump(bad); err == nil {
			t.Errorf("ParseJump(%q) accepted", bad)
		}
	}
}

func FuzzParse(f *testing.F) {
	seed, err := os.ReadFile(filepath.Join("..", "..", "inventory.yaml"))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(seed)
	f.Add([]byte(minimal))
	f.Add([]byte("hosts:\n  a: {address: x, jump: b}\n  b: {address: y, jump: a}\n"))
	f.Add([]byte("hosts:\n  z: {address: x}\nnfs:\n  d: {export: /data/d, subvolume: /p/s, primary: z, clients: 'z*,all'}\n"))
	f.Add([]byte("defaults: &d {user: root}\nhosts:\n  a: {<<: *d, address: x}\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		inv, err := Parse("fuzz.yaml", data)
		if err != nil {
			if err.Error() == "" {
				t.Fatal("empty error message")
			}
			return
		}
		for _, n := range inv.HostNames() {
			_ = inv.Settings(inv.Host(n))
			_, _ = inv.Select(n)
		}
		_, _ = inv.Select("all")
	})
}

// Issue 19 (after the dir primitive), finding 2: with snapshot_dir the
// subvolume's parent (/persist, also the default), the reverse
// replication's target filter was `hoctl target-filter /persist`, and a
// stream sent back after a failover could write ../services/f over the
// live subvolume. A replication dir that holds the replicated subvolume,
// or anything an NFS service serves, is refused with the fix.
func TestReplicationDirMustNotHoldTheSubvolume(t *testing.T) {
	const head = "hosts:\n  z: {address: x}\n  c: {address: y}\nreplication:\n  s:\n"
	for _, c := range []struct{ name, src, want string }{
		{"snapshot_dir the subvolume's parent", head + "    source: {host: z, subvolume: /persist/services, snapshot_dir: /persist}\n    target: {host: c, dir: /persist/standby}\n",
			"replication.s.source.snapshot_dir: /persist holds the replicated subvolume /persist/services"},
		{"snapshot_dir the subvolume itself", head + "    source: {host: z, subvolume: /persist/services, snapshot_dir: /persist/services}\n    target: {host: c, dir: /persist/standby}\n",
			"holds the replicated subvolume"},
		{"target dir above the subvolume", head + "    source: {host: z, subvolume: /persist/a/services, snapshot_dir: /persist/snaps}\n    target: {host: c, dir: /persist}\n",
			"replication.s.target.dir: /persist holds the replicated subvolume /persist/a/services"},
		{"a dir holding an NFS export", head + "    source: {host: z, subvolume: /persist/services, snapshot_dir: /persist/snaps}\n    target: {host: c, dir: /data}\n" +
			"nfs:\n  d: {export: /data/services, subvolume: /persist/services, primary: z, replication: s}\n",
			"replication.s.target.dir: /data holds /data/services, which NFS service d serves"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := parse(t, c.src)
			if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), "a dedicated directory") {
				t.Fatalf("error = %v\nwant it to contain %q and the fix", err, c.want)
			}
		})
	}
	ok := head + "    source: {host: z, subvolume: /persist/services, snapshot_dir: /persist/services-snapshots}\n    target: {host: c, dir: /persist/services-standby}\n" +
		"nfs:\n  d: {export: /data/services, subvolume: /persist/services, primary: z, replication: s}\n"
	if _, err := parse(t, ok); err != nil {
		t.Fatalf("dedicated dirs refused: %v", err)
	}
}
