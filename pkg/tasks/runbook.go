package tasks

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"text/template"
	"time"

	"github.com/hoctl/hoctl/pkg/filecopy"
	"github.com/hoctl/hoctl/pkg/inventory"
	"github.com/hoctl/hoctl/pkg/yamlerr"
)

// KindFile is the journal kind of a runbook loaded from a YAML file.
const KindFile = "runbook-file"

type fileRunbook struct {
	Name        string            `yaml:"name"`
	Description string            `yaml:"description"`
	Lock        string            `yaml:"lock"`
	ClusterLock bool              `yaml:"cluster_lock"`
	Vars        map[string]string `yaml:"vars"`
	Secrets     map[string]string `yaml:"secrets"`
	Steps       []fileStep        `yaml:"steps"`
}

type fileStep struct {
	Title           string        `yaml:"title"`
	Hosts           string        `yaml:"hosts"`
	Before          string        `yaml:"before"`
	Run             string        `yaml:"run"`
	After           string        `yaml:"after"`
	Undo            string        `yaml:"undo"`
	Serial          int           `yaml:"serial"`
	MaxFail         int           `yaml:"max_fail"`
	Timeout         time.Duration `yaml:"timeout"`
	Retries         int           `yaml:"retries"`
	RetryDelay      time.Duration `yaml:"retry_delay"`
	Confirm         bool          `yaml:"confirm"`
	ContinueOnError bool          `yaml:"continue_on_error"`
	NeedsPrevious   bool          `yaml:"needs_previous"`
	Copy            *fileCopy     `yaml:"copy"`
	When            string        `yaml:"when"`
}

// fileCopy is a copy: step (see CopyStep).
type fileCopy struct {
	Src   string `yaml:"src"`
	Dest  string `yaml:"dest"`
	Mode  string `yaml:"mode"`
	Owner string `yaml:"owner"`
}

var varNameRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// LoadOptions are what a runbook file is loaded with.
type LoadOptions struct {
	// Vars override the file's vars (--var k=v).
	Vars map[string]string
	// Getenv reads the environment variables named under secrets.
	Getenv func(string) string
	// Limit (--limit) narrows every step's hosts to those this target
	// expression selects. A step it leaves without a host is an error:
	// skipping it would run later steps without the ones before them.
	// Steps without hosts: (run on this machine) are not affected.
	Limit string
}

// LoadRunbookFile reads a YAML runbook and checks it completely (fields,
// hosts, templates rendered for every host) before anything runs.
func LoadRunbookFile(ctx context.Context, path string, inv *inventory.Inventory, o LoadOptions) (*Runbook, error) {
	data, err := yamlerr.ReadFile(ctx, path, "runbook")
	if err != nil {
		return nil, err
	}
	rb, err := ParseRunbook(path, data, inv, o)
	if err == nil {
		// Journaled absolute, so that resume works from any directory.
		rb.Params["file"] = absPath(path)
	}
	return rb, err
}

