package inventory

import (
	"fmt"
	"github.com/hoctl/hoctl/pkg/retention"
	"net"
	"net/url"
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
	u, err := url.Parse(a.Address)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		v.at(at+".address", "expected an http:// or https:// URL, got %q", a.Address)
	}
	if a.Via != "" {
		v.hostRef(at+".via", a.Via)
	}
	if a.TokenEnv != "" && !regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`).MatchString(a.TokenEnv) {
		v.at(at+".token_env", "expected an environment variable name, got %q", a.TokenEnv)
	}
}

func (v *validator) replication(name string, r *Replication) {
	at := "replication." + name
	if r == nil {
		v.at(at, "expected source and target")
		return
	}
	r.Name = name
	if !nameRE.MatchString(name) {
		v.at(at, "replication name %q: expected letters, digits, '-' and '_'", name)
	}
	v.hostRef(at+".source.host", r.Source.Host)
	v.absPath(at+".source.subvolume", r.Source.Subvolume)
	if r.Source.SnapshotDir == "" && r.Source.Subvolume != "" {
		r.Source.SnapshotDir = DefaultSnapshotDir(r.Source.Subvolume)
	} else if r.Source.SnapshotDir != "" {
		v.absPath(at+".source.snapshot_dir", r.Source.SnapshotDir)
	}
	for i, n := range r.Source.ExcludeNested {
		if n == "" || path.IsAbs(n) || path.Clean(n) != n || n == "." || n == ".." || strings.HasPrefix(n, "../") {
			v.at(fmt.Sprintf("%s.source.exclude_nested.%d", at, i), "expected a clean path relative to the subvolume, like cache or docker/btrfs, got %q", n)
		}
	}
	v.hostRef(at+".target.host", r.Target.Host)
	v.absPath(at+".target.dir", r.Target.Dir)
	if r.Source.Host != "" && r.Source.Host == r.Target.Host && r.Target.Dir == r.Source.SnapshotDir {
		v.at(at+".target.dir", "target dir is the source's snapshot dir on the same host")
	}
	r.Keep.Source = v.keep(at+".keep.source", r.Keep.RawSource, DefaultKeepSource)
	r.Keep.Target = v.keep(at+".keep.target", r.Keep.RawTarget, DefaultKeepTarget)
	switch r.Transport {
	case "":
		r.Transport = TransportRelay
	case TransportRelay, TransportDirect:
	default:
		v.at(at+".transport", "expected relay or direct, got %q", r.Transport)
	}
	switch r.Compress {
	case "":
		r.Compress = "none"
	case "none", "zstd":
	default:
		v.at(at+".compress", "expected none or zstd, got %q", r.Compress)
	}
}

// snapshotSet is where one end of a replication keeps its snapshots:
// every <base>@<time> in dir on host. Retention prunes by listing exactly
// that, so two replications with one set prune each other's snapshots.
type snapshotSet struct{ host, dir, base string }

// sharedSnapshots refuses two replications whose ends keep snapshots in
// one set. Each run protects only its own newest common snapshot, so the
// other's retention (a shorter keep, or the same keep while the other lags)
// deletes the parent of its next incremental send, whatever the keeps say.
// Each end in its own directory needs no joint retention at all.
func (v *validator) sharedSnapshots() {
	names := make([]string, 0, len(v.inv.Replication))
	for n, r := range v.inv.Replication {
		if r != nil {
			names = append(names, n)
		}
	}
	// File order, so the problem is reported on the later one: the one
	// an operator most likely just added.
	sort.Slice(names, func(i, j int) bool {
		li, lj := v.line("replication."+names[i]), v.line("replication."+names[j])
		if li != lj {
			return li < lj
		}
		return names[i] < names[j]
	})
	type end struct {
		name, side string
		keep       retention.Policy
	}
	seen := map[snapshotSet]end{}
	for _, n := range names {
		r := v.inv.Replication[n]
		base := path.Base(r.Source.Subvolume)
		for _, e := range []struct {
			side, field string
			set         snapshotSet
			keep        retention.Policy
		}{
			{"source", "source.snapshot_dir", snapshotSet{r.Source.Host, r.Source.SnapshotDir, base}, r.Keep.Source},
			{"target", "target.dir", snapshotSet{r.Target.Host, r.Target.Dir, base}, r.Keep.Target},
		} {
			if e.set.host == "" || e.set.dir == "" || r.Source.Subvolume == "" {
				continue
			}
			first, dup := seen[e.set]
			if !dup {
				seen[e.set] = end{n, e.side, e.keep}
				continue
			}
			if first.name == n {
				continue // the same-host check in replication says it
			}
			v.at("replication."+n+"."+e.field,
				"replications %s and %s both keep snapshots as %s@* in %s:%s (%s's %s, %s's %s): each one's retention prunes the other's snapshots (%s keeps %s, %s keeps %s), the parent of the other's next incremental send among them; set replication.%s.%s to a directory of %s's own (create it on %s), such as %s",
				first.name, n, e.set.base, e.set.host, e.set.dir, first.name, first.side, n, e.side,
				first.name, first.keep, n, e.keep, n, e.field, n, e.set.host, path.Join(path.Dir(e.set.dir), path.Base(e.set.dir)+"-"+n))
		}
	}
}

// line is the line of a field in the file, 0 when it has none.
func (v *validator) line(field string) int {
	return yamlerr.At(v.name, v.ast, field, "").Line
}

// keepFields are the fields of a calendar retention policy, in the order
// the docs list them.
var keepFields = []string{"min", "hourly", "daily", "weekly", "monthly", "yearly", "timezone", "week_start", "day_start"}

var periods = map[string]string{"hourly": "hours", "daily": "days", "weekly": "weeks", "monthly": "months", "yearly": "years"}

// keep reads one side's retention: a number of snapshots, or a calendar
// policy. def is the count when the side is left out.
func (v *validator) keep(at string, raw any, def int) retention.Policy {
	if raw == nil {
		return retention.Policy{Count: def}
	}
	if n, ok := wholeNumber(raw); ok {
		if n < 1 {
			v.at(at, "expected at least 1 snapshot kept, got %d", n)
			return retention.Policy{Count: def}
		}
		return retention.Policy{Count: n}
	}
	m, ok := raw.(map[string]any)
	if !ok {
		v.at(at, "expected a number of snapshots (48) or a policy like {min: 3, hourly: 24, daily: 7, weekly: 4, monthly: 6}")
		return retention.Policy{Count: def}
	}
	p := retention.Policy{}
	errsBefore := len(v.errs)
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		val := m[k]
		field := at + "." + k
		switch k {
		case "min":
			s := fmt.Sprint(val)
			if n, ok := wholeNumber(val); ok {
				s = strconv.Itoa(n)
			}
			min, err := retention.ParseMin(s)
			if err != nil {
				v.at(field, "%v", err)
			}
			p.Min = min
		case "hourly", "daily", "weekly", "monthly", "yearly":
			n, ok := wholeNumber(val)
			if s, isStr := val.(string); isStr && (s == "all" || s == "*") {
				n, ok = retention.All, true
			} else if n < 0 {
				ok = false // -1 is All inside hoctl, not a spelling of it
			}
			if !ok {
				v.at(field, "expected a number of %s back, or all; got %v", periods[k], val)
			}
			switch k {
			case "hourly":
				p.Hourly = n
			case "daily":
				p.Daily = n
			case "weekly":
				p.Weekly = n
			case "monthly":
				p.Monthly = n
			default:
				p.Yearly = n
			}
		case "timezone":
			name, _ := val.(string)
			loc, err := time.LoadLocation(name)
			// "Local" would be the zone of the machine hoctl runs on, which
			// differs between a timer on zippy and a laptop: they would
			// prune different snapshots.
			if err != nil || name == "" || name == "Local" {
				v.at(field, "expected a time zone name like UTC or Europe/Berlin, got %v", val)
			}
			p.Location = loc
		case "week_start":
			d, ok := weekday(val)
			if !ok {
				v.at(field, "expected a day of the week like sunday or monday, got %v", val)
			}
			p.WeekStart = d
		case "day_start":
			n, ok := wholeNumber(val)
			if !ok || n < 0 || n > 23 {
				v.at(field, "expected the hour a day starts, 0 to 23, got %v", val)
			}
			p.DayStart = n
		default:
			v.at(field, "unknown field %q; expected one of %s", k, strings.Join(keepFields, ", "))
		}
	}
	// "Keeps nothing" only when every field read well: a rule with a bad
	// value has its own error, and saying twice is noise.
	if len(v.errs) == errsBefore && p.Min.IsZero() && p.Hourly == 0 && p.Daily == 0 && p.Weekly == 0 && p.Monthly == 0 && p.Yearly == 0 {
		v.at(at, "the policy keeps nothing: expected min or at least one of hourly, daily, weekly, monthly, yearly")
	}
	return p
}

// wholeNumber is an integer YAML value, however the decoder typed it.
func wholeNumber(x any) (int, bool) {
	switch n := x.(type) {
	case int:
		return n, true
	case int64:
		return int(n), n >= -1<<31 && n < 1<<31
	case uint64:
		return int(n), n < 1<<31
	}
	return 0, false
}

func weekday(x any) (time.Weekday, bool) {
	s, _ := x.(string)
	for d := time.Sunday; d <= time.Saturday; d++ {
		if strings.EqualFold(s, d.String()) {
			return d, true
		}
	}
	return 0, false
}

func (v *validator) nfs(name string, s *NFSService) {
	at := "nfs." + name
	if s == nil {
		v.at(at, "expected export, subvolume and primary")
		return
	}
	s.Name = name
	v.absPath(at+".export", s.Export)
	v.absPath(at+".subvolume", s.Subvolume)
	if s.Replication != "" {
		if _, ok := v.inv.Replication[s.Replication]; !ok {
			v.at(at+".replication", "%q is not a replication of this inventory", s.Replication)
		}
	}
	v.hostRef(at+".primary", s.Primary)
	for i, sb := range s.Standbys {
		v.hostRef(fmt.Sprintf("%s.standbys.%d", at, i), sb)
		if sb == s.Primary {
			v.at(fmt.Sprintf("%s.standbys.%d", at, i), "%q is the primary; a standby must be another host", sb)
		}
	}
	if s.Unit == "" {
		s.Unit = DefaultNFSUnit
	}
	if s.OwnerKey == "" {
		s.OwnerKey = "hoctl/nfs/" + name + "/owner"
	}
	if s.MaxLag == 0 {
		s.MaxLag = DefaultMaxLag
	} else if s.MaxLag < 0 {
		v.at(at+".max_lag", "expected a positive duration such as 15m")
	}
	if s.Clients != "" {
		if _, err := v.inv.Select(s.Clients); err != nil {
			v.at(at+".clients", "%v", err)
		}
	}
}

// DefaultSnapshotDir is where a subvolume's source snapshots go when the
// inventory does not say: a directory of their own beside it
// (/persist/services-snapshots), never its parent, which holds the
// subvolume itself (dedicatedDirs).
func DefaultSnapshotDir(subvolume string) string {
	return subvolume + "-snapshots"
}

// within reports whether p is dir or below it.
func within(p, dir string) bool {
	return p == dir || strings.HasPrefix(p, strings.TrimSuffix(dir, "/")+"/")
}

// dedicatedDirs refuses a replication dir that holds the replicated
// subvolume or anything an NFS service serves. Both dirs receive send
// streams (the target's forward, the source's after a failover), and a
// stream may write anywhere inside its dir: with the subvolume's parent
// as the dir, `../services/f` is inside it, and over the live data.
func (v *validator) dedicatedDirs(name string, r *Replication) {
	if r == nil {
		return
	}
	at := "replication." + name
	fix := "a stream received there could write over it: use a dedicated directory that holds only the snapshots, such as " + DefaultSnapshotDir(r.Source.Subvolume)
	for _, d := range []struct{ field, host, dir string }{{at + ".source.snapshot_dir", r.Source.Host, r.Source.SnapshotDir}, {at + ".target.dir", r.Target.Host, r.Target.Dir}} {
		if d.dir == "" || !path.IsAbs(d.dir) {
			continue
		}
		if r.Source.Subvolume != "" && within(r.Source.Subvolume, d.dir) {
			v.at(d.field, "%s holds the replicated subvolume %s: %s", d.dir, r.Source.Subvolume, fix)
			continue
		}
		if p := v.othersHeld(name, d.host, d.dir); p != "" {
			v.at(d.field, "%s is or holds %s: a stream received there could write over it, and each replication's retention and deletes would act on the other's: use a dedicated directory of %s's own", d.dir, p, name)
			continue
		}
		for _, sn := range sortedNames(v.inv.NFS) {
			s := v.inv.NFS[sn]
			if s == nil {
				continue
			}
			for _, p := range []string{s.Export, s.Subvolume} {
				if p != "" && within(p, d.dir) {
					v.at(d.field, "%s holds %s, which NFS service %s serves: %s", d.dir, p, sn, fix)
				}
			}
		}
	}
}

// othersHeld is what dir on host holds or is of another replication:
// its subvolume (on its source host, and on its target host, where a
// failover promotes it), its snapshot dir or its target dir; "" when
// nothing. A dir equal to another's with the same snapshot base is
// sharedSnapshots' to report.
func (v *validator) othersHeld(name, host, dir string) string {
	if host == "" {
		return ""
	}
	dir = path.Clean(dir)
	base := path.Base(v.inv.Replication[name].Source.Subvolume)
	for _, on := range sortedNames(v.inv.Replication) {
		o := v.inv.Replication[on]
		if on == name || o == nil {
			continue
		}
		oBase := path.Base(o.Source.Subvolume)
		for _, p := range []struct{ what, host, path string }{
			{"subvolume", o.Source.Host, o.Source.Subvolume},
			{"subvolume", o.Target.Host, o.Source.Subvolume},
			{"snapshot dir", o.Source.Host, o.Source.SnapshotDir},
			{"target dir", o.Target.Host, o.Target.Dir},
		} {
			if p.host != host || p.path == "" || !path.IsAbs(p.path) {
				continue
			}
			held := path.Clean(p.path)
			if p.what != "subvolume" && held == dir && oBase == base {
				continue
			}
			if within(held, dir) {
				return fmt.Sprintf("%s, replication %s's %s on %s", p.path, on, p.what, host)
			}
		}
	}
	return ""
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
