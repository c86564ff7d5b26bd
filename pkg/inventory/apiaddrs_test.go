package inventory

import (
	"reflect"
	"strings"
	"testing"
)

// A Consul or Nomad section may list several servers' addresses, as the
// consul and nomad CLIs are pointed at any one of them: hoctl must still
// reach the cluster when the first server is down.
func TestAPIAddressesList(t *testing.T) {
	const hosts = "hosts:\n  c1: {}\n"
	inv, err := Parse("i.yaml", []byte(hosts+"consul:\n  addresses:\n    - http://c1:8500\n    - http://c2:8500\nnomad: {address: http://c1:4646}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := inv.Consul.URLs(), []string{"http://c1:8500", "http://c2:8500"}; !reflect.DeepEqual(got, want) {
		t.Errorf("consul URLs = %q, want %q", got, want)
	}
	if got, want := inv.Nomad.URLs(), []string{"http://c1:4646"}; !reflect.DeepEqual(got, want) {
		t.Errorf("nomad URLs = %q, want %q", got, want)
	}
	for in, want := range map[string]string{
		"consul:\n  addresses: [\"http://c1:8500\", c2:8500]\n":                   `consul.addresses.1: expected an http:// or https:// URL, got "c2:8500"`,
		"consul:\n  addresses:\n    - http://c1:8500\n    - http://c1:8500\n":     `consul.addresses.1: http://c1:8500 is listed twice`,
		"nomad:\n  addresses:\n    - http://c1:4646\n    - http://C1:4646/\n":     `nomad.addresses.1: http://C1:4646/ is listed twice`,
		"nomad:\n  address: http://c1:4646\n  addresses:\n    - http://c2:4646\n": "nomad: give address (one server) or addresses (a list), not both",
		"consul: {addresses: []}\n":                                               "consul.addresses: expected at least one http:// or https:// URL",
		"consul: {token_env: T}\n":                                                "consul.address: expected an http:// or https:// URL",
	} {
		_, err := Parse("i.yaml", []byte(hosts+in))
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: err = %v, want %q", in, err, want)
		}
	}
}
