package guard

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/hoctl/hoctl/pkg/failover"
)

// The fence the guard writes is the failover's: its drop-in path (which
// hoctl failover back removes), asserting its own absence, written and
// reloaded after the stop: a slow daemon-reload (attack F1) must not
// hold the stop. A hostile owner value cannot add a line to it.
func TestSystemdFenceWritesTheFailoverDropIn(t *testing.T) {
	root := t.TempDir()
	var calls []string
	s := &Systemd{Host: "zippy", Root: root, Exec: func(_ context.Context, args ...string) (string, error) {
		calls = append(calls, strings.Join(args, " "))
		if _, err := os.Stat(filepath.Join(root, failover.FenceDropIn("nfs-server.service"))); args[0] == "stop" && err == nil {
			t.Errorf("the drop-in is written before the stop")
		}
		return "", nil
	}}
	if err := s.Fence(context.Background(), "nfs-server.service", "owner key k names \"c1\n[Service]\nExecStartPre=/bin/evil\""); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(root, failover.FenceDropIn("nfs-server.service")))
	if err != nil {
		t.Fatal(err)
	}
	conf := string(b)
	if !strings.Contains(conf, "\n[Unit]\nAssertPathExists=!"+failover.FenceDropIn("nfs-server.service")+"\n") {
		t.Errorf("not the fence: %s", conf)
	}
	for _, l := range strings.Split(conf, "\n") {
		if strings.HasPrefix(l, "ExecStartPre") || strings.HasPrefix(l, "[Service]") {
			t.Errorf("the owner value added a line to the drop-in:\n%s", conf)
		}
	}
	if strings.Join(calls, ";") != "stop nfs-server.service;daemon-reload" {
		t.Errorf("systemctl calls %q, want the stop before the reload", calls)
	}
}

// Running is systemd's ActiveState; a unit in its start checks
// (start-pre: its --check-lease waits for this guard) does not run yet.
func TestSystemdRunning(t *testing.T) {
	for _, c := range []struct {
		out     string
		err     error
		running bool
		fails   bool
	}{
		{"ActiveState=active\nSubState=running", nil, true, false},
		{"ActiveState=deactivating\nSubState=stop-sigterm", nil, true, false},
		{"ActiveState=activating\nSubState=start-pre", nil, false, false},
		{"ActiveState=activating\nSubState=start-post", nil, true, false},
		{"ActiveState=activating\nSubState=auto-restart", nil, true, false},
		{"ActiveState=inactive\nSubState=dead", nil, false, false},
		{"ActiveState=failed\nSubState=failed", nil, false, false},
		{"", errors.New("exit status 1"), false, true},
		{"Failed to connect to bus: No such file or directory", errors.New("exit status 1"), false, true},
	} {
		var args []string
		s := &Systemd{Exec: func(_ context.Context, a ...string) (string, error) { args = a; return c.out, c.err }}
		running, err := s.Running(context.Background(), "u")
		if running != c.running || (err != nil) != c.fails {
			t.Errorf("show %q (%v): running %v err %v", c.out, c.err, running, err)
		}
		if strings.Join(args, " ") != "show -p ActiveState -p SubState u" {
			t.Errorf("systemctl %q", args)
		}
	}
}

func TestSystemdActivated(t *testing.T) {
	s := &Systemd{Exec: func(_ context.Context, a ...string) (string, error) {
		if strings.Join(a, " ") != "show -p ActiveEnterTimestampMonotonic --value u" {
			t.Errorf("systemctl %q", a)
		}
		return "123456789\n", nil
	}}
	if m, err := s.Activated(context.Background(), "u"); m != "123456789" || err != nil {
		t.Errorf("Activated: %q %v", m, err)
	}
}

// Finding 1: the guard's start is queued, never waited for (a start's
// post step can take minutes, during which the guard must act).
func TestSystemdStartDoesNotWait(t *testing.T) {
	var args []string
	s := &Systemd{Exec: func(_ context.Context, a ...string) (string, error) { args = a; return "", nil }}
	if err := s.Start(context.Background(), "nfs-server.service"); err != nil {
		t.Fatal(err)
	}
	if want := []string{"start", "--no-block", "nfs-server.service"}; !slices.Equal(args, want) {
		t.Fatalf("systemctl %q, want %q", args, want)
	}
}
