package lab

import (
	"fmt"
	"strings"
)

// ConsulPort is the HTTP API port of every machine's Consul agent, on the
// machine's own address.
const ConsulPort = 8500

// prepareConsul installs consul.service: a server on quorum hosts
// (bootstrap_expect = the number of quorum hosts), an agent elsewhere.
// Never a wildcard address, never a request off this machine: no update
// check, no DNS or gRPC listeners, no WAN gossip.
func (l *Lab) prepareConsul(h *Host) error {
	servers := l.servers()
	join := `"` + strings.Join(servers, `", "`) + `"`
	role := "server = false\n"
	if hasRole(h, "quorum") {
		role = fmt.Sprintf("server = true\nbootstrap_expect = %d\nperformance { raft_multiplier = 1 }\n", len(servers))
	}
	cfg := fmt.Sprintf(`# hoctl lab: %s
node_name = %q
datacenter = "lab"
data_dir = "/var/lib/consul"
bind_addr = %q
advertise_addr = %q
client_addr = %q
ports { dns = -1, grpc = -1, serf_wan = -1, http = %d }
retry_join = [%s]
retry_interval = "1s"
disable_update_check = true
leave_on_terminate = true
log_level = "WARN"
%s`, h.Name, h.Name, h.Addr, h.Addr, h.Addr, ConsulPort, join, role)
	unit := `[Unit]
Description=Consul agent
Wants=network-online.target
After=network-online.target

[Service]
ExecStart=/usr/local/bin/consul agent -config-dir=/etc/consul.d
ExecReload=/bin/kill -HUP $MAINPID
KillSignal=SIGINT
Restart=on-failure
RestartSec=2
Environment=CONSUL_HTTP_ADDR=http://` + h.Addr + `:8500

[Install]
WantedBy=multi-user.target
`
	if err := h.upper("etc/consul.d/consul.hcl", cfg, 0o644); err != nil {
		return err
	}
	// The CLI on the host talks to its own agent (it defaults to 127.0.0.1).
	if err := h.upper("etc/profile.d/hoctl-lab-agents.sh", fmt.Sprintf("export CONSUL_HTTP_ADDR=http://%s:%d NOMAD_ADDR=http://%s:%d\n", h.Addr, ConsulPort, h.Addr, NomadPort), 0o644); err != nil {
		return err
	}
	if err := h.upper("etc/systemd/system/consul.service", unit, 0o644); err != nil {
		return err
	}
	return h.enable("consul.service", "multi-user.target")
}
