package lab

import (
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
)

// shellBuiltins are words a shell runs itself (or that start no program).
var shellBuiltins = map[string]bool{
	"if": true, "then": true, "else": true, "elif": true, "fi": true, "for": true, "while": true, "until": true,
	"do": true, "done": true, "case": true, "esac": true, "in": true, "function": true, "{": true, "}": true, "!": true,
	"echo": true, "printf": true, "cd": true, "set": true, "export": true, "local": true, "shift": true, "trap": true,
	"exit": true, "return": true, "read": true, "test": true, "[": true, "[[": true, "true": true, "false": true,
	":": true, ".": true, "source": true, "wait": true, "eval": true, "break": true, "continue": true, "unset": true,
	"exec": true, "command": true, "declare": true, "readonly": true, "let": true, "time": true,
}

// shellCommands lists the programs a shell script runs: each word in a
// command's place (a line's start, after ; | & && || ( $( and the
// keywords), past assignments, builtins and the script's own functions,
// and the first argument of wrappers (functions that run their
// arguments: wrappers[name] is how many words come before the command).
// Here-documents, quoted strings and variables ($HOCTL) are not
// programs. Small, for the scripts the lab writes and demo.sh; a test
// shows what it catches.
func shellCommands(src string, wrappers map[string]int) []string {
	funcs := map[string]bool{}
	for _, m := range regexp.MustCompile(`(?m)^\s*([A-Za-z_][\w-]*)\s*\(\)`).FindAllStringSubmatch(src, -1) {
		funcs[m[1]] = true
	}
	var out []string
	seen := map[string]bool{}
	var scan func(s string)
	scan = func(s string) {
		atCmd, skip := true, 0
		word := strings.Builder{}
		plain := true // the word has no quote or expansion
		end := func() {
			w := word.String()
			word.Reset()
			isPlain := plain
			plain = true
			if w == "" {
				return
			}
			if !atCmd {
				return
			}
			if skip > 0 {
				skip--
				return
			}
			switch {
			case regexp.MustCompile(`^[A-Za-z_]\w*=`).MatchString(w):
				return // an assignment before the command
			case w == "for" || w == "case":
				atCmd = false
				return
			case shellBuiltins[w]:
				if w == "exec" || w == "command" || w == "time" || w == "!" || w == "{" ||
					w == "then" || w == "do" || w == "else" || w == "elif" || w == "if" || w == "while" || w == "until" {
					return // the next word is the command
				}
				atCmd = false
				return
			case hasKey(wrappers, w):
				skip = wrappers[w]
				return
			case funcs[w]:
				atCmd = false
				return
			}
			atCmd = false
			if !isPlain {
				return // $HOCTL, "$@": not a program named here
			}
			name := w
			if strings.Contains(w, "/") {
				name = filepath.Base(w)
			}
			if !seen[name] {
				seen[name] = true
				out = append(out, name)
			}
		}
		for i := 0; i < len(s); i++ {
			c := s[i]
			switch {
			case c == '\\' && i+1 < len(s):
				if s[i+1] != '\n' {
					word.WriteByte(s[i+1])
				}
				i++
			case c == '#' && word.Len() == 0:
				for i < len(s) && s[i] != '\n' {
					i++
				}
				end()
				atCmd, skip = true, 0
			case c == '\'':
				j := strings.IndexByte(s[i+1:], '\'')
				if j < 0 {
					j = len(s) - i - 1
				}
				word.WriteString(s[i+1 : i+1+j])
				plain = false
				i += j + 1
			case c == '"':
				j := i + 1
				for ; j < len(s) && s[j] != '"'; j++ {
					if s[j] == '\\' {
						j++
					} else if s[j] == '$' && j+1 < len(s) && s[j+1] == '(' {
						k := matchParen(s, j+1)
						scan(s[j+2 : k])
						j = k
					}
				}
				word.WriteString(s[i+1 : min(j, len(s))])
				plain = false
				i = j
			case c == '$' && i+1 < len(s) && (s[i+1] == '(' || s[i+1] == '{'):
				k := matchParen(s, i+1)
				if s[i+1] == '(' && (i+2 >= len(s) || s[i+2] != '(') {
					scan(s[i+2 : k]) // $(...); $((...)) is arithmetic
				}
				word.WriteString(s[i:min(k+1, len(s))])
				plain = false
				i = k
			case c == '$' || c == '`':
				word.WriteByte(c)
				plain = false
			case c == '\n' || c == ';' || c == '|' || c == '(' || c == ')':
				end()
				atCmd, skip = true, 0
			case c == '&':
				if i > 0 && (s[i-1] == '>' || s[i-1] == '<') {
					word.WriteByte(c)
					continue
				}
				end()
				atCmd, skip = true, 0
			case c == '>' || c == '<':
				end()
				// The redirection's target is a file, not a command.
				for i+1 < len(s) && (s[i+1] == '>' || s[i+1] == '&' || s[i+1] == ' ') {
					i++
				}
				j := i + 1
				for j < len(s) && !strings.ContainsRune(" \t\n;|&)", rune(s[j])) {
					j++
				}
				i = j - 1
			case c == ' ' || c == '\t':
				end()
			default:
				word.WriteByte(c)
			}
		}
		end()
	}
	scan(stripHeredocs(stripCasePatterns(src)))
	sort.Strings(out)
	return out
}

