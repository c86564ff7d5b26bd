// Package retention decides which replication snapshots one side keeps, and
// says why: either the newest N, or btrbk's calendar rules (the first
// snapshot of each hour, day, week, month and year, for so many periods back),
// with a minimum that is kept whatever the rules say.
//
// The calendar rules follow btrbk's documented semantics (btrbk.conf(5),
// "RETENTION POLICY") so that an operator's btrbk policy means the same here:
// days start at DayStart, weeks on WeekStart, a month starts on the first
// WeekStart of the month, and "7d" keeps the first snapshot of today and of
// each of the 7 days before. Buckets are computed in an explicit time zone
// (UTC unless the inventory names one) rather than the local zone of whichever
// machine runs hoctl: a timer on zippy and an operator's laptop must prune the
// same snapshots.
package retention

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"
)

// All as a rule's count means "every period, forever" (btrbk's "*").
const All = -1

// Policy is the retention of one side of a replication.
type Policy struct {
	// Count, when non-zero, is the simple form: keep the newest Count
	// snapshots. The calendar fields are then unused.
	Count int `json:"count,omitempty"`

	// Min is kept whatever the calendar rules say.
	Min Min `json:"min,omitempty"`

	// How many periods back the first snapshot of each period is kept;
	// 0 keeps none by that rule, All keeps every period.
	Hourly  int `json:"hourly,omitempty"`
	Daily   int `json:"daily,omitempty"`
	Weekly  int `json:"weekly,omitempty"`
	Monthly int `json:"monthly,omitempty"`
	Yearly  int `json:"yearly,omitempty"`

	// Location is the time zone of the calendar; nil means UTC.
	Location *time.Location `json:"-"`
	// WeekStart is the day a week starts (btrbk's preserve_day_of_week,
	// Sunday by default as in btrbk).
	WeekStart time.Weekday `json:"week_start"`
	// DayStart is the hour a day starts (btrbk's preserve_hour_of_day).
	DayStart int `json:"day_start,omitempty"`
}

// Min is the part of a policy kept regardless of the calendar rules: the
// newest Newest snapshots, every snapshot of the last N periods of Unit
// ('h', 'd', 'w', 'm' or 'y'), or all of them.
type Min struct {
	Newest int  `json:"newest,omitempty"`
	N      int  `json:"n,omitempty"`
	Unit   byte `json:"unit,omitempty"`
	All    bool `json:"all,omitempty"`
}

// IsZero reports whether the minimum keeps nothing by itself.
func (m Min) IsZero() bool { return m.Newest == 0 && m.Unit == 0 && !m.All }

// String is the minimum as the inventory writes it.
func (m Min) String() string {
	switch {
	case m.All:
		return "all"
	case m.Unit != 0:
		return fmt.Sprintf("%d%c", m.N, m.Unit)
	case m.Newest > 0:
		return strconv.Itoa(m.Newest)
	}
	return ""
}

// ParseMin reads a minimum: a number (the newest N), "latest" (the newest
// one), "all", or a period such as "6h", "2d", "1w", "3m", "1y".
func ParseMin(s string) (Min, error) {
	s = strings.TrimSpace(s)
	switch s {
	case "", "no":
		return Min{}, nil
	case "all":
		return Min{All: true}, nil
	case "latest":
		return Min{Newest: 1}, nil
	}
	if n, err := strconv.Atoi(s); err == nil && n >= 0 {
		return Min{Newest: n}, nil
	}
	if len(s) >= 2 && strings.ContainsRune("hdwmy", rune(s[len(s)-1])) {
		if n, err := strconv.Atoi(s[:len(s)-1]); err == nil && n >= 0 {
			return Min{N: n, Unit: s[len(s)-1]}, nil
		}
	}
	return Min{}, fmt.Errorf("expected a number of snapshots, latest, all, or a period like 6h, 2d, 1w, 3m, 1y; got %q", s)
}

// IsCalendar reports whether the policy uses the calendar rules rather than
// a plain count.
func (p Policy) IsCalendar() bool { return p.Count == 0 }

