package tasks

import (
	"errors"
	"os"
	"strconv"
	"strings"
	"syscall"
)

// procStart identifies a process beyond its PID, which the kernel reuses:
// the boot id and the process's start time in clock ticks since boot
// (field 22 of /proc/PID/stat). "" where /proc cannot tell.
func procStart(pid int) string {
	boot, err := os.ReadFile("/proc/sys/kernel/random/boot_id")
	if err != nil {
		return ""
	}
	stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return ""
	}
	// The command name (field 2) is in parentheses and may hold spaces
	// or parentheses itself: count fields after the last ')'.
	s := string(stat)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return ""
	}
	fields := strings.Fields(s[i+1:])
	// fields[0] is field 3 (state); starttime is field 22.
	if len(fields) < 20 {
		return ""
	}
	return strings.TrimSpace(string(boot)) + ":" + fields[19]
}

// processAlive reports whether the process that wrote a journal record
// (pid, and its procStart when recorded) still runs. A PID alone is not
// enough: after the run died, the kernel may have given it to another
// process, and the run would show as running for ever.
func processAlive(pid int, start string) bool {
	if pid <= 0 {
		return false
	}
	if start != "" {
		if now := procStart(pid); now != "" || procReadable() {
			return now == start
		}
	}
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}

// procReadable reports whether this system has /proc to ask.
func procReadable() bool {
	_, err := os.Stat("/proc/self/stat")
	return err == nil
}
