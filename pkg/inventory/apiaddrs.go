package inventory

import (
	"fmt"
	"net/url"
	"strings"
)

// URLs are the API's addresses in the order hoctl tries them: address
// alone, or the addresses list.
func (a *API) URLs() []string {
	if a == nil {
		return nil
	}
	if a.Address != "" || a.Addresses == nil {
		return []string{a.Address}
	}
	return a.Addresses
}

// apiAddresses checks address or addresses: each an http(s) URL, no
// server listed twice (a duplicate would only retry a dead one).
func (v *validator) apiAddresses(at string, a *API) {
	if a.Address != "" && a.Addresses != nil {
		v.at(at, "give address (one server) or addresses (a list), not both")
		return
	}
	if a.Addresses == nil {
		v.apiURL(at+".address", a.Address)
		return
	}
	if len(a.Addresses) == 0 {
		v.at(at+".addresses", "expected at least one http:// or https:// URL, got an empty list")
		return
	}
	seen := map[string]bool{}
	for i, s := range a.Addresses {
		k := fmt.Sprintf("%s.addresses.%d", at, i)
		if !v.apiURL(k, s) {
			continue
		}
		key := strings.TrimSuffix(strings.ToLower(s), "/")
		if seen[key] {
			v.at(k, "%s is listed twice", s)
		}
		seen[key] = true
	}
}

func (v *validator) apiURL(at, s string) bool {
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		v.at(at, "expected an http:// or https:// URL, got %q", s)
		return false
	}
	return true
}
