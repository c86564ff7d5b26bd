package inventory

import (
	"fmt"
	"github.com/hoctl/hoctl/pkg/yamlerr"
	"path"
	"sort"
	"strings"
)

// TargetError is an unknown or empty target expression; it lists the names
// that come close so a typo costs one glance.
type TargetError struct {
	Term    string
	Msg     string
	Similar []string
}

func (e *TargetError) Error() string {
	s := fmt.Sprintf("target %q: %s", e.Term, e.Msg)
	if len(e.Similar) > 0 {
		s += "; did you mean " + strings.Join(quoteAll(e.Similar), " or ") + "?"
	}
	return s
}

func quoteAll(ss []string) []string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = fmt.Sprintf("%q", s)
	}
	return out
}

// Term is one comma-separated piece of a target expression: a name or
// glob, and how it combines with the others.
type Term struct {
	// Op is 0 for a plain term (union), '&' for an intersection and '!'
	// for an exclusion.
	Op   byte
	Name string
}

func (t Term) String() string {
	if t.Op == 0 {
		return t.Name
	}
	return string(t.Op) + t.Name
}

// ParseTarget splits a target expression into its terms, in Ansible's
// order of evaluation: the plain terms first (in the order written), then
// the intersections, then the exclusions, wherever they were written. With
// no plain term the expression starts from all, as Ansible's does.
func ParseTarget(expr string) ([]Term, error) {
	expr = strings.TrimSpace(expr)
	if expr == "" {
		return nil, &TargetError{Term: expr, Msg: "empty target; expected a host, group, role, glob or all"}
	}
	var plain, and, not []Term
	for _, raw := range strings.Split(expr, ",") {
		t := Term{Name: strings.TrimSpace(raw)}
		if t.Name != "" && (t.Name[0] == '!' || t.Name[0] == '&') {
			t.Op, t.Name = t.Name[0], strings.TrimSpace(t.Name[1:])
		}
		switch {
		case t.Name == "" && t.Op == 0:
			return nil, &TargetError{Term: expr, Msg: "empty term in comma list"}
		case t.Name == "":
			return nil, &TargetError{Term: expr, Msg: fmt.Sprintf("%q needs a name after it (e.g. %sc2)", string(t.Op), string(t.Op))}
		case t.Name[0] == '!' || t.Name[0] == '&':
			return nil, &TargetError{Term: strings.TrimSpace(raw), Msg: "one ! or & per term; write each as its own comma-separated term"}
		}
		switch t.Op {
		case '!':
			not = append(not, t)
		case '&':
			and = append(and, t)
		default:
			plain = append(plain, t)
		}
	}
	if len(plain) == 0 {
		plain = []Term{{Name: "all"}}
	}
	return append(append(plain, and...), not...), nil
}

// Select resolves a target expression to hosts in inventory order.
// A term is a host, a group, a role, "all", or a glob over host names.
// Terms are joined by commas, with Ansible's meaning: the plain terms are
// united, then each &term keeps only the hosts it also selects, then each
// !term removes the hosts it selects, regardless of where they are
// written ("cattle,!c2" is cattle but c2; "cluster,&quorum" is the hosts
// in both). Every name must exist (with a did-you-mean otherwise), and an
// expression that ends up selecting no host is an error.
func (inv *Inventory) Select(expr string) ([]*Host, error) {
	terms, err := ParseTarget(expr)
	if err != nil {
		return nil, err
	}
	want := map[string]bool{}
	for _, t := range terms {
		names, err := inv.selectTerm(t.Name)
		if err != nil {
			return nil, err
		}
		switch t.Op {
		case 0:
			for _, n := range names {
				want[n] = true
			}
		case '&':
			in := map[string]bool{}
			for _, n := range names {
				in[n] = true
			}
			for n := range want {
				if !in[n] {
					delete(want, n)
				}
			}
		case '!':
			for _, n := range names {
				delete(want, n)
			}
		}
	}
	var out []*Host
	for _, n := range inv.order {
		if want[n] {
			out = append(out, inv.Hosts[n])
		}
	}
	if len(out) == 0 {
		return nil, &TargetError{Term: strings.TrimSpace(expr), Msg: "selects no host (the & and ! terms leave none)"}
	}
	return out, nil
}

func (inv *Inventory) selectTerm(term string) ([]string, error) {
	if term == "all" {
		return inv.order, nil
	}
	if strings.ContainsAny(term, "*?[") {
		if _, err := path.Match(term, ""); err != nil {
			return nil, &TargetError{Term: term, Msg: "bad glob pattern"}
		}
		var out []string
		for _, n := range inv.order {
			if ok, _ := path.Match(term, n); ok {
				out = append(out, n)
			}
		}
		if len(out) == 0 {
			return nil, &TargetError{Term: term, Msg: "glob matches no host"}
		}
		return out, nil
	}
	var out []string
	found := false
	if _, ok := inv.Hosts[term]; ok {
		out = append(out, term)
		found = true
	}
	if members, ok := inv.Groups[term]; ok {
		out = append(out, members...)
		found = true
	}
	for _, n := range inv.order {
		if inv.Hosts[n].HasRole(term) {
			out = append(out, n)
			found = true
		}
	}
	if !found && strings.Contains(term, ":") {
		// Ansible also separates terms with ':' (cattle:!c2); hoctl's
		// targets use commas only, so say so rather than guess a name.
		return nil, &TargetError{Term: term, Msg: "no host, group or role has this name (hoctl separates terms with commas, not colons)",
			Similar: []string{strings.ReplaceAll(term, ":", ",")}}
	}
	if !found {
		return nil, &TargetError{Term: term, Msg: "no host, group or role has this name", Similar: inv.similar(term)}
	}
	return out, nil
}

func (inv *Inventory) isRoleOrGroup(name string) bool {
	if _, ok := inv.Groups[name]; ok {
		return true
	}
	for _, h := range inv.Hosts {
		if h.HasRole(name) {
			return true
		}
	}
	return false
}

// names is every name a target term can use.
func (inv *Inventory) names() []string {
	set := map[string]bool{"all": true}
	for n, h := range inv.Hosts {
		set[n] = true
		for _, r := range h.Roles {
			set[r] = true
		}
	}
	for g := range inv.Groups {
		set[g] = true
	}
	out := make([]string, 0, len(set))
	for n := range set {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// similar returns names within a small edit distance of term, or sharing
// its prefix, closest first.
func (inv *Inventory) similar(term string) []string {
	type cand struct {
		name string
		d    int
	}
	var cs []cand
	lt := strings.ToLower(term)
	for _, n := range inv.names() {
		ln := strings.ToLower(n)
		d := yamlerr.Distance(lt, ln)
		limit := 1 + len(term)/4
		if d <= limit || (len(lt) >= 2 && strings.HasPrefix(ln, lt)) {
			cs = append(cs, cand{n, d})
		}
	}
	sort.SliceStable(cs, func(i, j int) bool { return cs[i].d < cs[j].d })
	var out []string
	for i, c := range cs {
		if i == 3 {
			break
		}
		out = append(out, c.name)
	}
	return out
}

func (inv *Inventory) suggest(term string) string {
	s := inv.similar(term)
	if len(s) == 0 {
		return ""
	}
	return "; did you mean " + strings.Join(quoteAll(s), " or ") + "?"
}
