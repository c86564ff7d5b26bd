package inventory

import (
	"fmt"
	"net"
	"path"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"text/template"
	"time"
	"unicode"

	"github.com/goccy/go-yaml/ast"
	"github.com/hoctl/hoctl/pkg/yamlerr"
)

// Built-in values for fields the inventory may leave out.
const (
	DefaultKeepSource = 12
	DefaultKeepTarget = 48
	DefaultNFSUnit    = "nfs-server.service"
	DefaultMaxLag     = 15 * time.Minute
	DefaultDeployCmd  = "deploy -s .#{{.Host}}"
	DefaultJobsDir    = "services"
	TransportRelay    = "relay"
	TransportDirect   = "direct"
)

var nameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_-]*$`)

// hostnameRE is an address that is not an IP address: a DNS name, an
// ssh_config alias or "local".
var hostnameRE = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9._-]*$`)

type validator struct {
	name      string
	ast       *ast.File
	inv       *Inventory
	errs      Errors
	rawGroups map[string]any
}

// at records an error located at the YAML node for field (a dotted path);
// when the node is absent it falls back to the nearest parent that exists.
func (v *validator) at(field, format string, args ...any) {
	v.errs = append(v.errs, yamlerr.At(v.name, v.ast, field, format, args...))
}

func (v *validator) run() {
	inv := v.inv
	if len(inv.Hosts) == 0 {
		v.at("hosts", "expected at least one host")
	}
	v.shapeGroups()
	v.settings("defaults", inv.Defaults)
	v.vars("vars", inv.Vars)
	for _, n := range inv.order {
		v.host(inv.Hosts[n])
	}
	v.sameMachine()
	v.groups()
	v.varConflicts()
	v.api("consul", inv.Consul)
	v.api("nomad", inv.Nomad)
	for n, r := range inv.Replication {
		v.replication(n, r)
	}
	v.sharedSnapshots()
	for n, s := range inv.NFS {
		v.nfs(n, s)
	}
	for _, n := range sortedNames(inv.Replication) {
		v.dedicatedDirs(n, inv.Replication[n])
	}
	v.deploy()
	v.jobs()
	v.jumpCycles()
}

func (v *validator) settings(at string, s Settings) {
	if s.Port < 0 || s.Port > 65535 {
		v.at(at+".port", "expected a TCP port between 1 and 65535, got %d", s.Port)
	}
	switch s.HostKeyPolicy {
	case "", PolicyStrict, PolicyAcceptNew:
	case "ignore", "no", "off", "insecure":
		v.at(at+".host_key_policy", "%q is not supported: host keys are always verified; expected strict or accept-new", s.HostKeyPolicy)
	default:
		v.at(at+".host_key_policy", "expected strict or accept-new, got %q", s.HostKeyPolicy)
	}
	switch s.Become {
	case "", BecomeNone, BecomeSudo:
	default:
		v.at(at+".become", "expected none or sudo, got %q", s.Become)
	}
	for f, d := range map[string]time.Duration{"connect_timeout": s.ConnectTimeout, "command_timeout": s.CommandTimeout, "keepalive": s.Keepalive} {
		if d < 0 {
			v.at(at+"."+f, "expected a positive duration such as 10s, got %s", d)
		}
	}
	if s.User != "" && strings.ContainsAny(s.User, " \t@:") {
		v.at(at+".user", "expected a user name, got %q", s.User)
	}
	if s.Jump != "" && !strings.ContainsAny(s.Jump, "@:") {
		if _, ok := v.inv.Hosts[s.Jump]; !ok {
			v.at(at+".jump", "expected a host of this inventory or user@host:port, got %q%s", s.Jump, v.inv.suggest(s.Jump))
		}
	}
	if s.Jump != "" && strings.ContainsAny(s.Jump, "@:") {
		if _, _, _, err := ParseJump(s.Jump); err != nil {
			v.at(at+".jump", "%v", err)
		}
	}
}

// addressProblem says why an address that SSH would be given as it is
// cannot work, with the fields to use instead: the address is the host
// alone, its user and port have fields of their own.
func addressProblem(addr string) string {
	if addr == "" || net.ParseIP(addr) != nil {
		return ""
	}
	host, fields := addr, []string{}
	if i := strings.LastIndex(host, "@"); i >= 0 {
		fields = append(fields, "user: "+host[:i])
		host = host[i+1:]
	}
	if h, port, err := net.SplitHostPort(host); err == nil && h != "" && validPort(port) {
		fields = append(fields, "port: "+port)
		host = h
	}
	if len(fields) > 0 {
		return fmt.Sprintf("expected the host alone, got %q: write address: %s and %s", addr, host, strings.Join(fields, " and "))
	}
	if strings.ContainsAny(addr, "[]:") {
		return fmt.Sprintf("expected a host name, an IP address or \"local\", got %q: an IPv6 address is written without brackets, and a port goes in port:", addr)
	}
	return ""
}

