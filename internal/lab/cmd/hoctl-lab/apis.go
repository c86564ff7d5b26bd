package main

import (
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/hoctl/hoctl/internal/lab/consulsim"
	"github.com/hoctl/hoctl/internal/lab/nomadsim"
)

// The endpoint servers run in a process of their own, detached, so that
// they outlive `hoctl-lab up`; its pid is kept beside the lab directory
// (the lab's start-up empties the directory itself).
func apisPidFile(dir string) string { return filepath.Clean(dir) + ".apis.pid" }

func startAPIs(dir, consulAddr, nomadAddr string) error {
	self, err := os.Executable()
	if err != nil {
		return err
	}
	logf, err := os.Create(filepath.Join(dir, "apis.log"))
	if err != nil {
		return err
	}
	defer func() { _ = logf.Close() }()
	cmd := exec.Command(self, "-dir", dir, "serve-apis", consulAddr, nomadAddr)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return err
	}
	if err := os.WriteFile(apisPidFile(dir), []byte(strconv.Itoa(cmd.Process.Pid)), 0o644); err != nil {
		return err
	}
	_ = cmd.Process.Release()
	for i := 0; i < 100; i++ {
		if b, _ := os.ReadFile(filepath.Join(dir, "apis.log")); strings.Contains(string(b), "serving") {
			return nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	b, _ := os.ReadFile(filepath.Join(dir, "apis.log"))
	return fmt.Errorf("the endpoint servers did not start: %s", b)
}

// stopAPIs kills the recorded endpoint-server process, only if it is
// this lab's.
func stopAPIs(dir string) {
	b, err := os.ReadFile(apisPidFile(dir))
	if err != nil {
		return
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	cmdline, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if pid > 0 && strings.Contains(string(cmdline), "serve-apis") && strings.Contains(string(cmdline), dir) {
		_ = syscall.Kill(pid, syscall.SIGTERM)
		for i := 0; i < 100; i++ {
			if _, err := os.Stat(fmt.Sprintf("/proc/%d", pid)); err != nil {
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	_ = os.Remove(apisPidFile(dir))
}

func serveAPIs(consulAddr, nomadAddr string) error {
	c, err := consulsim.Start(consulAddr)
	if err != nil {
		return err
	}
	defer func() { _ = c.Close() }()
	n, err := nomadsim.Start(nomadAddr)
	if err != nil {
		return err
	}
	defer func() { _ = n.Close() }()
	fmt.Printf("serving Consul on %s and Nomad on %s\n", c.Addr, n.Addr)
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	<-sig
	return nil
}
