package lab

import (
	"context"
	"testing"
	"time"
)

// A wrapper killed by Teardown is reparented to this machine's init,
// which may reap it only seconds later (here: every ~2 s); a zombie is
// gone, or teardown waits for each host in turn.
func TestGoneSeesAZombie(t *testing.T) {
	cmd := ToolCmd(context.Background(), "true")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pid := cmd.Process.Pid
	defer func() { _ = cmd.Wait() }()
	deadline := time.Now().Add(10 * time.Second)
	for !gone(pid) {
		if time.Now().After(deadline) {
			t.Fatalf("pid %d exited (unreaped) but gone says it is running", pid)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatal(err)
	}
	if !gone(pid) {
		t.Fatalf("reaped pid %d is not gone", pid)
	}
	if gone(1) {
		t.Fatal("init is gone")
	}
}
