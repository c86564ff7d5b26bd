package cli

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hoctl/hoctl/internal/ptytest"
)

// asHoctlEnv makes this test binary run as hoctl (TestMain), so that a
// shell under test can call it by that name for its completions.
const asHoctlEnv = "HOCTL_TEST_BINARY_IS_HOCTL"

func TestMain(m *testing.M) {
	if os.Getenv(asHoctlEnv) == "1" {
		os.Exit(Main(os.Args[1:], BuildInfo{Version: "test"}))
	}
	os.Exit(m.Run())
}

// Completion as an operator gets it: an interactive bash (with
// bash-completion), zsh and fish on a real terminal, hoctl's own script
// loaded, TAB pressed. TARGET expressions hold ",", "!" and "&": before,
// bash completed nothing after a comma (cobra matched "cattle\,zippy"
// against "cattle,z") and no shell completed inside a quote.
func TestCompletionInRealShells(t *testing.T) {
	dir := t.TempDir()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "bin")
	if err := os.Mkdir(bin, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(exe, filepath.Join(bin, "hoctl")); err != nil {
		t.Fatal(err)
	}
	inv := filepath.Join(dir, "inventory.yaml")
	if err := os.WriteFile(inv, []byte(testInventory), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, shell := range []string{"bash", "zsh", "fish"} {
		c := exec.Command(exe, "completion", shell)
		c.Env = append(os.Environ(), asHoctlEnv+"=1")
		out, err := c.Output()
		if err != nil {
			t.Fatalf("completion %s: %v", shell, err)
		}
		name := map[string]string{"bash": "hoctl.bash", "zsh": "_hoctl", "fish": "hoctl.fish"}[shell]
		if err := os.WriteFile(filepath.Join(dir, name), out, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	cases := []struct{ typed, want string }{
		{"hoctl ping cattle,z", "hoctl ping cattle,zippy"},
		{"hoctl ping zi", "hoctl ping zippy"},
		{`hoctl ping cattle,\!z`, "hoctl ping cattle,!zippy"},
		{`hoctl ping 'cattle,!z`, "hoctl ping cattle,!zippy"},
		{`hoctl ping 'cattle,&q`, "hoctl ping cattle,&quorum"},
		{`hoctl ping cattle,\&q`, "hoctl ping cattle,&quorum"},
		{"hoctl run cattle,z", "hoctl run cattle,zippy"},
		{"hoctl runbook plan x.yaml --limit c1,z", "hoctl runbook plan x.yaml --limit c1,zippy"},
	}
	shells := map[string]struct {
		argv  []string
		setup string
	}{
		"bash": {[]string{"bash", "--norc", "--noprofile", "-i"},
			"source /usr/share/bash-completion/bash_completion; source " + dir + "/hoctl.bash; PS1='$ '\n"},
		"zsh": {[]string{"zsh", "-f", "-i"},
			"fpath=(" + dir + " $fpath); autoload -U compinit; compinit -u -D; PS1='$ '\n"},
		"fish": {[]string{"fish", "--no-config", "-i"},
			"source " + dir + "/hoctl.fish; function fish_prompt; echo '$ '; end\n"},
	}
	for _, shell := range []string{"bash", "zsh", "fish"} {
		t.Run(shell, func(t *testing.T) {
			sh := shells[shell]
			path, err := exec.LookPath(sh.argv[0])
			if err != nil {
				if os.Getenv("CI") == "true" {
					t.Fatalf("%s is not installed (make deps installs it)", shell)
				}
				t.Skipf("%s is not installed (make deps installs it)", shell)
			}
			if shell == "bash" {
				if _, err := os.Stat("/usr/share/bash-completion/bash_completion"); err != nil {
					t.Skip("bash-completion is not installed (make deps installs it)")
				}
			}
			p, err := ptytest.Open(200, 50)
			if err != nil {
				t.Fatal(err)
			}
			defer func() { _ = p.Close() }()
			cmd := exec.Command(path, sh.argv[1:]...)
			home := t.TempDir()
			cmd.Env = append(os.Environ(), "PATH="+bin+":"+os.Getenv("PATH"), "HOME="+home, "XDG_CONFIG_HOME="+home,
				"XDG_DATA_HOME="+home, "TERM=dumb", "HOCTL_INVENTORY="+inv, asHoctlEnv+"=1", "HISTFILE=/dev/null")
			cmd.Stdin, cmd.Stdout, cmd.Stderr = p.Slave, p.Slave, p.Slave
			cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true, Ctty: 0}
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
			type_ := func(s string) {
				if _, err := p.Master.WriteString(s); err != nil {
					t.Fatal(err)
				}
			}
			type_(sh.setup)
			for i, c := range cases {
				// TAB, then to the start of the line to turn it into an
				// echo of itself: what the shell would run.
				marker := fmt.Sprintf("ARGS%d:", i)
				type_(c.typed + "\t\x01echo " + marker + "\n")
				re := regexp.MustCompile(`\n` + marker + `([^\r\n]*)\r?\n`)
				deadline := time.Now().Add(30 * time.Second)
				for {
					if m := re.FindStringSubmatch(p.Screen()); m != nil {
						if got := strings.TrimSpace(m[1]); got != c.want {
							t.Errorf("%s: %q<TAB> gives %q, want %q", shell, c.typed, got, c.want)
						}
						break
					}
					if time.Now().After(deadline) {
						t.Fatalf("%s: %q<TAB>: no answer; the terminal shows:\n%q", shell, c.typed, p.Screen())
					}
					time.Sleep(20 * time.Millisecond)
				}
			}
		})
	}
}
