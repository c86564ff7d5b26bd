package lab

import (
	"context"
	"errors"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
)

// repoRoot is the repository, from this package's directory.
const repoRoot = "../.."

// makefilePackages are the Debian packages `make deps` and `make
// bench-deps` install: LAB_PKGS and BENCH_PKGS of the Makefile.
func makefilePackages(t *testing.T, makefile string) map[string]string {
	t.Helper()
	data, err := os.ReadFile(makefile)
	if err != nil {
		t.Fatal(err)
	}
	pkgs := map[string]string{}
	re := regexp.MustCompile(`(?m)^(LAB_PKGS|BENCH_PKGS)\s*:?=(.*)$`)
	for _, m := range re.FindAllStringSubmatch(string(data), -1) {
		for _, p := range strings.Fields(m[2]) {
			pkgs[p] = m[1]
		}
	}
	if len(pkgs) == 0 {
		t.Fatalf("no LAB_PKGS or BENCH_PKGS in %s", makefile)
	}
	return pkgs
}

// essential reports whether Debian marks pkg Essential (in every Debian
// system, minbase included: no list needs to name it).
func essential(t *testing.T, pkg string) bool {
	t.Helper()
	out, err := ToolCmd(context.Background(), "dpkg-query", "-W", "-f=${Essential}", pkg).Output()
	if err != nil {
		return false
	}
	return strings.TrimSpace(string(out)) == "yes"
}

// inCI: under CI=true a tool that cannot be checked fails, never skips.
func inCI() bool { return os.Getenv("CI") == "true" }

// Every Debian tool's package is one that make installs: in LAB_PKGS or
// BENCH_PKGS, or Essential. (A package dropped from the lists fails here,
// wherever the test runs.)
func TestHostToolPackagesAreInTheMakefile(t *testing.T) {
	pkgs := makefilePackages(t, filepath.Join(repoRoot, "Makefile"))
	for _, tool := range hostTools {
		if tool.From != FromDebian {
			if tool.Package != "" {
				t.Errorf("%s: from %s, yet names package %s", tool.Name, tool.From, tool.Package)
			}
			continue
		}
		if tool.Package == "" {
			t.Errorf("%s: a Debian tool without its package", tool.Name)
			continue
		}
		if pkgs[tool.Package] == "" && !essential(t, tool.Package) {
			t.Errorf("%s: its package %s is in neither LAB_PKGS nor BENCH_PKGS (and not Essential): make deps does not install it", tool.Name, tool.Package)
		}
	}
}

// pathCandidates are the paths dpkg may know a program by: as found, with
// its symlinks resolved, and without or with /usr (bookworm's merged
// /usr: losetup is found at /usr/sbin, dpkg recorded /sbin).
func pathCandidates(path string) []string {
	candidates := []string{path}
	if r, err := filepath.EvalSymlinks(path); err == nil && r != path {
		candidates = append(candidates, r)
	}
	for _, c := range append([]string(nil), candidates...) {
		if strings.HasPrefix(c, "/usr/") {
			candidates = append(candidates, strings.TrimPrefix(c, "/usr"))
		} else {
			candidates = append(candidates, "/usr"+c)
		}
	}
	return candidates
}

// dpkgOwners maps each path dpkg knows, of paths, to the packages owning
// it: one dpkg -S for all (it exits 1 when some are unknown, and still
// names the others).
func dpkgOwners(paths []string) map[string][]string {
	out, _ := ToolCmd(context.Background(), "dpkg", append([]string{"-S"}, paths...)...).Output()
	owners := map[string][]string{}
	for _, line := range strings.Split(string(out), "\n") {
		if strings.HasPrefix(line, "diversion by") {
			continue
		}
		pkgList, file, ok := strings.Cut(line, ": ")
		if !ok {
			continue
		}
		for _, p := range strings.Split(pkgList, ",") {
			p, _, _ = strings.Cut(strings.TrimSpace(p), ":") // arch qualifier
			owners[file] = append(owners[file], p)
		}
	}
	return owners
}

