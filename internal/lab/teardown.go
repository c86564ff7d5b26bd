package lab

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Stop takes every host down and removes the lab's directory.
func (l *Lab) Stop() error {
	return Teardown(l.Dir)
}

// Teardown removes the lab recorded in dir, if any: it kills the recorded
// unshare processes (after checking that each pid is still a lab process
// for this dir, so a reused pid is never touched), waits for their
// namespaces to go, detaches any loop device still backed by the lab's
// images, and deletes dir.
func Teardown(dir string) error {
	st, err := readState(dir)
	if os.IsNotExist(err) {
		st, err = &state{}, nil
	}
	if err != nil {
		return err
	}
	if err := removePartitions(dir); err != nil {
		return err
	}
	var wg sync.WaitGroup
	for _, h := range st.Hosts {
		wg.Add(1)
		go func() { defer wg.Done(); killLabPid(h.Pid, dir) }()
	}
	wg.Wait()
	// Machines: whatever is left in the lab's cgroups (nothing, after
	// the wrappers died; but a stale lab is cleaned whatever it left).
	if err := killCgroup(labCgroup(dir)); err != nil {
		return err
	}
	for _, h := range st.Hosts {
		waitLoopGone(filepath.Join(h.Dir, "disk.img"), 5*time.Second)
	}
	// A lab left by an older hoctl may still have this machine's /proc
	// mounted in its directory (its NFS shims used it).
	if err := unmountHostProc(dir); err != nil {
		return err // never RemoveAll through a mounted /proc
	}
	removeNixBuilds(dir)
	return os.RemoveAll(dir)
}

// isLabPid reports whether pid is an unshare started for a lab in dir.
func isLabPid(pid int, dir string) bool {
	cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil {
		return false
	}
	args := strings.Split(string(cmdline), "\x00")
	return len(args) > 0 && filepath.Base(args[0]) == "unshare" && strings.Contains(string(cmdline), dir+"/hosts/")
}

func killLabPid(pid int, dir string) {
	if !isLabPid(pid, dir) {
		return
	}
	// A stopped (hung) sshd must be continued for SIGKILL of its parent
	// to be delivered to it promptly: SIGKILL works on stopped
	// processes, but be explicit.
	kids := children(pid)
	for _, child := range kids {
		_ = syscall.Kill(child, syscall.SIGCONT)
	}
	_ = syscall.Kill(pid, syscall.SIGKILL)
	// Wait for unshare and for the namespace's init (sshd), whose death
	// ends every process of the host.
	deadline := time.Now().Add(5 * time.Second)
	for _, p := range append([]int{pid}, kids...) {
		for time.Now().Before(deadline) {
			if gone(p) {
				break
			}
			// Reap it if it is our child (Stop from the starting process).
			var ws syscall.WaitStatus
			_, _ = syscall.Wait4(p, &ws, syscall.WNOHANG, nil)
			time.Sleep(10 * time.Millisecond)
		}
	}
}

// gone reports whether pid has exited: no such process, or a zombie. A
// lab's wrapper outlives the command that started it, so its parent is
// this machine's init, which may take seconds to reap it; a zombie
// holds no namespace, mount or loop device any more.
func gone(pid int) bool {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return true
	}
	s := string(data)
	i := strings.LastIndexByte(s, ')')
	return i < 0 || i+2 >= len(s) || s[i+2] == 'Z' || s[i+2] == 'X'
}

func children(pid int) []int {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", pid, pid))
	if err != nil {
		return nil
	}
	var out []int
	for _, f := range strings.Fields(string(data)) {
		if n, err := strconv.Atoi(f); err == nil {
			out = append(out, n)
		}
	}
	return out
}

// waitLoopGone waits for the kernel to release the loop device of img
// (autoclear, once its mount namespace is gone), detaching it if it lingers.
func waitLoopGone(img string, timeout time.Duration) {
	deadline := time.Now().Add(timeout)
	for {
		out, _ := ToolCmd(context.Background(), "losetup", "-j", img).Output()
		devs := loopDevices(string(out))
		if len(devs) == 0 {
			return
		}
		if time.Now().After(deadline) {
			for _, d := range devs {
				_ = ToolCmd(context.Background(), "losetup", "-d", d).Run()
			}
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func loopDevices(losetupJ string) []string {
	var devs []string
	for _, line := range strings.Split(losetupJ, "\n") {
		if i := strings.Index(line, ":"); i > 0 && strings.HasPrefix(line, "/dev/loop") {
			devs = append(devs, line[:i])
		}
	}
	return devs
}

// unmountHostProc unmounts the view of this machine's /proc that an older
// lab's NFS shims mounted in its directory, if it is there.
func unmountHostProc(dir string) error {
	p := filepath.Join(dir, "hostproc")
	for i := 0; ToolCmd(context.Background(), "mountpoint", "-q", p).Run() == nil; i++ {
		if i == 3 {
			return fmt.Errorf("%s is still mounted", p)
		}
		if ToolCmd(context.Background(), "umount", p).Run() != nil {
			_ = ToolCmd(context.Background(), "umount", "-l", p).Run()
		}
	}
	return nil
}
