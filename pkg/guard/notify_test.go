package guard

import (
	"errors"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// A notify socket whose queue is full (PID 1 reads none while it runs a
// daemon-reload, and any local user may fill it) does not hold the
// guard: the send gives up and says so (attack H3: the loop waited in
// its WATCHDOG=1 past its lease's end, and the server served beside the
// new primary).
func TestNotifyDoesNotWaitForAFullQueue(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "notify")
	l, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = l.Close() }() // never read: systemd busy

	// Fill its queue, as the attack's user did.
	c, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = c.Close() }()
	sent := 0
	for {
		if err := c.SetWriteDeadline(time.Now().Add(50 * time.Millisecond)); err != nil {
			t.Fatal(err)
		}
		if _, err := c.Write([]byte("STATUS=x")); err != nil {
			if !errors.Is(err, os.ErrDeadlineExceeded) {
				t.Fatalf("filling the queue: %v", err)
			}
			break
		}
		if sent++; sent > 100000 {
			t.Fatal("the queue never fills")
		}
	}

	done := make(chan error, 1)
	go func() { done <- Notifier{Socket: sock}.Notify("WATCHDOG=1") }()
	select {
	case err := <-done:
		if err == nil {
			t.Fatalf("sent into a full queue (%d datagrams before it): no error", sent)
		}
		t.Logf("after %d datagrams: %v", sent, err)
	case <-time.After(time.Minute):
		t.Fatalf("Notify still waits for room in a full queue (%d datagrams) after a minute", sent)
	}
}
