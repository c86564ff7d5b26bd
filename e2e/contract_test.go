package e2e

// The contracts of hoctl's Consul and Nomad access (pkg/consul/consultest,
// pkg/nomad/nomadtest), run against the real Consul v1.14.11 and Nomad
// v1.6.1 of the real cluster: what the unit tests' fakes must also pass.

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	consulapi "github.com/hashicorp/consul/api"
	"github.com/hoctl/hoctl/internal/lab"
	"github.com/hoctl/hoctl/pkg/consul"
	"github.com/hoctl/hoctl/pkg/consul/consultest"
	"github.com/hoctl/hoctl/pkg/httpapi"
	"github.com/hoctl/hoctl/pkg/inventory"
	"github.com/hoctl/hoctl/pkg/nomad"
	"github.com/hoctl/hoctl/pkg/nomad/nomadtest"
)

func TestConsulContract(t *testing.T) {
	l := realCluster(t)
	c := realConsul(t, l)
	const service, prefix = "hoctl-contract-svc", "hoctl-contract/"
	nodes := map[string]bool{}
	t.Cleanup(func() {
		for n := range nodes {
			if _, err := c.Catalog().Deregister(&consulapi.CatalogDeregistration{Node: n}, nil); err != nil {
				t.Errorf("deregistering %s: %v", n, err)
			}
		}
		if _, err := c.KV().DeleteTree(prefix, nil); err != nil {
			t.Errorf("deleting %s: %v", prefix, err)
		}
	})
	// External nodes (catalog only, no agent): anti-entropy leaves them
	// alone, and no check is run against their address.
	register := func(t *testing.T, node string, check *consulapi.AgentCheck, svc *consulapi.AgentService) {
		nodes[node] = true
		if _, err := c.Catalog().Register(&consulapi.CatalogRegistration{Node: node, Address: "127.0.0.1", Service: svc, Check: check}, nil); err != nil {
			t.Fatal(err)
		}
	}
	consultest.TestCluster(t, consultest.ClusterHarness{
		Cluster: &consul.Cluster{Client: c}, Service: service, KeyPrefix: prefix,
		Register: func(t *testing.T, node string, passing bool) {
			status := consulapi.HealthPassing
			if !passing {
				status = consulapi.HealthCritical
			}
			register(t, node, &consulapi.AgentCheck{CheckID: "service:" + service, Name: "contract", Status: status, ServiceID: service},
				&consulapi.AgentService{ID: service, Service: service, Port: 2049})
		},
		NodeDown: func(t *testing.T, node string) {
			register(t, node, &consulapi.AgentCheck{CheckID: "hoctl-contract-node", Name: "node down", Status: consulapi.HealthCritical}, nil)
		},
		Deregister: func(t *testing.T, node string) {
			if _, err := c.Catalog().Deregister(&consulapi.CatalogDeregistration{Node: node, ServiceID: service}, nil); err != nil {
				t.Fatal(err)
			}
		},
	})

	scope := fmt.Sprintf("hoctl-contract-%d", os.Getpid())
	t.Cleanup(func() { _, _ = c.KV().Delete(consul.LockPrefix+scope, nil) })
	consultest.TestLock(t, consultest.LockHarness{
		Scope: scope,
		Acquire: func(ctx context.Context, scope, holder string, delay time.Duration) (consultest.Lock, error) {
			l, err := consul.Acquire(ctx, c, scope, holder, consul.LockOptions{LockDelay: delay})
			if err != nil {
				return nil, err
			}
			return l, nil
		},
		Invalidate: func(t *testing.T, l consultest.Lock) {
			if _, err := c.Session().Destroy(l.(*consul.Lock).Session(), nil); err != nil {
				t.Fatal(err)
			}
		},
		Sessions: func(t *testing.T, scope string) int { return len(lockSessions(t, c, scope)) },
	})
}

func TestNomadContract(t *testing.T) {
	l := realCluster(t)
	const prefix = "hoctl-contract-"
	purgeJobsAfter(t, l, prefix+"web", prefix+"crashy")
	client, err := nomad.NewClient(&inventory.API{Address: fmt.Sprintf("http://%s:%d", l.Host("c1").Addr, lab.NomadPort)}, nil, os.Getenv, httpapi.Options{})
	if err != nil {
		t.Fatal(err)
	}
	group := func(task string) string {
		return `  datacenters = ["lab"]
  group "g" {
    update {
      min_healthy_time  = "1s"
      healthy_deadline  = "20s"
      progress_deadline = "0"
    }
    restart {
      attempts = 0
      mode     = "fail"
    }
    reschedule {
      attempts  = 0
      unlimited = false
    }
    task "t" {
      driver = "raw_exec"
      config {
` + task + `
      }
    }
  }
}
`
	}
	nomadtest.TestJobs(t, nomadtest.Harness{
		Jobs: &nomad.Jobs{Client: client}, Prefix: prefix, Wait: time.Minute,
		Job: func(name string, secs int) string {
			return fmt.Sprintf("job %q {\n", name) + group(fmt.Sprintf("        command = \"/bin/sleep\"\n        args    = [\"%d\"]", secs))
		},
		Failing: func(name string) string {
			return fmt.Sprintf("job %q {\n", name) + group("        command = \"/bin/false\"")
		},
	})
}
