package sshexec

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// An Include that reaches a device, a FIFO or a huge file is refused
// before the ssh_config library reads it; `Include /dev/zero` used to grow
// hoctl's memory until it was killed.
func TestSSHConfigIncludesAreBounded(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	big := write("big", strings.Repeat("# padding\n", 200_000))
	loop := filepath.Join(dir, "loop")
	write("loop", "Include "+loop+"\n")
	for name, cfg := range map[string]string{
		"device":       "Include /dev/zero\n",
		"fifo":         "Host *\n  include=" + fifo + " # a comment\n",
		"big":          "INCLUDE " + big + "\n",
		"glob reaches": "Include " + filepath.Join(dir, "fi*") + "\n",
		"loop":         "Include " + loop + "\n",
	} {
		t.Run(name, func(t *testing.T) {
			_, err := LoadSSHConfig(write("config-"+strings.ReplaceAll(name, " ", "-"), cfg))
			if err == nil {
				t.Fatalf("config %q was accepted", cfg)
			}
			t.Log(err)
		})
	}
	t.Run("itself a device", func(t *testing.T) {
		if _, err := LoadSSHConfig("/dev/zero"); err == nil || !strings.Contains(err.Error(), "not a regular file") {
			t.Fatalf("got %v", err)
		}
	})

	// An ordinary Include still works, and a keyword that only starts
	// with "include" is not one.
	inc := write("work.conf", "Host db\n  User alice\n  Port 2222\n")
	sc, err := LoadSSHConfig(write("config-ok", "IncludeSomething no\nInclude "+inc+"\n"))
	if err != nil {
		t.Fatal(err)
	}
	if got := sc.get("db", "User"); got != "alice" {
		t.Fatalf("User from the included file: %q", got)
	}
}
