package docs_test

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/hoctl/hoctl/pkg/cli"
	"github.com/hoctl/hoctl/pkg/inventory"
	"github.com/hoctl/hoctl/pkg/iostreams"
	"github.com/hoctl/hoctl/pkg/sshexec"
	"github.com/hoctl/hoctl/pkg/tasks"
)

// -update rewrites each transcript in the pages with what the binary
// prints now (make docs-golden); without it, any difference fails.
var update = flag.Bool("update", false, "rewrite the docs' transcripts with the current output")

// A marker on the line before a fence says the example is not run:
// <!-- illustrative: why -->, e.g. it needs the lab's hosts.
var reIllustrative = regexp.MustCompile(`^<!-- illustrative: [^>]+ -->$`)

type block struct {
	page, section, lang string
	line                int // of the opening fence, 1-based
	marker              string
	body                []string
}

func readBlocks(t *testing.T, path, page string) ([]string, []block) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(string(b), "\n")
	var out []block
	section := ""
	for i := 0; i < len(lines); i++ {
		l := lines[i]
		if strings.HasPrefix(l, "#") && !strings.HasPrefix(l, "#!") {
			section = strings.TrimSpace(strings.TrimLeft(l, "#"))
			continue
		}
		if !strings.HasPrefix(l, "```") {
			continue
		}
		bl := block{page: page, section: section, lang: strings.TrimPrefix(l, "```"), line: i + 1}
		if i > 0 {
			bl.marker = strings.TrimSpace(lines[i-1])
		}
		for i++; i < len(lines) && !strings.HasPrefix(lines[i], "```"); i++ {
			bl.body = append(bl.body, lines[i])
		}
		out = append(out, bl)
	}
	return lines, out
}

