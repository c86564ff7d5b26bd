package yamlerr

import (
	"errors"
	"fmt"
	"strings"
)

// syntaxError turns a YAML parse error into an Error; for the commonest
// causes, a tab in the indentation and a field indented to no level of
// the lines above, it names the field and says what to change instead of
// the parser's "value is not allowed in this context".
func syntaxError(name string, data []byte, err error) error {
	base := FromDecode(name, "", err)
	var e *Error
	if !errors.As(base, &e) {
		return base
	}
	lines := strings.Split(string(data), "\n")
	if t := firstTab(lines, e.Line); t != nil {
		t.File = name
		return t
	}
	if h := indentHint(lines, e); h != nil {
		h.File = name
		return h
	}
	return e
}

// firstTab finds a tab in the indentation of a line up to the error's.
func firstTab(lines []string, upTo int) *Error {
	if upTo <= 0 || upTo > len(lines) {
		upTo = len(lines)
	}
	for i := 0; i < upTo; i++ {
		for j, c := range lines[i] {
			if c == '\t' {
				return &Error{Line: i + 1, Column: j + 1, Msg: "a tab in the indentation: YAML indents with spaces only; replace the tab with spaces"}
			}
			if c != ' ' {
				break
			}
		}
	}
	return nil
}

// keyLine reads "  - name: value" into the key's column (1-based), the
// key and whether a value follows on the line.
func keyLine(s string) (col int, key string, hasValue bool, ok bool) {
	i := 0
	for i < len(s) && (s[i] == ' ' || (s[i] == '-' && i+1 < len(s) && s[i+1] == ' ')) {
		i++
	}
	rest := s[i:]
	k, v, found := strings.Cut(rest, ":")
	if !found || k == "" || strings.HasPrefix(rest, "#") || strings.ContainsAny(k, "{}[]\"'#") {
		return 0, "", false, false
	}
	v = strings.TrimSpace(v)
	return i + 1, strings.TrimSpace(k), v != "" && !strings.HasPrefix(v, "#"), true
}

func indentHint(lines []string, e *Error) *Error {
	if e.Line <= 0 || e.Line > len(lines) {
		return nil
	}
	if !strings.Contains(e.Msg, "not allowed in this context") && !strings.Contains(e.Msg, "could not find expected") && !strings.Contains(e.Msg, "unexpected key") {
		return nil
	}
	cur := e.Line - 1 // 0-based
	// "a: x" followed by a deeper "b: y" reads as one value "x b: y".
	if c, k, hasValue, ok := keyLine(lines[cur]); ok && hasValue {
		if n := nextContent(lines, cur); n >= 0 {
			if nc, nk, _, ok := keyLine(lines[n]); ok && nc > c {
				return &Error{Line: n + 1, Column: nc, Field: nk,
					Msg: fmt.Sprintf("indented more than %q on the line above, which already has a value: indent %q like %q (%s), or give %q no value on its line", k, nk, k, spaces(c-1), k)}
			}
		}
	}
	c, k, _, ok := keyLine(lines[cur])
	if !ok {
		// "name x": a line meant as a key without its ':'.
		if t := strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(lines[cur]), "- ")); t != "" && !strings.ContainsAny(t, ":#{}[]\"'|>") {
			col := len(lines[cur]) - len(strings.TrimLeft(lines[cur], " -")) + 1
			return &Error{Line: e.Line, Column: col, Msg: fmt.Sprintf("%q is not a name: value line: is the ':' after the name missing?", t)}
		}
		return nil
	}
	// Levels open above: the previous content line, then every earlier
	// line indented less than the last level found.
	type level struct {
		col int
		key string
	}
	var levels []level
	for i := cur - 1; i >= 0; i-- {
		lc, lk, _, ok := keyLine(lines[i])
		if !ok {
			continue
		}
		if len(levels) == 0 || lc < levels[len(levels)-1].col {
			levels = append(levels, level{lc, lk})
		}
	}
	for _, l := range levels {
		if l.col == c {
			return nil
		}
	}
	if len(levels) == 0 {
		return nil
	}
	msg := fmt.Sprintf("indented by %s, which matches no level above: align %q with %q (%s)", spaces(c-1), k, levels[0].key, spaces(levels[0].col-1))
	if len(levels) > 1 {
		msg += fmt.Sprintf(" or with %q (%s)", levels[1].key, spaces(levels[1].col-1))
	}
	return &Error{Line: e.Line, Column: c, Field: k, Msg: msg}
}

func nextContent(lines []string, i int) int {
	for j := i + 1; j < len(lines); j++ {
		t := strings.TrimSpace(lines[j])
		if t != "" && !strings.HasPrefix(t, "#") {
			return j
		}
	}
	return -1
}

func spaces(n int) string {
	if n == 1 {
		return "1 space"
	}
	return fmt.Sprintf("%d spaces", n)
}
