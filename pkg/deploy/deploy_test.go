package deploy

import (
	"bytes"
	"context"
	"testing"

	"github.com/hoctl/hoctl/pkg/inventory"
)

// The deploy command's output is shown line by line with the host, the
// last line too when it has no newline.
func TestPrefixedOutputKeepsTheLastLine(t *testing.T) {
	var shown bytes.Buffer
	var tail tailBuffer
	w := &teeWriter{tail: &tail, shown: prefixed(&shown, "c1")}
	_, _ = w.Write([]byte("building\nerror: out of disk"))
	if shown.String() != "c1 | building\n" {
		t.Fatalf("before flush: %q", shown.String())
	}
	w.flush()
	if shown.String() != "c1 | building\nc1 | error: out of disk\n" || tail.last() != "error: out of disk" {
		t.Fatalf("after flush: %q, tail %q", shown.String(), tail.last())
	}
}

// A host that is not a Nomad client (the inventory has no nomad section,
// or no node of its name) is not drained, and the output says so; the
// real cluster's four hosts are all clients, so this path is tested here.
func TestHostWithoutNomadNodeIsNotDrained(t *testing.T) {
	inv := &inventory.Inventory{Deploy: inventory.Deploy{Command: "echo deploying {{.Host}}"}}
	h := &inventory.Host{Name: "fractal"}
	_, r, err := Runbook(inv, []*inventory.Host{h}, Clients{}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	r.Opts.Output = &out
	got, err := r.deployHost(context.Background(), nil, h)
	if err != nil || got != "not a Nomad client: no drain; deploy command exited 0" || out.String() != "fractal | deploying fractal\n" {
		t.Fatalf("%q %v, output %q", got, err, out.String())
	}
}
