package lab

import (
	"fmt"
)

// NomadPort is the HTTP API port of every machine's Nomad agent.
const NomadPort = 4646

// prepareNomad installs nomad.service: server and client on quorum hosts,
// client elsewhere, with raw_exec (a task sees its host's filesystem).
// Addresses are the host's own; no update check; the cloud fingerprinters,
// which would ask metadata services off this machine, are denied.
// Templates may read host files (disable_file_sandbox): a job whose
// template source is a host path, which migrate-jobs rewrites, fails
// its task otherwise ("template source path escapes alloc directory"),
// so a cluster with such jobs is configured this way.
func (l *Lab) prepareNomad(h *Host) error {
	servers := l.servers()
	server := ""
	if hasRole(h, "quorum") {
		server = fmt.Sprintf("server {\n  enabled = true\n  bootstrap_expect = %d\n  raft_multiplier = 1\n  server_join { retry_join = [%s]\n    retry_interval = \"1s\" }\n}\n", len(servers), quoted(servers, ""))
	}
	cfg := fmt.Sprintf(`# hoctl lab: %s
name = %q
datacenter = "lab"
data_dir = "/var/lib/nomad"
bind_addr = %q
addresses { http = %q, rpc = %q, serf = %q }
advertise { http = %q, rpc = %q, serf = %q }
disable_update_check = true
log_level = "WARN"
%sclient {
  enabled = true
  servers = [%s]
  network_interface = "lo"
  template { disable_file_sandbox = true }
  options = {
    "fingerprint.denylist" = "env_aws,env_gce,env_azure,env_digitalocean"
    "driver.allowlist" = "raw_exec"
  }
}
plugin "raw_exec" { config { enabled = true } }
consul { address = "%s:%d" }
`, h.Name, h.Name, h.Addr, h.Addr, h.Addr, h.Addr, h.Addr, h.Addr, h.Addr, server, quoted(servers, ":4647"), h.Addr, ConsulPort)
	return h.installService("nomad.service",
		unit("Nomad agent", []string{"network-online.target", "consul.service"},
			"ExecStart=/usr/local/bin/nomad agent -config=/etc/nomad.d",
			"ExecReload=/bin/kill -HUP $MAINPID",
			"KillMode=process",
			"KillSignal=SIGINT",
			"Restart=on-failure",
			"RestartSec=2",
			fmt.Sprintf("Environment=NOMAD_ADDR=http://%s:%d", h.Addr, NomadPort)),
		true,
		file{"etc/nomad.d/nomad.hcl", cfg, 0o644})
}
