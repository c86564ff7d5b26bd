package consul

import (
	"context"
	"os"
	"testing"

	"github.com/hashicorp/consul/api"
	"github.com/hoctl/hoctl/pkg/httpapi"
	"github.com/hoctl/hoctl/pkg/inventory"
)

func TestClusterHealthAndOwnerKey(t *testing.T) {
	s := sim(t)
	client, err := NewClient(&inventory.API{Address: "http://" + s.Addr}, nil, os.Getenv, httpapi.Options{})
	if err != nil {
		t.Fatal(err)
	}
	c := &Cluster{Client: client}
	ctx := context.Background()
	if l, err := c.Leader(ctx); err != nil || l == "" {
		t.Fatalf("leader %q %v", l, err)
	}
	for _, n := range []string{"zippy", "c1"} {
		status := api.HealthPassing
		if n == "c1" {
			status = api.HealthCritical
		}
		_, err := client.Catalog().Register(&api.CatalogRegistration{Node: n, Address: "127.0.0.1",
			Service: &api.AgentService{ID: "data-services", Service: "data-services", Port: 2049},
			Check:   &api.AgentCheck{CheckID: "service:data-services", Status: status, ServiceID: "data-services"}}, nil)
		if err != nil {
			t.Fatal(err)
		}
	}
	got, err := c.Passing(ctx, "data-services")
	if err != nil || len(got) != 1 || got[0] != "zippy" {
		t.Fatalf("passing %v %v", got, err)
	}
	s.SetNodeDown("zippy", true)
	if got, _ := c.Passing(ctx, "data-services"); len(got) != 0 {
		t.Fatalf("a node whose serfHealth is critical does not pass: %v", got)
	}
	if all, _ := c.Instances(ctx, "data-services"); len(all) != 2 {
		t.Fatalf("instances %v", all)
	}
	if _, err := client.Catalog().Deregister(&api.CatalogDeregistration{Node: "c1", ServiceID: "data-services"}, nil); err != nil {
		t.Fatal(err)
	}
	if all, _ := c.Instances(ctx, "data-services"); len(all) != 1 || all[0].Node != "zippy" {
		t.Fatalf("after deregistering c1: %v", all)
	}

	const key = "hoctl/nfs/data-services/owner"
	if _, _, ok, err := c.Get(ctx, key); ok || err != nil {
		t.Fatalf("unset key: %v %v", ok, err)
	}
	if ok, err := c.CAS(ctx, key, "zippy", 0); !ok || err != nil {
		t.Fatalf("create: %v %v", ok, err)
	}
	if ok, _ := c.CAS(ctx, key, "c2", 0); ok {
		t.Fatal("CAS 0 must not overwrite an existing key")
	}
	v, idx, ok, err := c.Get(ctx, key)
	if v != "zippy" || !ok || err != nil {
		t.Fatalf("get %q %v %v", v, ok, err)
	}
	if ok, _ := c.CAS(ctx, key, "c1", idx); !ok {
		t.Fatal("CAS at the read index must win")
	}
	if ok, _ := c.CAS(ctx, key, "c2", idx); ok {
		t.Fatal("CAS at a stale index must lose")
	}
}
