package guard

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// Attack F3: a suspend stops Go's timers and monotonic clock, not
// CLOCK_BOOTTIME. Here boottime jumps by an hour (a host resumed): the
// clock's Now says so, and a timer set for half an hour fires at once,
// not half an hour of running time later. (Only a ceiling is asserted.)
func TestBootClockCountsASuspend(t *testing.T) {
	var boot atomic.Int64
	boot.Store(int64(time.Minute))
	c := newBootClock(func() (time.Duration, error) { return time.Duration(boot.Load()), nil }, 10*time.Millisecond)
	before := c.Now()
	fired := make(chan struct{})
	c.AfterFunc(30*time.Minute, func() { close(fired) })
	ctx, cancel := c.WithDeadline(context.Background(), before.Add(30*time.Minute))
	defer cancel()
	boot.Add(int64(time.Hour)) // suspended for an hour
	if d := c.Now().Sub(before); d != time.Hour {
		t.Errorf("Now moved %s over an hour of suspend", d)
	}
	select {
	case <-fired:
	case <-time.After(time.Minute):
		t.Fatal("a timer due during the suspend did not fire after it")
	}
	select {
	case <-ctx.Done():
	case <-time.After(time.Minute):
		t.Fatal("a request's deadline passed during the suspend did not end it")
	}
	stopped := c.AfterFunc(time.Hour, func() { t.Error("a stopped timer fired") })
	if !stopped() || stopped() {
		t.Error("stop: want true once, then false")
	}
	boot.Add(int64(2 * time.Hour))
	time.Sleep(50 * time.Millisecond)
}

// --check-lease's read: a regular file owned by root and written by no
// one else, opened without following a link; the lease holds only
// confirmed and not run out.
func TestReadLease(t *testing.T) {
	dir := t.TempDir()
	clock := NewBootClock()
	f := NewFileState(dir, key, clock)
	now := clock.Now()
	if err := f.Save(Stored{LeaseEnd: now.Add(10 * time.Second), Confirmed: now.Add(-5 * time.Second)}); err != nil {
		t.Fatal(err)
	}
	bt := clock.Boottime(now)
	if os.Geteuid() == 0 {
		l, err := ReadLease(f.Path)
		if err != nil || l.Holds(bt) != "" {
			t.Fatalf("a held lease: %+v %v %q", l, err, l.Holds(bt))
		}
		if why := l.Holds(bt + 11*time.Second); why == "" {
			t.Error("a lease run out holds")
		}
		if why := (Lease{End: bt + time.Hour}).Holds(bt); why == "" {
			t.Error("a lease never confirmed (a guard just started) holds")
		}
		if err := os.Chmod(f.Path, 0o620); err != nil {
			t.Fatal(err)
		}
		if _, err := ReadLease(f.Path); err == nil {
			t.Error("a group-writable file was read")
		}
		if err := os.Chmod(f.Path, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chown(f.Path, 65534, 65534); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := ReadLease(f.Path); err == nil {
		t.Error("a file not owned by root was read")
	}
	link := filepath.Join(dir, "link.json")
	if err := os.Symlink(f.Path, link); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadLease(link); !errors.Is(err, syscall.ELOOP) {
		t.Errorf("a symlink: %v, want ELOOP", err)
	}
	fifo := filepath.Join(dir, "fifo.json")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadLease(fifo); err == nil {
		t.Error("a FIFO was read")
	}
	if _, err := ReadLease(filepath.Join(dir, "none.json")); err == nil {
		t.Error("no file: no error")
	}
}

// Attack F4: Run tells systemd READY=1 once the lease is checked, then
// WATCHDOG=1 from its loop every Heartbeat, whatever Consul does (here
// it hangs); through a real notify socket.
func TestRunFeedsTheWatchdog(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "notify")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = conn.Close() }()
	var mu sync.Mutex
	var got []string
	go func() {
		buf := make([]byte, 256)
		for {
			n, err := conn.Read(buf)
			if err != nil {
				return
			}
			mu.Lock()
			got = append(got, string(buf[:n]))
			mu.Unlock()
		}
	}()
	release := make(chan struct{})
	defer close(release)
	g := New(Config{Key: "k", Unit: "nfs-server.service", Host: "zippy", Heartbeat: 10 * time.Millisecond, Notify: Notifier{Socket: sock}.Notify},
		&hangingConsul{release: release}, &recordingUnits{}, nil, nil)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- g.Run(ctx) }()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		mu.Lock()
		n := len(got)
		mu.Unlock()
		if n >= 5 {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(got) < 5 || got[0] != "READY=1" || slices.ContainsFunc(got[1:], func(s string) bool { return s != "WATCHDOG=1" }) {
		t.Fatalf("told systemd %q, want READY=1 then WATCHDOG=1 again and again", got)
	}
}

// A systemctl call that takes longer than the watchdog (a unit whose
// stop commands take their time) keeps it fed: seen on the real
// cluster, a guard killed in the middle of its own lease stop left
// the stop unrecorded.
func TestSlowSystemctlKeepsTheWatchdogFed(t *testing.T) {
	var mu sync.Mutex
	n := 0
	f := fedUnits{Units: slowUnits{&recordingUnits{}}, beat: 5 * time.Millisecond, notify: func(s string) {
		mu.Lock()
		defer mu.Unlock()
		if s == "WATCHDOG=1" {
			n++
		}
	}}
	if err := f.Stop(context.Background(), "u"); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if n < 2 {
		t.Fatalf("%d WATCHDOG=1 during a 200 ms stop, beat 5 ms", n)
	}
}

type slowUnits struct{ *recordingUnits }

func (slowUnits) Stop(context.Context, string) error {
	time.Sleep(200 * time.Millisecond)
	return nil
}
