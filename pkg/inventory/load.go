package inventory

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"sort"
	"time"

	"github.com/goccy/go-yaml"
	"github.com/goccy/go-yaml/ast"
	"github.com/goccy/go-yaml/parser"
	"github.com/hoctl/hoctl/pkg/yamlerr"
)

// Error is one problem in an inventory file, with its position.
type Error = yamlerr.Error

// Errors is every problem found in one file, in file order.
type Errors = yamlerr.Errors

// file is the raw YAML shape; Inventory is what callers get after checks.
type file struct {
	Defaults    Settings                `yaml:"defaults"`
	Hosts       map[string]*Host        `yaml:"hosts"`
	Groups      map[string][]string     `yaml:"groups"`
	Consul      *API                    `yaml:"consul"`
	Nomad       *API                    `yaml:"nomad"`
	Replication map[string]*Replication `yaml:"replication"`
	NFS         map[string]*NFSService  `yaml:"nfs"`
	Deploy      Deploy                  `yaml:"deploy"`
	Jobs        Jobs                    `yaml:"jobs"`
}

// Load reads and validates the inventory at path.
func Load(path string) (*Inventory, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, &Error{File: path, Msg: "cannot read inventory: " + errText(err)}
	}
	return Parse(path, data)
}

func errText(err error) string {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err.Error()
	}
	return err.Error()
}

// Parse validates an inventory held in memory; name is used in errors.
func Parse(name string, data []byte) (*Inventory, error) {
	if len(bytes.TrimSpace(data)) == 0 {
		return nil, &Error{File: name, Msg: "inventory is empty: expected at least a hosts: section"}
	}
	astFile, err := parser.ParseBytes(data, 0)
	if err != nil {
		return nil, yamlError(name, err)
	}
	if len(astFile.Docs) > 1 {
		return nil, &Error{File: name, Msg: "expected one YAML document, found several"}
	}
	if err := checkDurations(name, astFile); err != nil {
		return nil, err
	}
	var raw file
	if err := yaml.UnmarshalWithOptions(data, &raw, yaml.Strict(), yaml.DisallowUnknownField()); err != nil {
		return nil, yamlError(name, err)
	}
	sum := sha256.Sum256(data)
	inv := &Inventory{
		Path:        name,
		Hash:        hex.EncodeToString(sum[:]),
		Defaults:    raw.Defaults,
		Hosts:       raw.Hosts,
		Groups:      raw.Groups,
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
	v := &validator{name: name, ast: astFile, inv: inv}
	v.run()
	if len(v.errs) > 0 {
		v.errs.Sort()
		return nil, v.errs
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

func yamlError(name string, err error) error {
	return yamlerr.FromDecode(name, "docs/inventory.md", err)
}

func sortStrings(s []string) { sort.Strings(s) }

var durationKeys = map[string]bool{"connect_timeout": true, "command_timeout": true, "keepalive": true, "max_lag": true}

// checkDurations finds unparsable durations before decoding, because the
// YAML decoder reports them without a position.
func checkDurations(name string, f *ast.File) error {
	var errs Errors
	for _, doc := range f.Docs {
		ast.Walk(visitFunc(func(n ast.Node) {
			mv, ok := n.(*ast.MappingValueNode)
			if !ok || !durationKeys[mv.Key.GetToken().Value] {
				return
			}
			val, ok := mv.Value.(*ast.StringNode)
			if !ok {
				return
			}
			if _, err := time.ParseDuration(val.Value); err != nil {
				e := &Error{File: name, Field: mv.Key.GetToken().Value,
					Msg: fmt.Sprintf("expected a duration such as 10s, 5m or 1h30m, got %q", val.Value)}
				if tk := val.GetToken(); tk != nil && tk.Position != nil {
					e.Line, e.Column = tk.Position.Line, tk.Position.Column
				}
				errs = append(errs, e)
			}
		}), doc)
	}
	if len(errs) > 0 {
		return errs
	}
	return nil
}

type visitFunc func(ast.Node)

func (f visitFunc) Visit(n ast.Node) ast.Visitor {
	f(n)
	return f
}