// ParseRunbook is LoadRunbookFile for bytes in memory.
func ParseRunbook(name string, data []byte, inv *inventory.Inventory, o LoadOptions) (*Runbook, error) {
	var limit map[string]bool
	if o.Limit != "" {
		hosts, err := inv.Select(o.Limit)
		if err != nil {
			return nil, fmt.Errorf("--limit: %w", err)
		}
		limit = map[string]bool{}
		for _, h := range hosts {
			limit[h.Name] = true
		}
	}
	if len(bytes.TrimSpace(data)) == 0 {
		return nil, &yamlerr.Error{File: name, Msg: "runbook is empty: expected name: and steps:"}
	}
	// A repeated key is one problem among the others, not the only one.
	f, dups, err := yamlerr.ParseKeepingDuplicates(name, "runbook", data)
	if err != nil {
		return nil, err
	}
	var fr fileRunbook
	decodeErrs := dups
	decodeErrs = append(decodeErrs, yamlerr.Decode(name, "docs/runbooks.md", f, &fr)...)
	errs := decodeErrs
	at := func(field, format string, args ...any) {
		// A value that did not decode is zero: checking it would only
		// repeat that problem.
		if !decodeErrs.Undecoded(field) {
			errs = append(errs, yamlerr.At(name, f, field, format, args...))
		}
	}
	if strings.TrimSpace(fr.Name) == "" {
		at("name", "missing: expected a name for the runbook")
	}
	if fr.Lock != "" && !scopeRE.MatchString(fr.Lock) {
		at("lock", "expected letters, digits, '.', '-' and '_', got %q", fr.Lock)
	}
	if fr.ClusterLock && fr.Lock == "" {
		at("cluster_lock", "needs lock: to name the scope")
	}
	if len(fr.Steps) == 0 {
		at("steps", "expected at least one step")
	}
	vars := map[string]any{}
	for k, v := range fr.Vars {
		vars[k] = v
	}
	for k := range vars {
		if !varNameRE.MatchString(k) {
			at("vars."+k, "variable name %q: expected letters, digits and '_'", k)
		}
	}
	errs = append(errs, undeclaredVars(o.Vars, fr, inv)...)
	for k, v := range o.Vars {
		vars[k] = v
	}
	var secretValues []string
	secretEnv := map[string]string{}
	isSecret := map[string]bool{}
	for _, k := range slices.Sorted(maps.Keys(fr.Secrets)) {
		env := fr.Secrets[k]
		if _, dup := fr.Vars[k]; dup {
			at("secrets."+k, "%q is also a plain var", k)
		}
		v := ""
		if o.Getenv != nil {
			v = o.Getenv(env)
		}
		if ov, ok := o.Vars[k]; ok {
			v = ov
		}
		if v == "" {
			at("secrets."+k, "secret %q comes from $%s, which is not set", k, env)
		}
		if strings.ContainsAny(v, "\n\x00") {
			at("secrets."+k, "secret %q holds a newline or NUL, which cannot be passed to a command", k)
		}
		// Commands see a reference; the value travels beside them.
		vars[k] = NewSecretRef(k)
		secretEnv[SecretEnv(k)] = v
		isSecret[k] = true
		secretValues = append(secretValues, v)
	}

	rb := &Runbook{Name: fr.Name, Description: fr.Description, Lock: fr.Lock, ClusterLock: fr.ClusterLock,
		Kind: KindFile, Resumable: true, Secrets: secretValues}
	// Each host sees the inventory's vars for it, with the runbook's
	// vars, --var and secrets over them; built once, before anything
	// renders, so that renders from many goroutines only read.
	hostVars := map[string]map[string]any{}
	for _, n := range inv.HostNames() {
		hostVars[n] = withVars(inv.VarsFor(inv.Host(n)), vars)
	}
	hostVars[localHost.Name] = withVars(inv.VarsFor(nil), vars)
	data2 := func(h *inventory.Host) any {
		v, ok := hostVars[h.Name]
		if !ok || IsLocal(h) {
			v = hostVars[localHost.Name]
		}
		return TemplateData{Host: h.Name, HostInfo: h, Vars: v, Inventory: inv}
	}
	for i, fs := range fr.Steps {
		p := fmt.Sprintf("steps.%d", i)
		s := &Step{Title: fs.Title, Serial: fs.Serial, MaxFail: fs.MaxFail, Retries: fs.Retries, Confirm: fs.Confirm,
			ContinueOnError: fs.ContinueOnError, NeedsPrevious: fs.NeedsPrevious}
		if strings.TrimSpace(fs.Title) == "" {
			at(p, "step %d: missing title", i+1)
		}
		if strings.TrimSpace(fs.Run) == "" && fs.Copy == nil {
			at(p, "step %d: missing run: the command to run (or copy: a file to put on the hosts)", i+1)
		}
		if fs.Hosts != "" {
			s.Hosts = stepHosts(fs.Hosts, inv, hostVars[localHost.Name], limit, o.Limit, func(format string, args ...any) { at(p+".hosts", format, args...) })
		}
		if strings.TrimSpace(fs.When) != "" {
			s.Skip = evalWhen(fs.When, s.hosts(), data2, func(format string, args ...any) { at(p+".when", format, args...) })
		}
		if fs.Copy != nil {
			if spec, ok := copySpec(name, fs, func(field, format string, args ...any) { at(p+"."+field, format, args...) }); ok {
				c := CopyStep(s.Title, s.Hosts, spec, nil)
				s.Before, s.Action, s.After = c.Before, c.Action, c.After
			}
		}
		if fs.Serial < 0 || fs.MaxFail < 0 || fs.Retries < 0 {
			at(p, "serial, max_fail and retries must not be negative")
		}
		s.Timeout, s.RetryDelay = fs.Timeout, fs.RetryDelay
		if fs.Timeout < 0 {
			at(p+".timeout", "expected a positive duration such as 30s or 5m, got %s", fs.Timeout)
		}
		if fs.RetryDelay < 0 {
			at(p+".retry_delay", "expected a positive duration such as 30s or 5m, got %s", fs.RetryDelay)
		}
		if s.Retries > 0 && s.RetryDelay == 0 {
			s.RetryDelay = 2 * time.Second
		}
		for _, o := range []struct {
			field string
			src   string
			dst   *Op
		}{{"before", fs.Before, &s.Before}, {"run", fs.Run, &s.Action}, {"after", fs.After, &s.After}, {"undo", fs.Undo, &s.Undo}} {
			if strings.TrimSpace(o.src) == "" {
				continue
			}
			sh, err := NewShell(o.src, data2)
			if err != nil {
				at(p+"."+o.field, "bad template: %v", trimTemplateErr(err))
				continue
			}
			sh.Secrets = secretEnv
			for _, a := range sh.Unquoted(isSecret) {
				rb.Warnings = append(rb.Warnings, fmt.Sprintf("step %d %s: %s is pasted into the command unquoted; write it with | q (see docs/runbooks.md)", i+1, o.field, a))
			}
			// Render for every host now: an undefined variable or a
			// template error stops the run before anything starts.
			for _, h := range s.hosts() {
				if _, err := sh.Describe(h); err != nil {
					at(p+"."+o.field, "%v (for host %s)", err, h.Name)
					break
				}
			}
			*o.dst = sh
		}
		rb.Steps = append(rb.Steps, s)
	}
	if err := errs.Final(name); err != nil {
		return nil, err
	}
	sum := sha256.Sum256(data)
	rb.Params = map[string]string{"file": name, "sha256": hex.EncodeToString(sum[:])}
	if o.Limit != "" {
		rb.Params["limit"] = o.Limit
	}
	for k, v := range o.Vars {
		if _, secret := fr.Secrets[k]; !secret {
			rb.Params["var."+k] = v
		}
	}
	return rb, nil
}