// Every Debian tool, where it is found here, is the table's package's
// (dpkg -S of its path), so the table cannot name a package that does not
// install the program; Go is where the README puts it. Under CI=true a
// tool not found fails.
func TestHostToolsResolveThroughDpkg(t *testing.T) {
	if _, err := FindTool("dpkg"); err != nil {
		if inCI() {
			t.Fatalf("dpkg: %v", err)
		}
		t.Skip("not a Debian machine: no dpkg")
	}
	var all []string
	for _, tool := range hostTools {
		if p, err := tool.Find(); err == nil && tool.From == FromDebian {
			all = append(all, pathCandidates(p)...)
		}
	}
	known := dpkgOwners(all)
	for _, tool := range hostTools {
		if tool.From == FromBuild {
			continue
		}
		t.Run(tool.Name, func(t *testing.T) {
			path, err := tool.Find()
			if err != nil {
				msg := "not on this machine (make deps, or make bench-deps for the bench's tools, installs it): " + err.Error()
				if inCI() {
					t.Fatal(msg)
				}
				t.Skip(msg)
			}
			if tool.From == FromGo {
				return // not a package: /usr/local/go or PATH's
			}
			var owners []string
			for _, c := range pathCandidates(path) {
				if owners = known[c]; len(owners) > 0 {
					break
				}
			}
			if len(owners) == 0 {
				t.Fatalf("%s: dpkg -S knows no package owning it (installed by hand? %s must come from %s)", path, tool.Name, tool.Package)
			}
			for _, o := range owners {
				if o == tool.Package {
					return
				}
			}
			t.Fatalf("%s: dpkg -S says %s, the table says %s", path, strings.Join(owners, ", "), tool.Package)
		})
	}
}

// A PATH lacking nix-bin's programs: the preflight names them, their
// package and the command installing it.
func TestPreflightNamesMissingToolsAndTheirPackages(t *testing.T) {
	bin := pathWithout(t, "nix-instantiate", "nix-store", "nix")
	t.Setenv("PATH", bin)
	err := Preflight(ForAll)
	var missing *MissingToolsError
	if !errors.As(err, &missing) {
		t.Fatalf("Preflight with no Nix: %v, want a MissingToolsError", err)
	}
	var names []string
	for _, m := range missing.Missing {
		names = append(names, m.Name)
	}
	if got := strings.Join(names, " "); got != "nix-instantiate nix-store nix" {
		t.Errorf("missing %q, want the three Nix programs", got)
	}
	for _, want := range []string{"nix-instantiate (nix-bin)", "install them with: apt-get install -y nix-bin\n"} {
		if !strings.Contains(err.Error()+"\n", want) {
			t.Errorf("the preflight's message lacks %q:\n%s", want, err)
		}
	}
	// The bench's tools are not asked for by the demo and the tests.
	if strings.Contains(err.Error(), "pdsh") {
		t.Errorf("ForAll asks for a bench tool: %s", err)
	}
	if err := Preflight(ForLab); err != nil {
		t.Errorf("a namespace lab needs no Nix, yet: %v", err)
	}
}

