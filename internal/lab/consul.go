package lab

import (
	"fmt"
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
%s`, h.Name, h.Name, h.Addr, h.Addr, h.Addr, ConsulPort, quoted(servers, ""), role)
	return h.installService("consul.service",
		unit("Consul agent", []string{"network-online.target"},
			"ExecStart=/usr/local/bin/consul agent -config-dir=/etc/consul.d",
			"ExecReload=/bin/kill -HUP $MAINPID",
			"KillSignal=SIGINT",
			"Restart=on-failure",
			"RestartSec=2",
			fmt.Sprintf("Environment=CONSUL_HTTP_ADDR=http://%s:%d", h.Addr, ConsulPort)),
		true,
		file{"etc/consul.d/consul.hcl", cfg, 0o644},
		// The CLIs on the host talk to its own agents (they default to
		// 127.0.0.1).
		file{"etc/profile.d/hoctl-lab-agents.sh", fmt.Sprintf("export CONSUL_HTTP_ADDR=http://%s:%d NOMAD_ADDR=http://%s:%d\n", h.Addr, ConsulPort, h.Addr, NomadPort), 0o644})
}
