package consul_test

import (
	"testing"

	"github.com/hoctl/hoctl/pkg/consul/consultest"
)

// The fake unit tests may use answers as the real Consul does (e2e runs
// the same contract on the lab's cluster).
func TestFakeKeepsTheContract(t *testing.T) {
	consultest.TestCluster(t, consultest.NewFake("127.0.0.1:8300").Harness("data-services"))
}