func hasKey(m map[string]int, k string) bool { _, ok := m[k]; return ok }

// matchParen is the index of the bracket closing the one at s[i].
func matchParen(s string, i int) int {
	open, closer := s[i], byte(')')
	if open == '{' {
		closer = '}'
	}
	depth := 0
	for j := i; j < len(s); j++ {
		switch s[j] {
		case '\'':
			if k := strings.IndexByte(s[j+1:], '\''); k >= 0 && open == '(' {
				j += k + 1
			}
		case open:
			depth++
		case closer:
			depth--
			if depth == 0 {
				return j
			}
		}
	}
	return len(s) - 1
}

// stripHeredocs drops here-documents' bodies: text, not commands.
func stripHeredocs(src string) string {
	re := regexp.MustCompile(`<<-?\s*['"]?(\w+)['"]?`)
	var out []string
	var until string
	for _, line := range strings.Split(src, "\n") {
		if until != "" {
			if strings.TrimSpace(line) == until {
				until = ""
			}
			continue
		}
		if m := re.FindStringSubmatch(line); m != nil {
			until = m[1]
		}
		out = append(out, line)
	}
	return strings.Join(out, "\n")
}

// stripCasePatterns drops a case branch's pattern ("zippy) addr=…").
func stripCasePatterns(src string) string {
	return regexp.MustCompile(`(?m)^(\s*)[^\s()'"$]+\)`).ReplaceAllString(src, "$1")
}

// demoWrappers are demo.sh's functions that run their arguments.
var demoWrappers = map[string]int{"run": 0, "quiet": 0, "expect": 1}

// checkShell fails for each program a script runs that is not in the
// table of host tools.
func checkShell(t *testing.T, what, src string, wrappers map[string]int) {
	t.Helper()
	cmds := shellCommands(src, wrappers)
	t.Logf("%s runs: %s", what, strings.Join(cmds, " "))
	if len(cmds) == 0 {
		t.Fatalf("%s: no command found: the scan is broken", what)
	}
	for _, c := range cmds {
		if _, ok := Tool(c); !ok {
			t.Errorf("%s runs %s, which is not in internal/lab's table of host tools (hosttools.go)", what, c)
		}
	}
}

// What demo.sh and the scripts the lab writes and runs on this machine
// (a host's start.sh, the deploy command and the Nix builder) run is in
// the table.
func TestShellRunsOnlyHostTools(t *testing.T) {
	demo, err := os.ReadFile("demo.sh")
	if err != nil {
		t.Fatal(err)
	}
	checkShell(t, "demo.sh", string(demo), demoWrappers)

	dir := t.TempDir()
	l := &Lab{Config: Config{Dir: dir, Net: 250, DiskSize: 1 << 20, Parts: &Parts{Consul: "/c", Nomad: "/n", Rootfs: "/r"}},
		ClientKey: filepath.Join(dir, "id"), KnownHosts: filepath.Join(dir, "kh")}
	h := &Host{Name: "zippy", Addr: "127.0.250.11", Dir: filepath.Join(dir, "hosts", "zippy")}
	l.Hosts = []*Host{h}
	checkShell(t, "a machine's start.sh", l.machineScript(h), nil)
	if err := l.writeNixFiles(); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"deploy.sh", "build.sh"} {
		b, err := os.ReadFile(filepath.Join(l.nixDir(), f))
		if err != nil {
			t.Fatal(err)
		}
		checkShell(t, f, string(b), nil)
	}
	l.Parts = nil
	if err := os.MkdirAll(h.Dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := l.prepareNamespace(h); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(h.Dir, "start.sh"))
	if err != nil {
		t.Fatal(err)
	}
	checkShell(t, "a namespace host's start.sh", string(b), nil)
}

// The shell scan finds a program wherever a script can run one, and no
// more.
func TestShellScanFindsEveryCommand(t *testing.T) {
	src := `#!/bin/sh
set -eu # not a command: frob0
f() { local x; x=$(frob1 -a | frob2); echo "$x"; }
run frob3 --flag 'frob-not-1; frob-not-2'
expect 4 frob4 arg
quiet $HOCTL run zippy -- 'frob-not-3'
A=1 B="frob-not-4" frob5 >/dev/null 2>&1 && frob6 || { frob7; }
for i in $(seq 3); do frob8 "$(frob9)"; done
case $host in
zippy) frob10 ;;
*) echo "frob-not-5 $(frob11)" ;;
esac
cat > /tmp/x <<'EOF'
frob-not-6
EOF
if frob12; then exec /usr/bin/frob13; fi
n=$((1 + 2)) ; ${PAGER:-frob-not-7} x
`
	got := strings.Join(shellCommands(src, demoWrappers), " ")
	want := "cat frob1 frob10 frob11 frob12 frob13 frob2 frob3 frob4 frob5 frob6 frob7 frob8 frob9 seq"
	if got != want {
		t.Errorf("commands:\n got %s\nwant %s", got, want)
	}
}