// stepHosts resolves a step's hosts: field. It may use the runbook's
// variables ("{{.Vars.target}}"), rendered here, before anything runs, so
// a bad value is a load error with the rendered text in it. The limit, if
// any, then narrows the hosts; fail reports problems.
func stepHosts(src string, inv *inventory.Inventory, vars map[string]any, limit map[string]bool, limitExpr string, fail func(string, ...any)) []*inventory.Host {
	expr := src
	if strings.Contains(src, "{{") {
		t, err := template.New("hosts").Option("missingkey=error").Parse(src)
		if err != nil {
			fail("bad template: %v", trimTemplateErr(err))
			return nil
		}
		var b strings.Builder
		data := TemplateData{Vars: vars, Inventory: inv}
		if err := t.Execute(&b, data); err != nil {
			fail("%v", TemplateError(err, data))
			return nil
		}
		expr = b.String()
	}
	hosts, err := inv.Select(expr)
	if err != nil {
		if expr != src {
			fail("%q renders to %q: %v", src, expr, err)
		} else {
			fail("%v", err)
		}
		return nil
	}
	if limit == nil {
		return hosts
	}
	var kept []*inventory.Host
	for _, h := range hosts {
		if limit[h.Name] {
			kept = append(kept, h)
		}
	}
	if len(kept) == 0 {
		fail("--limit %q leaves this step no host (its hosts: %q select %s): a limit narrows steps but never skips one (the steps after it may need it); include a host of every step", limitExpr, expr, hostList(hosts))
	}
	return kept
}

func hostList(hs []*inventory.Host) string {
	names := make([]string, len(hs))
	for i, h := range hs {
		names[i] = h.Name
	}
	return strings.Join(names, ", ")
}

func trimTemplateErr(err error) string {
	s := err.Error()
	s = strings.TrimPrefix(s, "template: cmd:")
	if i := strings.Index(s, ": "); i >= 0 {
		if _, err := strconv.Atoi(s[:i]); err == nil {
			return "line " + s[:i] + ": " + s[i+2:]
		}
	}
	return s
}

