package tasks

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"

	consulapi "github.com/hashicorp/consul/api"
	"github.com/hoctl/hoctl/pkg/inventory"
)

// A Builder rebuilds a run of its kind from what its journal recorded
// (Runbook.Kind and Runbook.Params), for `hoctl resume`. It returns the
// same runbook the run was started with, steps in the same order, or an
// error saying why it cannot.
type Builder func(ctx context.Context, r *Rebuild) (*Runbook, error)

// Rebuild is what a Builder gets: the run as journaled and what the
// resume was asked with.
type Rebuild struct {
	Run       *Summary
	Inventory *inventory.Inventory
	// Limit narrows the rest of the run's hosts (resume --limit); empty
	// keeps the run's own. A kind whose hosts are not the operator's to
	// choose refuses it.
	Limit string
	// Force resumes although an input of the run changed since.
	Force bool
	// Plan is a dry run: only the plan will be shown.
	Plan   bool
	Getenv func(string) string
	// Consul connects to the inventory's Consul (once, on first use);
	// nil when the inventory has none.
	Consul func(ctx context.Context) (*consulapi.Client, error)
}

// The registry of resumable kinds. Each kind registers itself from its
// own package at init, as database/sql drivers do, and is only read
// afterwards.
var (
	registryMu sync.RWMutex
	registry   = map[string]Builder{}
)

// Register makes a kind resumable: resume rebuilds its runs with b. It
// panics on an empty kind, a nil builder or a kind registered twice,
// which are mistakes in hoctl's own code.
func Register(kind string, b Builder) {
	registryMu.Lock()
	defer registryMu.Unlock()
	switch {
	case kind == "":
		panic("tasks.Register: empty kind")
	case b == nil:
		panic("tasks.Register: nil builder for kind " + kind)
	case registry[kind] != nil:
		panic("tasks.Register: kind " + kind + " registered twice")
	}
	registry[kind] = b
}

// Lookup is the builder of kind; an *UnknownKindError when no package
// registered it.
func Lookup(kind string) (Builder, error) {
	registryMu.RLock()
	defer registryMu.RUnlock()
	if b := registry[kind]; b != nil {
		return b, nil
	}
	return nil, &UnknownKindError{Kind: kind, Known: slices.Sorted(maps.Keys(registry))}
}

// Kinds are the registered kinds, sorted.
func Kinds() []string {
	registryMu.RLock()
	defer registryMu.RUnlock()
	return slices.Sorted(maps.Keys(registry))
}

// UnknownKindError is a run of a kind no builder is registered for: it
// cannot be rebuilt, so it cannot be resumed.
type UnknownKindError struct {
	Kind  string
	Known []string
}

func (e *UnknownKindError) Error() string {
	kind := e.Kind
	if kind == "" {
		kind = "(none recorded)"
	}
	return fmt.Sprintf("no resumable run kind %s: resume rebuilds %s", kind, strings.Join(e.Known, ", "))
}
