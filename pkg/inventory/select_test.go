package inventory

import (
	"errors"
	"path"
	"slices"
	"strings"
	"testing"
)

// cluster is the seed's shape: a storage primary, three quorum members
// that are also cattle, and a group beside the roles.
const cluster = `
hosts:
  zippy: {address: 10.0.0.1, roles: [nfs-primary]}
  c1: {address: 10.0.0.11, roles: [compute, quorum, nfs-standby]}
  c2: {address: 10.0.0.12, roles: [compute, quorum]}
  c3: {address: 10.0.0.13, roles: [compute, quorum]}
  sunny: {address: 10.0.0.21, roles: [compute]}
groups:
  cattle: [c1, c2, c3, sunny]
  cluster: [zippy, c1, c2, c3]
`

func names(hs []*Host) []string {
	var out []string
	for _, h := range hs {
		out = append(out, h.Name)
	}
	return out
}

// TestSelectAlgebra follows Ansible's host patterns: plain terms united
// in order, then every &term, then every !term, wherever they stand.
func TestSelectAlgebra(t *testing.T) {
	inv, err := parse(t, cluster)
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct{ expr, want string }{
		{"cattle,!c2", "c1 c3 sunny"},
		{"!c2,cattle", "c1 c3 sunny"}, // position does not matter
		{"cluster,&quorum", "c1 c2 c3"},
		{"&quorum,cluster", "c1 c2 c3"},
		{"cluster,&cattle,&compute,!c1", "c2 c3"},
		// Exclusions come after intersections and unions, so a host
		// named again after its exclusion stays excluded (Ansible).
		{"cattle,!c2,c2", "c1 c3 sunny"},
		// Intersection narrows the whole union, not the term before it.
		{"zippy,sunny,&cattle", "sunny"},
		// Only & and ! terms start from all, as in Ansible.
		{"!cattle", "zippy"},
		{"&quorum,!c3", "c1 c2"},
		{"all,!zippy,!sunny", "c1 c2 c3"},
		{"c*,!c[12]", "c3"},
		{" cattle , ! c2 , & quorum ", "c1 c3"},
		// Results keep inventory order whatever the order of terms.
		{"sunny,c1,zippy", "zippy c1 sunny"},
	}
	for _, c := range cases {
		hs, err := inv.Select(c.expr)
		if err != nil {
			t.Errorf("Select(%q): %v", c.expr, err)
			continue
		}
		if got := strings.Join(names(hs), " "); got != c.want {
			t.Errorf("Select(%q) = %s, want %s", c.expr, got, c.want)
		}
	}
}

func TestSelectAlgebraErrors(t *testing.T) {
	inv, err := parse(t, cluster)
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct{ expr, want string }{
		{"cattle,!c9", `target "c9": no host, group or role has this name; did you mean "c1" or "c2" or "c3"?`},
		{"cattle:!c2", `target "cattle:!c2": no host, group or role has this name (hoctl separates terms with commas, not colons); did you mean "cattle,!c2"?`},
		{"cattle:&quorum", `target "cattle:&quorum": no host, group or role has this name (hoctl separates terms with commas, not colons); did you mean "cattle,&quorum"?`},
		{"cattle,&qourum", `did you mean "quorum"?`},
		{"cattle,!", `"!" needs a name after it`},
		{"cattle,&", `"&" needs a name after it`},
		{"cattle,!!c2", `one ! or & per term`},
		{"cattle,!&c2", `one ! or & per term`},
		{"cattle,,c1", "empty term"},
		{"cattle,!cattle", `target "cattle,!cattle": selects no host`},
		{"zippy,&quorum", "selects no host"},
		{"!all", "selects no host"},
		{"  ", "empty target"},
	}
	for _, c := range cases {
		hs, err := inv.Select(c.expr)
		var te *TargetError
		if !errors.As(err, &te) {
			t.Errorf("Select(%q) = %v, %v; want a TargetError", c.expr, names(hs), err)
			continue
		}
		if !strings.Contains(err.Error(), c.want) {
			t.Errorf("Select(%q): %v\nwant it to contain %s", c.expr, err, c.want)
		}
	}
}

func TestParseTargetOrder(t *testing.T) {
	terms, err := ParseTarget("!a,b,&c,d,!e,&f")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, t := range terms {
		got = append(got, t.String())
	}
	if want := "b d &c &f !a !e"; strings.Join(got, " ") != want {
		t.Errorf("order = %v, want %s", got, want)
	}
}

// FuzzSelect checks Select against the definition, term by term: a host
// is selected iff some plain term (or all, when there is none) matches it,
// every &term matches it and no !term does; results are in inventory
// order without repeats, and never empty without an error.
func FuzzSelect(f *testing.F) {
	for _, s := range []string{"cattle,!c2", "cluster,&quorum", "!c2", "&quorum", "c*,!c[12]", "all,!zippy", "a,!", "!!x", ",", "[", "c?,&compute,!c3", "qourum", "zippy,&cattle"} {
		f.Add(s)
	}
	inv, err := Parse("fuzz.yaml", []byte(cluster))
	if err != nil {
		f.Fatal(err)
	}
	match := func(term, host string) bool {
		if term == "all" || term == host {
			return true
		}
		if strings.ContainsAny(term, "*?[") {
			ok, _ := path.Match(term, host)
			return ok
		}
		return slices.Contains(inv.Groups[term], host) || inv.Hosts[host].HasRole(term)
	}
	f.Fuzz(func(t *testing.T, expr string) {
		hs, err := inv.Select(expr)
		if err != nil {
			var te *TargetError
			if !errors.As(err, &te) {
				t.Fatalf("Select(%q): error %T %v is not a TargetError", expr, err, err)
			}
			return
		}
		if len(hs) == 0 {
			t.Fatalf("Select(%q): no hosts and no error", expr)
		}
		terms, err := ParseTarget(expr)
		if err != nil {
			t.Fatalf("Select(%q) succeeded but ParseTarget failed: %v", expr, err)
		}
		got := map[string]bool{}
		for _, h := range hs {
			if got[h.Name] {
				t.Fatalf("Select(%q): %s twice", expr, h.Name)
			}
			got[h.Name] = true
		}
		var order []string
		for _, n := range inv.HostNames() {
			if got[n] {
				order = append(order, n)
			}
		}
		if !slices.Equal(order, names(hs)) {
			t.Fatalf("Select(%q) = %v, not in inventory order", expr, names(hs))
		}
		for _, n := range inv.HostNames() {
			inPlain, inAll, inNot := false, true, false
			for _, tm := range terms {
				m := match(tm.Name, n)
				switch tm.Op {
				case 0:
					inPlain = inPlain || m
				case '&':
					inAll = inAll && m
				case '!':
					inNot = inNot || m
				}
			}
			if want := inPlain && inAll && !inNot; want != got[n] {
				t.Fatalf("Select(%q): %s selected=%v, want %v (terms %v)", expr, n, got[n], want, terms)
			}
		}
	})
}