// undeclaredVars refuses --var names the runbook declares under neither
// vars nor secrets, and the inventory sets nowhere: a typo would otherwise leave the default in place and
// run the runbook with a value the operator did not mean.
func undeclaredVars(given map[string]string, fr fileRunbook, inv *inventory.Inventory) yamlerr.Errors {
	declared := slices.Sorted(maps.Keys(fr.Vars))
	declared = append(declared, slices.Sorted(maps.Keys(fr.Secrets))...)
	invVars := inv.VarNames()
	declared = append(declared, invVars...)
	var errs yamlerr.Errors
	for _, k := range slices.Sorted(maps.Keys(given)) {
		_, isVar := fr.Vars[k]
		isVar = isVar || slices.Contains(invVars, k)
		_, isSecret := fr.Secrets[k]
		switch {
		case !varNameRE.MatchString(k):
			errs = append(errs, &yamlerr.Error{File: "--var", Msg: fmt.Sprintf("variable name %q: expected letters, digits and '_'", k)})
		case !isVar && !isSecret:
			msg := fmt.Sprintf("%s: the runbook declares no variable %q", k, k)
			if s := yamlerr.Suggest(k, declared); len(s) > 0 {
				msg += "; did you mean " + strings.Join(s, " or ") + "?"
			} else if len(declared) > 0 {
				msg += " (it declares " + strings.Join(declared, ", ") + ")"
			} else {
				msg += " (it declares none: add it under vars: with a default)"
			}
			errs = append(errs, &yamlerr.Error{File: "--var", Msg: msg})
		}
	}
	return errs
}

// withVars is the inventory's vars for a host with the runbook's over
// them (as Ansible's play vars and extra vars win over inventory vars).
func withVars(inv map[string]string, runbook map[string]any) map[string]any {
	out := make(map[string]any, len(inv)+len(runbook))
	for k, v := range inv {
		out[k] = v
	}
	for k, v := range runbook {
		out[k] = v
	}
	return out
}

// InventoryVars is what {{.Vars}} holds for h in a template outside a
// runbook (deploy.command): the inventory's vars for it.
func InventoryVars(inv *inventory.Inventory, h *inventory.Host) map[string]any {
	return withVars(inv.VarsFor(h), nil)
}

// copySpec checks a copy: step and returns its spec. src is relative to
// the runbook's directory, as a runbook and its files travel together;
// it must be a regular file now (check finds a missing one). The step's
// own before, run and after are the copy's: other commands go in steps
// of their own.
func copySpec(runbook string, step fileStep, at func(field, format string, args ...any)) (filecopy.Spec, bool) {
	ok := true
	for field, v := range map[string]string{"run": step.Run, "before": step.Before, "after": step.After, "undo": step.Undo} {
		if strings.TrimSpace(v) != "" {
			at(field, "a copy: step reads the file before and after by itself and has no %s:; put other commands in a step of their own", field)
			ok = false
		}
	}
	c := step.Copy
	spec := filecopy.Spec{Src: c.Src, Dest: c.Dest, Mode: c.Mode, Owner: c.Owner}
	if c.Src == "" {
		at("copy", "missing src: the file on this machine to copy")
		return spec, false
	}
	if !filepath.IsAbs(spec.Src) {
		spec.Src = filepath.Join(filepath.Dir(absPath(runbook)), spec.Src)
	}
	if fi, err := os.Stat(spec.Src); errors.Is(err, fs.ErrNotExist) {
		at("copy.src", "%s does not exist (a relative src is read from the runbook's directory)", spec.Src)
		ok = false
	} else if err != nil {
		at("copy.src", "%v", err)
		ok = false
	} else if !fi.Mode().IsRegular() {
		at("copy.src", "%s is not a regular file", spec.Src)
		ok = false
	}
	if err := spec.Validate(); err != nil {
		field := "copy.dest"
		switch {
		case strings.HasPrefix(err.Error(), "mode"):
			field = "copy.mode"
		case strings.HasPrefix(err.Error(), "owner"):
			field = "copy.owner"
		}
		at(field, "%v", err)
		ok = false
	}
	return spec, ok
}

// evalWhen renders a step's when: for each of its hosts and returns the
// hosts where it is false, with the reason plans and journals show. It
// is rendered now, before anything runs, as every template is: its
// values (the inventory, vars, --var) do not change during a run.
func evalWhen(src string, hosts []*inventory.Host, data func(*inventory.Host) any, fail func(string, ...any)) map[string]string {
	t, err := template.New("when").Option("missingkey=error").Funcs(templateFuncs).Parse(src)
	if err != nil {
		fail("bad template: %v", trimTemplateErr(err))
		return nil
	}
	skip := map[string]string{}
	for _, h := range hosts {
		var b strings.Builder
		d := data(h)
		if err := t.Execute(&b, d); err != nil {
			fail("%v (for host %s)", TemplateError(err, d), h.Name)
			return nil
		}
		switch v := strings.TrimSpace(b.String()); v {
		case "true":
		case "false":
			skip[h.Name] = "when: " + src + " is false"
		default:
			fail("renders %q for host %s: expected true or false (write a comparison such as {{eq .Vars.rack \"a\"}})", v, h.Name)
			return nil
		}
	}
	if len(skip) == 0 {
		return nil
	}
	return skip
}
