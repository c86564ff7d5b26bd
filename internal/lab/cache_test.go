package lab

import (
	"os"
	"path/filepath"
	"testing"
)

func TestMirrorIn(t *testing.T) {
	for _, tc := range []struct{ name, text, want string }{
		{"deb822", "Types: deb\n# comment\nURIs: http://deb.debian.org/debian\nSuites: bookworm bookworm-updates\nComponents: main\nSigned-By: /k.gpg\n\nTypes: deb\nURIs: http://deb.debian.org/debian-security\nSuites: bookworm-security\nComponents: main\n", "http://deb.debian.org/debian"},
		{"one-line with options", "deb [arch=amd64 signed-by=/k.gpg] http://mirror.example/debian bookworm main contrib\n", "http://mirror.example/debian"},
		{"security only", "deb http://deb.debian.org/debian-security bookworm-security main\n", ""},
		{"deb-src only", "Types: deb-src\nURIs: http://x/debian\nSuites: bookworm\nComponents: main\n", ""},
		{"other distribution", "deb https://packages.cloud.google.com/apt cloud-sdk-bookworm main\n", ""},
		{"no main", "deb http://x/debian bookworm contrib\n", ""},
	} {
		if got := mirrorIn(tc.text); got != tc.want {
			t.Errorf("%s: mirrorIn = %q, want %q", tc.name, got, tc.want)
		}
	}
}

func TestAptMirrorNone(t *testing.T) {
	if _, err := aptMirror(t.TempDir()); err == nil {
		t.Fatal("no sources: want an error, not a guessed mirror")
	}
}

func TestTreeSHA256(t *testing.T) {
	dir := t.TempDir()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.MkdirAll(filepath.Join(dir, "etc"), 0o755))
	must(os.WriteFile(filepath.Join(dir, "etc/a"), []byte("one"), 0o644))
	must(os.Symlink("/dev/null", filepath.Join(dir, "etc/masked")))
	sum, err := treeSHA256(dir)
	must(err)
	if _, err := record(dir, treeSHA256); err != nil {
		t.Fatal(err)
	}
	if !checkRecorded(dir, treeSHA256) {
		t.Fatal("an unchanged tree must pass its check")
	}
	for _, change := range []func(){
		func() { must(os.WriteFile(filepath.Join(dir, "etc/a"), []byte("two"), 0o644)) },
		func() { must(os.Chmod(filepath.Join(dir, "etc/a"), 0o600)) },
		func() {
			must(os.Remove(filepath.Join(dir, "etc/masked")))
			must(os.Symlink("/bin/true", filepath.Join(dir, "etc/masked")))
		},
		func() { must(os.WriteFile(filepath.Join(dir, "etc/new"), nil, 0o644)) },
	} {
		change()
		if checkRecorded(dir, treeSHA256) {
			t.Fatal("a changed tree must fail its check")
		}
		got, err := treeSHA256(dir)
		must(err)
		if got == sum {
			t.Fatal("the hash must change with the tree")
		}
		sum = got
		_, err = record(dir, treeSHA256)
		must(err)
	}
}

func TestCheckRecordedBinary(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "consul")
	if err := os.WriteFile(bin, []byte("binary"), 0o755); err != nil {
		t.Fatal(err)
	}
	if checkRecorded(bin, fileSHA256) {
		t.Fatal("no recorded sum: must not pass")
	}
	if _, err := record(bin, fileSHA256); err != nil {
		t.Fatal(err)
	}
	if !checkRecorded(bin, fileSHA256) {
		t.Fatal("recorded: must pass")
	}
	if err := os.WriteFile(bin, []byte("binarx"), 0o755); err != nil {
		t.Fatal(err)
	}
	if checkRecorded(bin, fileSHA256) {
		t.Fatal("damaged: must not pass")
	}
}

func TestRootfsRecipeKeysOnPackages(t *testing.T) {
	a := rootfsRecipe()
	saved := rootfsPackages
	defer func() { rootfsPackages = saved }()
	rootfsPackages = append(append([]string{}, saved...), "extra")
	if rootfsRecipe() == a {
		t.Fatal("a different package list must make a different rootfs key")
	}
}

func TestUnescapeMount(t *testing.T) {
	if got := unescapeMount(`/tmp/a\040b/c`); got != "/tmp/a b/c" {
		t.Fatalf("got %q", got)
	}
	if got := unescapeMount(`/plain`); got != "/plain" {
		t.Fatalf("got %q", got)
	}
}

func TestMountsUnderSeesProc(t *testing.T) {
	if m := mountsUnder("/proc"); len(m) == 0 || m[0] != "/proc" {
		t.Fatalf("mountsUnder(/proc) = %v", m)
	}
	if m := mountsUnder(t.TempDir()); len(m) != 0 {
		t.Fatalf("a fresh dir has mounts: %v", m)
	}
}