// TestDocExamples: every fenced example of README.md and docs/*.md is run
// or checked, or marked illustrative:
//   - a transcript ("$ hoctl ARGS" lines, each followed by its output) is
//     run in process against the example inventory and the files of
//     testdata/, and must print exactly what the page shows;
//   - a JSON block holds objects with schema and event, as --json prints;
//   - a YAML block with hosts: is an inventory that loads, with steps: a
//     runbook that loads against the example inventory;
//   - a shell block's hoctl command lines name commands and flags that
//     exist;
//   - anything else says why it is not run.
func TestDocExamples(t *testing.T) {
	pages := []string{"../README.md"}
	mds, _ := filepath.Glob("*.md")
	pages = append(pages, mds...)
	work := fixtureDir(t)
	exampleInv, err := inventory.Load(context.Background(), filepath.Join(work, "inventory.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	ran, checked, illustrative := 0, 0, 0
	for _, path := range pages {
		page := filepath.Base(path)
		lines, blocks := readBlocks(t, path, page)
		var edits []edit
		for _, bl := range blocks {
			where := fmt.Sprintf("%s:%d", path, bl.line)
			switch {
			case reIllustrative.MatchString(bl.marker):
				illustrative++
			case isTranscript(bl.body):
				got := runTranscript(t, work, where, bl.body)
				if got != strings.Join(bl.body, "\n") {
					if *update {
						edits = append(edits, edit{bl.line, len(bl.body), strings.Split(got, "\n")})
						continue
					}
					t.Errorf("%s: the page shows\n%s\n\nthe binary prints\n%s\n(make docs-golden rewrites the page)", where, strings.Join(bl.body, "\n"), got)
				}
				ran++
			case bl.lang == "json":
				checkJSON(t, where, bl.body)
				checked++
			case bl.lang == "yaml" && hasKey(bl.body, "hosts"):
				if _, err := inventory.Parse(where, []byte(strings.Join(bl.body, "\n"))); err != nil {
					t.Errorf("%s: the inventory does not load: %v", where, err)
				}
				checked++
			case bl.lang == "yaml" && hasKey(bl.body, "steps"):
				if _, err := tasks.ParseRunbook(where, []byte(strings.Join(bl.body, "\n")), exampleInv, tasks.LoadOptions{Getenv: func(string) string { return "x" }}); err != nil {
					t.Errorf("%s: the runbook does not load against inventory.yaml: %v", where, err)
				}
				checked++
			case (bl.lang == "sh" || bl.lang == "") && hasCommand(bl.body):
				checkCommands(t, where, bl.body)
				checked++
			default:
				t.Errorf("%s: an example neither run nor checked: make it a transcript ($ hoctl ...), or put <!-- illustrative: why --> on the line before it", where)
			}
		}
		if len(edits) > 0 {
			// Last first, so the earlier blocks' lines stay where they were.
			for i := len(edits) - 1; i >= 0; i-- {
				e := edits[i]
				lines = append(append(append([]string{}, lines[:e.at]...), e.with...), lines[e.at+e.n:]...)
			}
			if err := os.WriteFile(path, []byte(strings.Join(lines, "\n")), 0o644); err != nil {
				t.Fatal(err)
			}
			t.Logf("%s: %d transcripts rewritten", path, len(edits))
		}
	}
	t.Logf("%d transcripts run, %d examples checked, %d illustrative", ran, checked, illustrative)
	if ran == 0 || checked == 0 {
		t.Fatalf("ran %d, checked %d: the test found no examples", ran, checked)
	}
}

// edit replaces n lines from index at (a block's body) with with.
type edit struct {
	at, n int
	with  []string
}

func isTranscript(body []string) bool {
	return len(body) > 0 && strings.HasPrefix(body[0], "$ hoctl ")
}

func hasKey(body []string, key string) bool {
	for _, l := range body {
		if strings.HasPrefix(l, key+":") {
			return true
		}
	}
	return false
}

var reCommand = regexp.MustCompile(`^(?:bin/)?hoctl(?: |$)`)

func hasCommand(body []string) bool {
	for _, l := range body {
		if reCommand.MatchString(strings.TrimSpace(l)) {
			return true
		}
	}
	return false
}

// fixtureDir is what transcripts run in: the example inventory, the
// shipped runbooks, and testdata/ (the pages' other files).
func fixtureDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	copyFile(t, "../inventory.yaml", filepath.Join(dir, "inventory.yaml"))
	for _, src := range []string{"runbooks", "testdata"} {
		err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return err
			}
			var dst string
			if src == "testdata" {
				dst = filepath.Join(dir, strings.TrimPrefix(p, "testdata/"))
			} else {
				dst = filepath.Join(dir, "docs", p)
			}
			copyFile(t, p, dst)
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func copyFile(t *testing.T, src, dst string) {
	t.Helper()
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dst, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// runTranscript runs each "$ hoctl" line of body in dir and returns the
// transcript as the binary makes it: the command lines as written, each
// followed by what it printed (stdout, then stderr) on a terminal
// without colour. Nothing connects: a transcript that needs a host
// fails here, and belongs in the lab's tests with an illustrative page.
func runTranscript(t *testing.T, dir, where string, body []string) string {
	t.Helper()
	var out []string
	for _, l := range body {
		cmdline, ok := strings.CutPrefix(l, "$ ")
		if !ok {
			continue
		}
		out = append(out, l)
		args, err := shellWords(cmdline, dir)
		if err != nil || len(args) == 0 || args[0] != "hoctl" {
			t.Errorf("%s: cannot read %q: %v", where, cmdline, err)
			continue
		}
		out = append(out, strings.Split(strings.TrimRight(runHoctl(t, dir, args[1:]), "\n"), "\n")...)
	}
	// A command that prints nothing leaves no empty line behind.
	var kept []string
	for _, l := range out {
		if l != "" || len(kept) > 0 && kept[len(kept)-1] != "" {
			kept = append(kept, l)
		}
	}
	return strings.TrimRight(strings.Join(kept, "\n"), "\n")
}

func runHoctl(t *testing.T, dir string, args []string) string {
	t.Helper()
	ios, _, stdout, stderr := iostreams.Test()
	ios.SetTTY(false, true, true)
	ios.SetColor(false)
	env := map[string]string{"HOME": dir, "NO_COLOR": "1", "XDG_STATE_HOME": filepath.Join(dir, "state"), "TERM": "dumb"}
	f := &cli.Factory{IO: ios, Version: "docs", Getenv: func(k string) string { return env[k] },
		Connect: func(*inventory.Inventory) (cli.Connector, error) { return docsHosts{}, nil }}
	wd, _ := os.Getwd()
	if err := os.Chdir(dir); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = os.Chdir(wd) }()
	cli.Run(context.Background(), f, args)
	return stdout.String() + stderr.String()
}

// docsHosts are the hosts transcripts "connect" to, in process: zippy
// hangs, c2 refuses, any other host answers uname -n with its name, at
// once (so times show as <1ms). Any other command fails: a transcript
// that needs more belongs in the lab's tests.
type docsHosts struct{}

func (docsHosts) Close() error { return nil }

func (docsHosts) Runner(_ context.Context, h *inventory.Host) (sshexec.Runner, error) {
	switch h.Name {
	case "zippy":
		return nil, &sshexec.ConnError{Host: h.Name, Addr: h.Address + ":22", Reason: sshexec.ReasonTimeout, Err: errors.New("no SSH handshake within 10s (host hung?)")}
	case "c2":
		return nil, &sshexec.ConnError{Host: h.Name, Addr: h.Address + ":22", Reason: sshexec.ReasonRefused, Err: errors.New("dial tcp 192.0.2.12:22: connect: connection refused")}
	}
	return docsHost(h.Name), nil
}

type docsHost string

func (d docsHost) Name() string { return string(d) }

func (d docsHost) Run(_ context.Context, c sshexec.Cmd) (*sshexec.Result, error) {
	if len(c.Argv) == 2 && c.Argv[0] == "uname" && c.Argv[1] == "-n" {
		return &sshexec.Result{Stdout: []byte(string(d) + "\n")}, nil
	}
	return nil, fmt.Errorf("the docs' transcripts run only uname -n, not %q", c.Argv)
}

// shellWords splits a command line as sh would for the simple lines docs
// show: single and double quotes, a trailing # comment, and globs
// expanded in dir.
func shellWords(s, dir string) ([]string, error) {
	var words []string
	var cur strings.Builder
	inWord, glob := false, false
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '\'' || c == '"':
			j := strings.IndexByte(s[i+1:], c)
			if j < 0 {
				return nil, fmt.Errorf("unclosed quote")
			}
			cur.WriteString(s[i+1 : i+1+j])
			i += j + 1
			inWord = true
		case c == ' ' || c == '\t':
			if inWord {
				words = appendWord(words, cur.String(), glob, dir)
				cur.Reset()
				inWord, glob = false, false
			}
		case c == '#' && !inWord:
			i = len(s)
		default:
			if c == '*' || c == '?' {
				glob = true
			}
			cur.WriteByte(c)
			inWord = true
		}
	}
	if inWord {
		words = appendWord(words, cur.String(), glob, dir)
	}
	return words, nil
}

