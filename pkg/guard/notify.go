package guard

import (
	"net"
	"strings"
)

// Notifier tells systemd how the guard is (sd_notify(3)): READY=1 once
// it has read its state and checked the lease, then WATCHDOG=1 from its
// decision loop, so that systemd kills and restarts a guard that is
// wedged or stopped (WatchdogSec= in its unit).
type Notifier struct{ Socket string } // $NOTIFY_SOCKET; "" does nothing

// Notify sends state; systemd's answer is not awaited.
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
	if _, err := c.Write([]byte(state)); err != nil {
		_ = c.Close()
		return err
	}
	return c.Close()
}
