package inventory

import (
	"fmt"
	"strings"
)

// sameMachine refuses two hosts that reach one sshd (the same address,
// port and jump host): hoctl would run one host's commands on the other,
// and every check of the one would pass on the other. A copied line is
// the usual cause.
func (v *validator) sameMachine() {
	type endpoint struct {
		addr string
		port int
		jump string
	}
	seen := map[endpoint]string{}
	for _, n := range v.inv.order {
		h := v.inv.Hosts[n]
		addr := h.Address
		if addr == "" {
			addr = h.Name
		}
		if addr == LocalAddress {
			continue
		}
		s := v.inv.Settings(h)
		port := s.Port
		if port == 0 {
			port = 22
		}
		e := endpoint{strings.ToLower(addr), port, s.Jump}
		first, ok := seen[e]
		if !ok {
			seen[e] = n
			continue
		}
		via := ""
		if s.Jump != "" {
			via = " through " + s.Jump
		}
		v.at("hosts."+n+".address", "%s", fmt.Sprintf("%s reaches the same sshd as %s (%s port %d%s): hoctl would run one's commands on the other; give each host its own address", n, first, addr, port, via))
	}
}
