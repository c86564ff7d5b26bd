package guard

import (
	"net"
	"strings"
	"time"
)

// Notifier tells systemd how the guard is (sd_notify(3)): READY=1 once
// it has read its state and checked the lease, then WATCHDOG=1 from its
// decision loop, so that systemd kills and restarts a guard that is
// wedged or stopped (WatchdogSec= in its unit).
type Notifier struct{ Socket string } // $NOTIFY_SOCKET; "" does nothing

// notifyWait bounds a send to systemd's notify socket. Its queue holds
// few datagrams (net.unix.max_dgram_qlen, 10 by default), PID 1 reads
// none while it runs a daemon-reload, and any local user may write to
// it: a send waiting for room held the guard's loop past its lease's
// end (attack H3). A message not sent in time is dropped: a WATCHDOG=1
// missed costs at worst a restart of the guard by its watchdog.
const notifyWait = 100 * time.Millisecond

// Notify sends state; systemd's answer is not awaited, nor room in its
// queue for longer than notifyWait.
func (n Notifier) Notify(state string) error {
	if n.Socket == "" {
		return nil
	}
	addr := n.Socket
	if strings.HasPrefix(addr, "@") {
		addr = "\x00" + addr[1:] // an abstract socket
	}
	c, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: addr, Net: "unixgram"})
	if err != nil {
		return err
	}
	if err := c.SetWriteDeadline(time.Now().Add(notifyWait)); err != nil {
		_ = c.Close()
		return err
	}
	if _, err := c.Write([]byte(state)); err != nil {
		_ = c.Close()
		return err
	}
	return c.Close()
}
