package yamlerr

import (
	"sort"
	"strings"
)

// Suggest returns the names close to word, closest first, at most three:
// the word's plural or singular (retry, retries) first, then those within
// a small edit distance or one a prefix of the other (identity_file,
// identity_files), by distance. The plural comes first because a prefix
// alone ranks a longer field the word happens to begin (retry_delay)
// before the one its writer meant.
func Suggest(word string, names []string) []string {
	type cand struct {
		name string
		d    int
	}
	var cs []cand
	lw := strings.ToLower(word)
	for _, n := range names {
		ln := strings.ToLower(n)
		if ln == lw {
			continue
		}
		d := Distance(lw, ln)
		switch {
		case singular(lw) == singular(ln):
			cs = append(cs, cand{n, -1})
		case d <= 1+len(word)/4 || (len(lw) >= 3 && (strings.HasPrefix(ln, lw) || strings.HasPrefix(lw, ln))):
			cs = append(cs, cand{n, d})
		}
	}
	sort.SliceStable(cs, func(i, j int) bool { return cs[i].d < cs[j].d })
	var out []string
	for i, c := range cs {
		if i == 3 {
			break
		}
		out = append(out, c.name)
	}
	return out
}

// singular is an English plural's singular, as field names are formed
// (retries, hosts, identity_files); other words are themselves.
func singular(w string) string {
	switch {
	case strings.HasSuffix(w, "ies") && len(w) > 4:
		return w[:len(w)-3] + "y"
	case strings.HasSuffix(w, "s") && !strings.HasSuffix(w, "ss") && len(w) > 3:
		return w[:len(w)-1]
	}
	return w
}

// Distance is the optimal-string-alignment edit distance: Levenshtein
// plus adjacent transpositions, the commonest typo.
func Distance(a, b string) int {
	ra, rb := []rune(a), []rune(b)
	d := make([][]int, len(ra)+1)
	for i := range d {
		d[i] = make([]int, len(rb)+1)
		d[i][0] = i
	}
	for j := range d[0] {
		d[0][j] = j
	}
	for i := 1; i <= len(ra); i++ {
		for j := 1; j <= len(rb); j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			d[i][j] = min(d[i-1][j]+1, d[i][j-1]+1, d[i-1][j-1]+cost)
			if i > 1 && j > 1 && ra[i-1] == rb[j-2] && ra[i-2] == rb[j-1] {
				d[i][j] = min(d[i][j], d[i-2][j-2]+1)
			}
		}
	}
	return d[len(ra)][len(rb)]
}
