package inventory

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"sort"

	"github.com/goccy/go-yaml"
	"github.com/goccy/go-yaml/ast"
	"github.com/hoctl/hoctl/pkg/yamlerr"
)

// Error is one problem in an inventory file, with its position.
type Error = yamlerr.Error

// Errors is every problem found in one file, in file order.
type Errors = yamlerr.Errors

// file is the raw YAML shape; Inventory is what callers get after checks.
type file struct {
	Defaults Settings         `yaml:"defaults"`
	Hosts    map[string]*Host `yaml:"hosts"`
	// Groups are a list of hosts or {hosts: [...], vars: {...}}:
	// decoded as they come, and shaped by validation.
	Groups      map[string]any          `yaml:"groups"`
	Vars        map[string]string       `yaml:"vars"`
	Consul      *API                    `yaml:"consul"`
	Nomad       *API                    `yaml:"nomad"`
	Replication map[string]*Replication `yaml:"replication"`
	NFS         map[string]*NFSService  `yaml:"nfs"`
	Deploy      Deploy                  `yaml:"deploy"`
	Jobs        Jobs                    `yaml:"jobs"`
}

// Load reads and validates the inventory at path; ctx bounds the read.
func Load(ctx context.Context, path string) (*Inventory, error) {
	data, err := yamlerr.ReadFile(ctx, path, "inventory")
	if err != nil {
		return nil, err
	}
	return Parse(path, data)
}

// Parse validates an inventory held in memory; name is used in errors.
// Every problem is reported, in file order, not just the first.
func Parse(name string, data []byte) (*Inventory, error) {
	if len(bytes.TrimSpace(data)) == 0 {
		return nil, &Error{File: name, Msg: "inventory is empty: expected at least a hosts: section"}
	}
	// A repeated key is one problem among the others, not the only one.
	astFile, dups, err := yamlerr.ParseKeepingDuplicates(name, "inventory", data)
	if err != nil {
		return nil, err
	}
	var raw file
	decodeErrs := dups
	decodeErrs = append(decodeErrs, yamlerr.Decode(name, "docs/inventory.md", astFile, &raw)...)
	sum := sha256.Sum256(data)
	inv := &Inventory{
		Path:        name,
		Hash:        hex.EncodeToString(sum[:]),
		Defaults:    raw.Defaults,
		Hosts:       raw.Hosts,
		Vars:        raw.Vars,
		Consul:      raw.Consul,
		Nomad:       raw.Nomad,
		Replication: raw.Replication,
		NFS:         raw.NFS,
		Deploy:      raw.Deploy,
		Jobs:        raw.Jobs,
	}
	if inv.Hosts == nil {
		inv.Hosts = map[string]*Host{}
	}
	inv.order = hostOrder(astFile, inv.Hosts)
	for n, h := range inv.Hosts {
		if h == nil {
			h = &Host{}
			inv.Hosts[n] = h
		}
		h.Name = n
	}
	v := &validator{name: name, ast: astFile, inv: inv, rawGroups: raw.Groups}
	v.run()
	errs := decodeErrs
	for _, e := range v.errs {
		// A value that did not decode is zero; checking it would only
		// repeat the decoding problem in other words.
		if !decodeErrs.Undecoded(e.Field) {
			errs = append(errs, e)
		}
	}
	if err := errs.Final(name); err != nil {
		return nil, err
	}
	return inv, nil
}

// hostOrder recovers file order from the AST; Go maps lose it.
func hostOrder(f *ast.File, hosts map[string]*Host) []string {
	var order []string
	seen := map[string]bool{}
	if p, err := yaml.PathString("$.hosts"); err == nil {
		if n, err := p.FilterFile(f); err == nil {
			if m, ok := n.(ast.MapNode); ok {
				it := m.MapRange()
				for it.Next() {
					k := it.Key().GetToken().Value
					if _, ok := hosts[k]; ok && !seen[k] {
						order = append(order, k)
						seen[k] = true
					}
				}
			}
		}
	}
	// Anything the walk missed (it should not) still gets listed, sorted.
	var rest []string
	for k := range hosts {
		if !seen[k] {
			rest = append(rest, k)
		}
	}
	sort.Strings(rest)
	return append(order, rest...)
}

func sortStrings(s []string) { sort.Strings(s) }
