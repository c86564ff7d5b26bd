package lab

import (
	"fmt"
	"strings"
)

// Which real services a machine runs follows the seed's roles: quorum
// hosts are Consul and Nomad servers (and Nomad clients, as c1-c3 are);
// compute and storage hosts run a Consul agent and a Nomad client; the NFS
// primary and standbys have nfs-server.service (ganesha). Plain hosts run
// sshd only. Compute hosts are the NFS clients (nfsclient.go). Every unit file is in /etc/systemd/system, as on NixOS.

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
	if runsNFSClient(h) {
		if err := l.prepareNFSClient(h); err != nil {
			return err
		}
	}
	return nil
}

// unit is a service's unit file in /etc/systemd/system, as NixOS writes
// one: started after (and wanting) deps, wanted by multi-user.target when
// enabled, its [Service] lines as given.
func unit(description string, deps []string, service ...string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "[Unit]\nDescription=%s\n", description)
	if len(deps) > 0 {
		fmt.Fprintf(&b, "Wants=%s\nAfter=%s\n", strings.Join(deps, " "), strings.Join(deps, " "))
	}
	b.WriteString("\n[Service]\n")
	for _, line := range service {
		b.WriteString(line + "\n")
	}
	b.WriteString("\n[Install]\nWantedBy=multi-user.target\n")
	return b.String()
}

// withUnit adds lines to a unit file's [Unit] section.
func withUnit(unitFile string, lines ...string) string {
	if len(lines) == 0 {
		return unitFile
	}
	i := strings.Index(unitFile, "\n\n[Service]")
	return unitFile[:i+1] + strings.Join(lines, "\n") + unitFile[i:]
}

// installService writes a service's files and its unit into the host's
// own layer, and enables it when it starts at boot.
func (h *Host) installService(name, unitFile string, enabled bool, files ...file) error {
	files = append(files, file{"etc/systemd/system/" + name, unitFile, 0o644})
	if err := h.install(files...); err != nil {
		return err
	}
	if !enabled {
		return nil
	}
	return h.enable(name, "multi-user.target")
}

// quoted is an HCL list's items: "a", "b".
func quoted(items []string, suffix string) string {
	q := make([]string, len(items))
	for i, s := range items {
		q[i] = fmt.Sprintf("%q", s+suffix)
	}
	return strings.Join(q, ", ")
}