// String is a one-line summary for plans: "newest 12" or
// "min 3, 24 hourly, 7 daily, 4 weekly, 6 monthly".
func (p Policy) String() string {
	if !p.IsCalendar() {
		return fmt.Sprintf("newest %d", p.Count)
	}
	var parts []string
	if !p.Min.IsZero() {
		parts = append(parts, "min "+p.Min.String())
	}
	for _, r := range []struct {
		n    int
		name string
	}{{p.Hourly, "hourly"}, {p.Daily, "daily"}, {p.Weekly, "weekly"}, {p.Monthly, "monthly"}, {p.Yearly, "yearly"}} {
		switch {
		case r.n == All:
			parts = append(parts, "all "+r.name)
		case r.n > 0:
			parts = append(parts, fmt.Sprintf("%d %s", r.n, r.name))
		}
	}
	if len(parts) == 0 {
		return "nothing but the newest common snapshot"
	}
	if loc := p.location(); loc != time.UTC {
		parts = append(parts, "in "+loc.String())
	}
	return strings.Join(parts, ", ")
}

func (p Policy) location() *time.Location {
	if p.Location == nil {
		return time.UTC
	}
	return p.Location
}

// Item is one snapshot to decide on.
type Item struct {
	Name string
	Time time.Time
}

// Verdict is the decision on one snapshot: kept, with every rule that keeps
// it, or pruned.
type Verdict struct {
	Item
	Keep    bool
	Reasons []string
}

// Reason is the verdict in a few words, for tables and plans.
func (v Verdict) Reason() string {
	if !v.Keep {
		return "pruned: no rule keeps it"
	}
	return strings.Join(v.Reasons, "; ")
}

// Apply decides on items at time now. protect names snapshots kept whatever
// the policy says (the newest common snapshot), with the reason to show.
// Verdicts come oldest first.
func (p Policy) Apply(items []Item, now time.Time, protect map[string]string) []Verdict {
	out := make([]Verdict, len(items))
	for i, it := range items {
		out[i] = Verdict{Item: it}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Time.Before(out[j].Time) })
	keep := func(v *Verdict, reason string) {
		v.Keep = true
		v.Reasons = append(v.Reasons, reason)
	}
	for i := range out {
		if why, ok := protect[out[i].Name]; ok {
			keep(&out[i], why)
		}
	}
	if !p.IsCalendar() {
		for i := len(out) - 1; i >= 0 && i >= len(out)-p.Count; i-- {
			keep(&out[i], fmt.Sprintf("one of the newest %d", p.Count))
		}
		return out
	}
	for i := len(out) - 1; i >= 0 && i >= len(out)-p.Min.Newest; i-- {
		keep(&out[i], fmt.Sprintf("min: one of the newest %d", p.Min.Newest))
	}
	cal := make([]calendar, len(out))
	for i := range out {
		cal[i] = p.place(out[i].Time, now)
		if cal[i].hours < 0 {
			// A clock that ran ahead made it: keeping it is the only safe
			// choice, and the next run after the clock is fixed decides.
			keep(&out[i], "dated in the future")
			continue
		}
		if p.Min.All {
			keep(&out[i], "min: all")
		} else if p.Min.Unit != 0 && cal[i].delta(p.Min.Unit) <= p.Min.N {
			keep(&out[i], fmt.Sprintf("min: within %s", p.Min))
		}
	}

	// Each level's representative is the first of the level below's
	// representatives in its period, as btrbk chains them: the first
	// daily of a week is the weekly, the first weekly of a month the
	// monthly.
	reps := make([]int, 0, len(out))
	for i := range out {
		if cal[i].hours >= 0 {
			reps = append(reps, i)
		}
	}
	for _, lv := range []struct {
		unit  byte
		count int
		text  func(c calendar) string
	}{
		{'h', p.Hourly, func(c calendar) string {
			return fmt.Sprintf("hourly: first of the hour, %s ago", plural(c.hours, "hour"))
		}},
		{'d', p.Daily, func(c calendar) string { return fmt.Sprintf("daily: first of the day, %s ago", plural(c.days, "day")) }},
		{'w', p.Weekly, func(c calendar) string {
			return fmt.Sprintf("weekly: first of the week from %s, %s ago", p.WeekStart, plural(c.weeks, "week"))
		}},
		{'m', p.Monthly, func(c calendar) string {
			return fmt.Sprintf("monthly: first weekly of %04d-%02d, %s ago", c.year, c.month, plural(c.months, "month"))
		}},
		{'y', p.Yearly, func(c calendar) string {
			return fmt.Sprintf("yearly: first monthly of %04d, %s ago", c.year, plural(c.years, "year"))
		}},
	} {
		seen := map[int]bool{}
		next := reps[:0:0]
		for _, i := range reps {
			d := cal[i].delta(lv.unit)
			if seen[d] {
				continue
			}
			seen[d] = true
			next = append(next, i)
			if lv.count == All || (lv.count > 0 && d <= lv.count) {
				keep(&out[i], lv.text(cal[i]))
			}
		}
		reps = next
	}
	return out
}

