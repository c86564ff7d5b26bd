package lab

// Which real services a machine runs follows the seed's roles: quorum
// hosts are Consul and Nomad servers (and Nomad clients, as c1-c3 are);
// compute and storage hosts run a Consul agent and a Nomad client; the NFS
// primary and standbys have nfs-server.service (ganesha). Plain hosts run
// sshd only. Every unit file is in /etc/systemd/system, as on NixOS.

func hasRole(h *Host, role string) bool { return contains(h.spec.Roles, role) }

// runsConsul, runsNomad: see the package comment above.
func runsConsul(h *Host) bool {
	return hasRole(h, "quorum") || hasRole(h, "compute") || hasRole(h, "storage")
}

func runsNomad(h *Host) bool { return runsConsul(h) }

func runsNFS(h *Host) bool { return hasRole(h, "nfs-primary") || hasRole(h, "nfs-standby") }

// servers are the quorum hosts' addresses.
func (l *Lab) servers() []string {
	var out []string
	for _, h := range l.Hosts {
		if hasRole(h, "quorum") {
			out = append(out, h.Addr)
		}
	}
	return out
}

func (l *Lab) prepareServices(h *Host) error {
	if runsConsul(h) {
		if err := l.prepareConsul(h); err != nil {
			return err
		}
	}
	if runsNomad(h) {
		if err := l.prepareNomad(h); err != nil {
			return err
		}
	}
	if runsNFS(h) {
		if err := l.prepareNFS(h); err != nil {
			return err
		}
	}
	return nil
}
