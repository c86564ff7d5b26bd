package cli

import (
	"fmt"
	"sort"
	"strings"

	"github.com/hoctl/hoctl/pkg/yamlerr"
	"github.com/spf13/pflag"
)

// Suggestions for a mistyped name: the candidates a small edit distance
// away, nearest first.

// didYouMeanFlag names the flag of fs closest to a mistyped name, as
// " (did you mean --parallel?)", or "" when none is close.
func didYouMeanFlag(fs *pflag.FlagSet, typed string) string {
	var names []string
	fs.VisitAll(func(fl *pflag.Flag) {
		// --yes and --dry-run are hidden on the root (see globalflags.go)
		// but still typed before the command name.
		if !fl.Hidden || fl.Name == "yes" || fl.Name == "dry-run" {
			names = append(names, fl.Name)
		}
	})
	names = append(names, "help")
	best := closest(typed, names)
	if len(best) == 0 {
		return ""
	}
	return fmt.Sprintf(" (did you mean --%s?)", strings.Join(best, " or --"))
}

// closest returns the candidates within a small edit distance of typed,
// or that typed is a prefix of, nearest first.
func closest(typed string, candidates []string) []string {
	type cand struct {
		name string
		d    int
	}
	var cs []cand
	limit := 2
	if len(typed) <= 3 {
		limit = 1
	}
	for _, c := range candidates {
		d := yamlerr.Distance(strings.ToLower(typed), strings.ToLower(c))
		if d <= limit || (len(typed) >= 3 && strings.HasPrefix(c, typed)) ||
			strings.ReplaceAll(c, "-", "") == strings.ReplaceAll(typed, "-", "") {
			cs = append(cs, cand{c, d})
		}
	}
	sort.SliceStable(cs, func(i, j int) bool { return cs[i].d < cs[j].d })
	out := make([]string, 0, len(cs))
	for _, c := range cs {
		out = append(out, c.name)
	}
	return out
}
