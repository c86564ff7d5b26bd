package lab

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
)

// state is lab.json: enough to tear a lab down from another process, or
// to attach to it (hoctl-lab kill HOST).
type state struct {
	Config Config      `json:"config"`
	Hosts  []hostState `json:"hosts"`
}

type hostState struct {
	Name string   `json:"name"`
	Addr string   `json:"addr"`
	Dir  string   `json:"dir"`
	Pid  int      `json:"pid"`
	Spec HostSpec `json:"spec"`
}

func readState(dir string) (*state, error) {
	data, err := os.ReadFile(filepath.Join(dir, "lab.json"))
	if err != nil {
		return nil, err
	}
	var st state
	if err := json.Unmarshal(data, &st); err != nil {
		return nil, fmt.Errorf("%s/lab.json: %w", dir, err)
	}
	return &st, nil
}

// Attach returns the lab running in dir, as recorded by Start.
func Attach(dir string) (*Lab, error) {
	st, err := readState(dir)
	if err != nil {
		return nil, fmt.Errorf("no lab in %s: %w", dir, err)
	}
	l := &Lab{Config: st.Config,
		ClientKey:  filepath.Join(dir, "id_ed25519"),
		KnownHosts: filepath.Join(dir, "known_hosts"),
		Inventory:  filepath.Join(dir, "inventory.yaml"),
	}
	for _, h := range st.Hosts {
		l.Hosts = append(l.Hosts, &Host{Name: h.Name, Addr: h.Addr, Dir: h.Dir, Pid: h.Pid, spec: h.Spec})
	}
	return l, nil
}

func (l *Lab) saveState() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	st := state{Config: l.Config}
	for _, h := range l.Hosts {
		st.Hosts = append(st.Hosts, hostState{Name: h.Name, Addr: h.Addr, Dir: h.Dir, Pid: h.Pid, Spec: h.spec})
	}
	b, _ := json.MarshalIndent(st, "", "  ")
	tmp := filepath.Join(l.Dir, "lab.json.tmp")
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, filepath.Join(l.Dir, "lab.json"))
}