func validPort(s string) bool {
	n, err := strconv.Atoi(s)
	return err == nil && n > 0 && n <= 65535
}

// ParseJump splits a user@host:port jump address; user and port may be empty.
func ParseJump(s string) (user, host string, port int, err error) {
	rest := s
	if i := strings.LastIndex(rest, "@"); i >= 0 {
		user, rest = rest[:i], rest[i+1:]
	}
	host = rest
	if i := strings.LastIndex(rest, ":"); i >= 0 && !strings.HasSuffix(rest, "]") {
		host = rest[:i]
		port, err = strconv.Atoi(rest[i+1:])
		if err != nil || port <= 0 || port > 65535 {
			return "", "", 0, fmt.Errorf("expected user@host:port, got %q: bad port", s)
		}
	}
	host = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
	if host == "" {
		return "", "", 0, fmt.Errorf("expected user@host:port, got %q: no host", s)
	}
	return user, host, port, nil
}

func (v *validator) host(h *Host) {
	at := "hosts." + h.Name
	if !nameRE.MatchString(h.Name) {
		v.at(at, "host name %q: expected letters, digits, '-' and '_'", h.Name)
	}
	if h.Name == "all" {
		v.at(at, `"all" is reserved: it selects every host`)
	}
	if strings.ContainsAny(h.Address, " \t/") || strings.ContainsFunc(h.Address, func(r rune) bool { return !unicode.IsPrint(r) }) {
		v.at(at+".address", "expected a host name, an IP address or \"local\", got %q", h.Address)
	} else if msg := addressProblem(h.Address); msg != "" {
		v.at(at+".address", "%s", msg)
	} else if h.Address != "" && net.ParseIP(h.Address) == nil && !hostnameRE.MatchString(h.Address) {
		// Nothing a shell reads: runbooks paste {{.HostInfo.Address}}
		// as it is (tasks.Shell.Unquoted).
		v.at(at+".address", "expected a host name, an IP address or \"local\", got %q", h.Address)
	}
	for i, r := range h.Roles {
		if !nameRE.MatchString(r) {
			v.at(fmt.Sprintf("%s.roles.%d", at, i), "role %q: expected letters, digits, '-' and '_'", r)
		}
		if _, ok := v.inv.Hosts[r]; ok && r != h.Name {
			v.at(fmt.Sprintf("%s.roles.%d", at, i), "role %q is also a host name: targets would be ambiguous", r)
		}
	}
	v.settings(at, h.Settings)
	v.vars(at+".vars", h.Vars)
	if h.Jump == h.Name {
		v.at(at+".jump", "a host cannot be its own jump host")
	}
}

func (v *validator) groups() {
	for g, members := range v.inv.Groups {
		at := "groups." + g
		if !nameRE.MatchString(g) || g == "all" {
			v.at(at, "group name %q: expected letters, digits, '-' and '_' (and not \"all\")", g)
		}
		if _, ok := v.inv.Hosts[g]; ok {
			v.at(at, "group %q has the name of a host: targets would be ambiguous", g)
		}
		if len(members) == 0 {
			v.at(at, "expected a list of host names, got an empty group")
		}
		list := at
		if _, long := v.rawGroups[g].(map[string]any); long {
			list += ".hosts"
		}
		for i, m := range members {
			if _, ok := v.inv.Hosts[m]; !ok {
				v.at(fmt.Sprintf("%s.%d", list, i), "%q is not a host of this inventory%s", m, v.inv.suggest(m))
			}
		}
	}
}

// shapeGroups reads each group in either of its forms, a list of hosts
// or {hosts: [...], vars: {...}}, into Groups and GroupVars.
func (v *validator) shapeGroups() {
	inv := v.inv
	inv.Groups = map[string][]string{}
	for _, g := range sortedKeys(v.rawGroups) {
		at := "groups." + g
		raw := v.rawGroups[g]
		if m, ok := raw.(map[string]any); ok {
			for _, k := range sortedKeys(m) {
				if k != "hosts" && k != "vars" {
					v.at(at+"."+k, "unknown field %q: a group is a list of hosts or {hosts: [...], vars: {...}}", k)
				}
			}
			if _, ok := m["hosts"]; !ok {
				v.at(at, "missing hosts: expected {hosts: [c1, c2], vars: {...}}")
			}
			raw = m["hosts"]
			if vars, ok := m["vars"]; ok && vars != nil {
				if vm, ok := vars.(map[string]any); ok {
					gv := map[string]string{}
					for _, k := range sortedKeys(vm) {
						switch x := vm[k].(type) {
						case map[string]any, []any:
							v.at(at+".vars."+k, "expected a single value (text, number or true/false), got a %s", map[bool]string{true: "mapping", false: "list"}[isMap(x)])
						case nil:
							gv[k] = ""
						default:
							gv[k] = fmt.Sprint(x)
						}
					}
					if inv.GroupVars == nil {
						inv.GroupVars = map[string]map[string]string{}
					}
					inv.GroupVars[g] = gv
					v.vars(at+".vars", gv)
				} else {
					v.at(at+".vars", "expected a mapping of variable names to values")
				}
			}
			at += ".hosts"
		}
		var members []string
		switch l := raw.(type) {
		case nil:
		case []any:
			for i, e := range l {
				s, ok := e.(string)
				if !ok {
					v.at(fmt.Sprintf("%s.%d", at, i), "expected a host name, got %v", e)
					continue
				}
				members = append(members, s)
			}
		default:
			v.at(at, "expected a list of host names (or {hosts: [...], vars: {...}})")
		}
		inv.Groups[g] = members
	}
}

