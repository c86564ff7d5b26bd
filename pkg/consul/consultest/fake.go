package consultest

import (
	"context"
	"errors"
	"sort"
	"sync"
	"testing"

	"github.com/hoctl/hoctl/pkg/consul"
)

// Fake is an in-memory Cluster for unit tests: one leader, service
// instances with their checks, and a KV store with Consul's
// check-and-set. TestCluster holds it to the same contract as the real
// Consul.
type Fake struct {
	mu        sync.Mutex
	LeaderVal string
	instances map[string]map[string]*fakeInstance // service -> node
	nodeDown  map[string]bool
	kv        map[string]fakeKey
	index     uint64
}

type fakeInstance struct{ passing bool }

type fakeKey struct {
	value string
	index uint64
}

// NewFake returns a Fake whose leader is leader ("" for none).
func NewFake(leader string) *Fake {
	return &Fake{LeaderVal: leader, instances: map[string]map[string]*fakeInstance{}, nodeDown: map[string]bool{}, kv: map[string]fakeKey{}}
}

// Harness is the Fake's ClusterHarness, for TestCluster.
func (f *Fake) Harness(service string) ClusterHarness {
	return ClusterHarness{Cluster: f, Service: service, KeyPrefix: "hoctl-contract/",
		Register:   func(_ *testing.T, node string, passing bool) { f.SetInstance(service, node, passing) },
		NodeDown:   func(_ *testing.T, node string) { f.SetNodeDown(node, true) },
		Deregister: func(_ *testing.T, node string) { f.Deregister(service, node) },
	}
}

// SetInstance registers node's instance of service, its checks passing
// or not.
func (f *Fake) SetInstance(service, node string, passing bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.instances[service] == nil {
		f.instances[service] = map[string]*fakeInstance{}
	}
	f.instances[service][node] = &fakeInstance{passing: passing}
}

// SetNodeDown fails (or restores) node's node-level check.
func (f *Fake) SetNodeDown(node string, down bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.nodeDown[node] = down
}

// Deregister removes node's instance of service.
func (f *Fake) Deregister(service, node string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.instances[service], node)
}

func (f *Fake) Leader(context.Context) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.LeaderVal == "" {
		return "", errNoLeader
	}
	return f.LeaderVal, nil
}

func (f *Fake) Instances(_ context.Context, service string) ([]consul.Instance, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []consul.Instance
	for node, in := range f.instances[service] {
		out = append(out, consul.Instance{Node: node, Passing: in.passing && !f.nodeDown[node]})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Node < out[j].Node })
	return out, nil
}

func (f *Fake) Passing(ctx context.Context, service string) ([]string, error) {
	all, _ := f.Instances(ctx, service)
	return consul.PassingNodes(all), nil
}

func (f *Fake) Get(_ context.Context, key string) (string, uint64, bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	k, ok := f.kv[key]
	return k.value, k.index, ok, nil
}

func (f *Fake) CAS(_ context.Context, key, value string, index uint64) (bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	k, ok := f.kv[key]
	if index == 0 && ok || index != 0 && (!ok || k.index != index) {
		return false, nil
	}
	f.index++
	f.kv[key] = fakeKey{value: value, index: f.index}
	return true, nil
}

var errNoLeader = errors.New("consul has no leader")