// Pruned is the names Apply does not keep, oldest first.
func Pruned(vs []Verdict) []string {
	var out []string
	for _, v := range vs {
		if !v.Keep {
			out = append(out, v.Name)
		}
	}
	return out
}

// Summary counts the verdicts by the rule that keeps each, in the order
// rules are listed: "keeps 9 of 11 (3 min, 7 daily, 1 newest common
// snapshot), prunes 2". A snapshot several rules keep counts for each.
func Summary(vs []Verdict) string {
	counts := map[string]int{}
	var order []string
	kept := 0
	for _, v := range vs {
		if !v.Keep {
			continue
		}
		kept++
		for _, r := range v.Reasons {
			rule := r
			if i := strings.IndexByte(r, ':'); i > 0 {
				rule = r[:i]
			}
			if counts[rule] == 0 {
				order = append(order, rule)
			}
			counts[rule]++
		}
	}
	parts := make([]string, len(order))
	for i, rule := range order {
		parts[i] = fmt.Sprintf("%d %s", counts[rule], rule)
	}
	s := fmt.Sprintf("keeps %d of %d", kept, len(vs))
	if len(parts) > 0 {
		s += " (" + strings.Join(parts, ", ") + ")"
	}
	return s + fmt.Sprintf(", prunes %d", len(vs)-kept)
}

func plural(n int, unit string) string {
	if n == 1 {
		return "1 " + unit
	}
	return fmt.Sprintf("%d %ss", n, unit)
}

// calendar is where a snapshot falls, counted back from now in whole
// periods of the policy's calendar.
type calendar struct {
	hours, days, weeks, months, years int
	// year and month of the month (and year) the snapshot counts for: a
	// month starts on its first WeekStart, so the first days of a month
	// may still belong to the one before.
	year, month int
}

func (c calendar) delta(unit byte) int {
	switch unit {
	case 'h':
		return c.hours
	case 'd':
		return c.days
	case 'w':
		return c.weeks
	case 'm':
		return c.months
	default:
		return c.years
	}
}

// place counts in wall-clock hours of the policy's zone, so a day is always
// 24 of them whatever daylight saving does (as btrbk counts).
func (p Policy) place(t, now time.Time) calendar {
	loc := p.location()
	lt, ln := t.In(loc), now.In(loc)
	wall := func(x time.Time) time.Time {
		return time.Date(x.Year(), x.Month(), x.Day(), x.Hour(), 0, 0, 0, time.UTC)
	}
	var c calendar
	c.hours = int(wall(ln).Sub(wall(lt)) / time.Hour)
	sinceDayStart := lt.Hour() - p.DayStart
	sinceWeekStart := int(lt.Weekday()) - int(p.WeekStart)
	if sinceDayStart < 0 {
		sinceDayStart += 24
		sinceWeekStart--
	}
	if sinceWeekStart < 0 {
		sinceWeekStart += 7
	}
	c.days = floorDiv(c.hours+sinceDayStart, 24)
	c.weeks = floorDiv(c.days+sinceWeekStart, 7)
	c.year, c.month = lt.Year(), int(lt.Month())
	if lt.Day() <= sinceWeekStart {
		// This week started in the month before, so the month has not
		// started yet.
		c.month--
		if c.month == 0 {
			c.month, c.year = 12, c.year-1
		}
	}
	c.years = ln.Year() - c.year
	c.months = c.years*12 + int(ln.Month()) - c.month
	return c
}

func floorDiv(a, b int) int {
	q := a / b
	if a%b != 0 && (a < 0) != (b < 0) {
		q--
	}
	return q
}