// pathWithout is a directory holding a link to every tool of the table
// found here but the named ones: a PATH on which just those are missing.
func pathWithout(t *testing.T, drop ...string) string {
	t.Helper()
	dir := t.TempDir()
	for _, tool := range hostTools {
		if tool.From == FromBuild || tool.Path != "" || contains(drop, tool.Name) {
			continue
		}
		p, err := tool.Find()
		if err != nil {
			if inCI() {
				t.Fatalf("%s: %v", tool.Name, err)
			}
			t.Skipf("%s is not on this machine: %v", tool.Name, err)
		}
		if err := os.Symlink(p, filepath.Join(dir, tool.Name)); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestToolCmdRefusesAProgramNotInTheTable(t *testing.T) {
	err := ToolCmd(context.Background(), "true-but-not-in-the-table").Run()
	if !errors.Is(err, ErrNotHostTool) {
		t.Fatalf("Run: %v, want ErrNotHostTool", err)
	}
	if _, err := FindTool("frobnicate"); !errors.Is(err, ErrNotHostTool) {
		t.Fatalf("FindTool: %v, want ErrNotHostTool", err)
	}
	if err := ToolCmd(context.Background(), "true").Run(); err != nil {
		if _, ferr := FindTool("true"); ferr == nil {
			t.Fatalf("true, in the table and here: %v", err)
		}
	}
}

// builtHere are the variables that hold a program built from this
// repository, which may be exec'd directly: the hoctl under test, and the
// end-to-end test binary, which runs itself once per group of tests.
var builtHere = map[string]bool{"hoctlBin": true, "e2eBin": true}

// execScan lists the exec of a program, in the Go files under dirs, that
// does not go through the table of host tools: exec.Command,
// exec.CommandContext, exec.LookPath, an exec.Cmd literal, os.StartProcess
// and syscall's execs (anywhere but hosttools.go), of anything but a
// program built here; and ToolCmd, Tool or FindTool naming (by a string
// literal) a program the table lacks.
func execScan(t *testing.T, dirs ...string) []string {
	t.Helper()
	var bad []string
	for _, d := range dirs {
		err := filepath.WalkDir(d, func(p string, e os.DirEntry, err error) error {
			if err != nil || e.IsDir() || !strings.HasSuffix(p, ".go") {
				return err
			}
			// The table itself, and its own tests of refusals.
			if abs, _ := filepath.Abs(p); strings.HasSuffix(abs, "/internal/lab/hosttools.go") || strings.HasSuffix(abs, "/internal/lab/hosttools_test.go") {
				return nil
			}
			bad = append(bad, scanGoFile(t, p)...)
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	return bad
}

func scanGoFile(t *testing.T, path string) []string {
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, path, nil, parser.SkipObjectResolution)
	if err != nil {
		t.Fatal(err)
	}
	// The names the file gives the packages that start programs.
	names := map[string]string{} // local name -> import path
	for _, imp := range f.Imports {
		ip, _ := strconv.Unquote(imp.Path.Value)
		local := ip[strings.LastIndex(ip, "/")+1:]
		if imp.Name != nil {
			local = imp.Name.Name
		}
		names[local] = ip
	}
	inLab := f.Name.Name == "lab"
	var bad []string
	at := func(n ast.Node, msg string) {
		bad = append(bad, fset.Position(n.Pos()).String()+": "+msg)
	}
	ast.Inspect(f, func(n ast.Node) bool {
		switch n := n.(type) {
		case *ast.CompositeLit:
			if sel, ok := n.Type.(*ast.SelectorExpr); ok {
				if x, ok := sel.X.(*ast.Ident); ok && names[x.Name] == "os/exec" && sel.Sel.Name == "Cmd" {
					at(n, "an exec.Cmd literal: use lab.ToolCmd")
				}
			}
		case *ast.CallExpr:
			pkg, fn := callee(n)
			switch {
			case names[pkg] == "os/exec" && (fn == "Command" || fn == "CommandContext" || fn == "LookPath"):
				arg := 0
				if fn == "CommandContext" {
					arg = 1
				}
				if len(n.Args) > arg {
					if id, ok := n.Args[arg].(*ast.Ident); ok && builtHere[id.Name] {
						return true
					}
				}
				at(n, "exec."+fn+" of "+exprString(n, arg)+": run host tools through lab.ToolCmd (internal/lab/hosttools.go)")
			case names[pkg] == "os" && fn == "StartProcess", names[pkg] == "syscall" && (fn == "Exec" || fn == "ForkExec" || fn == "StartProcess"):
				at(n, pkg+"."+fn+": run host tools through lab.ToolCmd")
			case (pkg == "" && inLab || strings.HasSuffix(names[pkg], "/internal/lab")) && (fn == "ToolCmd" || fn == "Tool" || fn == "FindTool"):
				arg := 0
				if fn == "ToolCmd" {
					arg = 1
				}
				for _, name := range literalPrograms(n.Args, arg) {
					if _, ok := Tool(name); !ok {
						at(n, fn+"("+strconv.Quote(name)+"): not in the table of host tools")
					}
				}
			}
		}
		return true
	})
	return bad
}

// callee is a call's package (or "") and function name.
func callee(c *ast.CallExpr) (pkg, fn string) {
	switch f := c.Fun.(type) {
	case *ast.Ident:
		return "", f.Name
	case *ast.SelectorExpr:
		if x, ok := f.X.(*ast.Ident); ok {
			return x.Name, f.Sel.Name
		}
		return "?", f.Sel.Name
	}
	return "?", ""
}

// literalPrograms are the programs a ToolCmd's arguments name by string
// literal: the program, and what nice runs.
func literalPrograms(args []ast.Expr, i int) []string {
	var out []string
	for ; i < len(args); i++ {
		lit, ok := args[i].(*ast.BasicLit)
		if !ok || lit.Kind != token.STRING {
			return out
		}
		s, _ := strconv.Unquote(lit.Value)
		out = append(out, s)
		if s != "nice" {
			return out
		}
		// nice -n N PROGRAM
		for i+1 < len(args) {
			if l, ok := args[i+1].(*ast.BasicLit); ok && (strings.HasPrefix(l.Value, `"-`) || regexp.MustCompile(`^"\d+"$`).MatchString(l.Value)) {
				i++
				continue
			}
			break
		}
	}
	return out
}

func exprString(c *ast.CallExpr, i int) string {
	if i >= len(c.Args) {
		return "?"
	}
	switch a := c.Args[i].(type) {
	case *ast.BasicLit:
		return a.Value
	case *ast.Ident:
		return a.Name
	}
	return "an expression"
}

// Every exec of a program by the lab, the end-to-end tests and the bench
// goes through the table.
func TestNoExecOutsideTheHostToolTable(t *testing.T) {
	dirs := []string{".", filepath.Join(repoRoot, "e2e"), filepath.Join(repoRoot, "bench")}
	if bad := execScan(t, dirs...); len(bad) > 0 {
		t.Errorf("programs started outside internal/lab's table of host tools:\n  %s", strings.Join(bad, "\n  "))
	}
}

// The scan catches what it is for: a new exec of a tool, by exec or by
// ToolCmd, and lets a routed one through.
func TestExecScanCatchesANewExec(t *testing.T) {
	dir := t.TempDir()
	src := `package e2e

import (
	"context"
	"os/exec"
	x "os/exec"

	"github.com/hoctl/hoctl/internal/lab"
)

func f(ctx context.Context, hoctlBin, other string) {
	_ = exec.Command("frobnicate", "-v")
	_ = x.CommandContext(ctx, "frobnicate")
	_, _ = exec.LookPath("frobnicate")
	_ = &exec.Cmd{Path: "/usr/bin/frobnicate"}
	_ = exec.Command(other)
	_ = lab.ToolCmd(ctx, "frobnicate")
	_ = lab.ToolCmd(ctx, "nice", "-n", "10", "frobnicate")
	_ = lab.ToolCmd(ctx, "nsenter", "--target", "1")
	_ = lab.ToolCmd(ctx, "nice", "-n", "10", "debootstrap")
	_ = exec.Command(hoctlBin, "version")
}
`
	if err := os.WriteFile(filepath.Join(dir, "new_test.go"), []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	bad := execScan(t, dir)
	var lines []string
	for _, b := range bad {
		_, rest, _ := strings.Cut(b, "new_test.go:")
		lines = append(lines, rest)
	}
	sort.Strings(lines)
	want := []string{"12:6:", "13:6:", "14:9:", "15:7:", "16:6:", "17:6:", "18:6:"}
	if len(lines) != len(want) {
		t.Fatalf("the scan found %d, want %d:\n%s", len(lines), len(want), strings.Join(bad, "\n"))
	}
	for i, w := range want {
		if !strings.HasPrefix(lines[i], w) {
			t.Errorf("finding %d: %s, want at %s", i, lines[i], w)
		}
	}
}