func isMap(x any) bool { _, ok := x.(map[string]any); return ok }

func sortedKeys[T any](m map[string]T) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// vars checks variable names: templates reach them as {{.Vars.name}},
// which needs an identifier.
func (v *validator) vars(at string, m map[string]string) {
	for _, k := range sortedKeys(m) {
		if !varNameRE.MatchString(k) {
			v.at(at+"."+k, "variable name %q: expected letters, digits and '_' (templates write {{.Vars.name}})", k)
		}
	}
}

var varNameRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// varConflicts refuses a host in two groups that set one variable to
// different values, unless the host sets it itself: which group wins
// would otherwise be a rule to remember, not something the file says.
func (v *validator) varConflicts() {
	inv := v.inv
	for _, n := range inv.order {
		h := inv.Hosts[n]
		from := map[string]string{} // var -> the group that set it
		for _, g := range inv.GroupsOf(n) {
			for _, k := range sortedKeys(inv.GroupVars[g]) {
				if _, own := h.Vars[k]; own {
					continue
				}
				prev, ok := from[k]
				if !ok {
					from[k] = g
					continue
				}
				if a, b := inv.GroupVars[prev][k], inv.GroupVars[g][k]; a != b {
					v.at("groups."+g+".vars."+k, "host %s is in groups %s and %s, which set var %s to %q and %q: set it on the host (hosts.%s.vars.%s, a host's own var wins) or in only one of the groups", n, prev, g, k, a, b, n, k)
				}
			}
		}
	}
}

func (v *validator) hostRef(at, name string) {
	if name == "" {
		v.at(at, "expected a host name, got nothing")
		return
	}
	if _, ok := v.inv.Hosts[name]; !ok {
		v.at(at, "%q is not a host of this inventory%s", name, v.inv.suggest(name))
	}
}

func (v *validator) absPath(at, p string) {
	if p == "" {
		v.at(at, "expected an absolute path, got nothing")
		return
	}
	if !path.IsAbs(p) || path.Clean(p) != p || p == "/" {
		v.at(at, "expected a clean absolute path other than /, got %q", p)
	}
}

func (v *validator) api(at string, a *API) {
	if a == nil {
		return
	}
	v.apiAddresses(at, a)
	if a.Via != "" {
		v.hostRef(at+".via", a.Via)
	}
	if a.TokenEnv != "" && !regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`).MatchString(a.TokenEnv) {
		v.at(at+".token_env", "expected an environment variable name, got %q", a.TokenEnv)
	}
}

func sortedNames[T any](m map[string]T) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func (v *validator) deploy() {
	d := &v.inv.Deploy
	if d.Command == "" {
		d.Command = DefaultDeployCmd
	}
	if _, err := template.New("deploy").Option("missingkey=error").Parse(d.Command); err != nil {
		v.at("deploy.command", "bad template: %v", err)
	}
	if d.Quorum != "" && !v.inv.isRoleOrGroup(d.Quorum) {
		v.at("deploy.quorum", "%q is neither a role nor a group of this inventory%s", d.Quorum, v.inv.suggest(d.Quorum))
	}
	if d.ConfirmTimeout < 0 || (d.ConfirmTimeout > 0 && d.ConfirmTimeout < 5*time.Second) {
		v.at("deploy.confirm_timeout", "expected 0 (off) or at least 5s: the new connection and the checks must fit in it, got %s", d.ConfirmTimeout)
	}
}

func (v *validator) jobs() {
	j := &v.inv.Jobs
	if j.Dir == "" {
		j.Dir = DefaultJobsDir
	}
	for i, r := range j.Rewrite {
		at := fmt.Sprintf("jobs.rewrite.%d", i)
		v.absPath(at+".from", r.From)
		v.absPath(at+".to", r.To)
	}
}

// jumpCycles rejects a chain of jump hosts that leads back to itself, which
// would otherwise recurse at connect time.
func (v *validator) jumpCycles() {
	for _, n := range v.inv.order {
		seen := map[string]bool{n: true}
		cur := n
		for {
			j := v.inv.Settings(v.inv.Hosts[cur]).Jump
			if j == "" || j == cur {
				break
			}
			if _, ok := v.inv.Hosts[j]; !ok {
				break
			}
			if seen[j] {
				v.at("hosts."+n+".jump", "jump hosts form a loop through %q", j)
				break
			}
			seen[j] = true
			cur = j
		}
	}
}