func appendWord(words []string, w string, glob bool, dir string) []string {
	if glob {
		if m, _ := filepath.Glob(filepath.Join(dir, w)); len(m) > 0 {
			sort.Strings(m)
			for _, p := range m {
				rel, _ := filepath.Rel(dir, p)
				words = append(words, rel)
			}
			return words
		}
	}
	return append(words, w)
}

// checkJSON: every line is one object with schema 1 and an event, as
// --json prints; "..." stands for fields left out of an example.
func checkJSON(t *testing.T, where string, body []string) {
	for _, l := range body {
		if strings.TrimSpace(l) == "" {
			continue
		}
		var obj map[string]any
		if err := json.Unmarshal([]byte(strings.ReplaceAll(l, ", ...}", "}")), &obj); err != nil {
			t.Errorf("%s: not one JSON object per line: %v\n%s", where, err, l)
			continue
		}
		if obj["schema"] != 1.0 || obj["event"] == nil {
			t.Errorf("%s: every object --json prints has \"schema\":1 and an \"event\":\n%s", where, l)
		}
	}
}

// checkCommands: each hoctl command line names a command that exists,
// with flags it has.
func checkCommands(t *testing.T, where string, body []string) {
	for _, l := range body {
		l = strings.TrimSpace(l)
		if !reCommand.MatchString(l) {
			continue
		}
		l = strings.TrimPrefix(l, "bin/")
		if i := strings.Index(l, " -- "); i >= 0 {
			l = l[:i] // the remote command's words are not hoctl's
		}
		args, err := shellWords(l, ".")
		if err != nil {
			t.Errorf("%s: %q: %v", where, l, err)
			continue
		}
		ios, _, _, _ := iostreams.Test()
		root := cli.NewRootCmd(&cli.Factory{IO: ios, Getenv: func(string) string { return "" }})
		cmd, rest, err := root.Find(args[1:])
		if err != nil {
			t.Errorf("%s: %q: %v", where, l, err)
			continue
		}
		if err := cmd.ParseFlags(rest); err != nil {
			t.Errorf("%s: %q: %v", where, l, err)
		}
	}
}
