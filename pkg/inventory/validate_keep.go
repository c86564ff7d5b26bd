package inventory

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/hoctl/hoctl/pkg/retention"
)

// keepFields are the fields of a calendar retention policy, in the order
// the docs list them.
var keepFields = []string{"min", "hourly", "daily", "weekly", "monthly", "yearly", "timezone", "week_start", "day_start"}

var periods = map[string]string{"hourly": "hours", "daily": "days", "weekly": "weeks", "monthly": "months", "yearly": "years"}

// keep reads one side's retention: a number of snapshots, or a calendar
// policy. def is the count when the side is left out.
func (v *validator) keep(at string, raw any, def int) retention.Policy {
	if raw == nil {
		return retention.Policy{Count: def}
	}
	if n, ok := wholeNumber(raw); ok {
		if n < 1 {
			v.at(at, "expected at least 1 snapshot kept, got %d", n)
			return retention.Policy{Count: def}
		}
		return retention.Policy{Count: n}
	}
	m, ok := raw.(map[string]any)
	if !ok {
		v.at(at, "expected a number of snapshots (48) or a policy like {min: 3, hourly: 24, daily: 7, weekly: 4, monthly: 6}")
		return retention.Policy{Count: def}
	}
	p := retention.Policy{}
	errsBefore := len(v.errs)
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		val := m[k]
		field := at + "." + k
		switch k {
		case "min":
			s := fmt.Sprint(val)
			if n, ok := wholeNumber(val); ok {
				s = strconv.Itoa(n)
			}
			min, err := retention.ParseMin(s)
			if err != nil {
				v.at(field, "%v", err)
			}
			p.Min = min
		case "hourly", "daily", "weekly", "monthly", "yearly":
			n, ok := wholeNumber(val)
			if s, isStr := val.(string); isStr && (s == "all" || s == "*") {
				n, ok = retention.All, true
			} else if n < 0 {
				ok = false // -1 is All inside hoctl, not a spelling of it
			}
			if !ok {
				v.at(field, "expected a number of %s back, or all; got %v", periods[k], val)
			}
			switch k {
			case "hourly":
				p.Hourly = n
			case "daily":
				p.Daily = n
			case "weekly":
				p.Weekly = n
			case "monthly":
				p.Monthly = n
			default:
				p.Yearly = n
			}
		case "timezone":
			name, _ := val.(string)
			loc, err := time.LoadLocation(name)
			// "Local" would be the zone of the machine hoctl runs on, which
			// differs between a timer on zippy and a laptop: they would
			// prune different snapshots.
			if err != nil || name == "" || name == "Local" {
				v.at(field, "expected a time zone name like UTC or Europe/Berlin, got %v", val)
			}
			p.Location = loc
		case "week_start":
			d, ok := weekday(val)
			if !ok {
				v.at(field, "expected a day of the week like sunday or monday, got %v", val)
			}
			p.WeekStart = d
		case "day_start":
			n, ok := wholeNumber(val)
			if !ok || n < 0 || n > 23 {
				v.at(field, "expected the hour a day starts, 0 to 23, got %v", val)
			}
			p.DayStart = n
		default:
			v.at(field, "unknown field %q; expected one of %s", k, strings.Join(keepFields, ", "))
		}
	}
	// "Keeps nothing" only when every field read well: a rule with a bad
	// value has its own error, and saying twice is noise.
	if len(v.errs) == errsBefore && p.Min.IsZero() && p.Hourly == 0 && p.Daily == 0 && p.Weekly == 0 && p.Monthly == 0 && p.Yearly == 0 {
		v.at(at, "the policy keeps nothing: expected min or at least one of hourly, daily, weekly, monthly, yearly")
	}
	return p
}

// wholeNumber is an integer YAML value, however the decoder typed it.
func wholeNumber(x any) (int, bool) {
	switch n := x.(type) {
	case int:
		return n, true
	case int64:
		return int(n), n >= -1<<31 && n < 1<<31
	case uint64:
		return int(n), n < 1<<31
	}
	return 0, false
}

func weekday(x any) (time.Weekday, bool) {
	s, _ := x.(string)
	for d := time.Sunday; d <= time.Saturday; d++ {
		if strings.EqualFold(s, d.String()) {
			return d, true
		}
	}
	return 0, false
}
