package retention

import (
	"reflect"
	"strings"
	"testing"
	"time"
	_ "time/tzdata" // the DST case must not depend on the machine's zoneinfo
)

func at(s string) time.Time {
	t, err := time.Parse("2006-01-02T15:04", s)
	if err != nil {
		panic(err)
	}
	return t
}

// series makes a snapshot every step from first to last inclusive, named by
// their UTC time.
func series(first, last string, step time.Duration) []Item {
	var out []Item
	for t := at(first); !t.After(at(last)); t = t.Add(step) {
		out = append(out, Item{Name: t.Format("2006-01-02T15:04"), Time: t})
	}
	return out
}

func kept(vs []Verdict) []string {
	var out []string
	for _, v := range vs {
		if v.Keep {
			out = append(out, v.Name)
		}
	}
	return out
}

func TestCountKeepsNewestAndProtected(t *testing.T) {
	items := series("2026-11-01T00:00", "2026-11-01T04:00", time.Hour)
	vs := Policy{Count: 2}.Apply(items, at("2026-11-01T05:00"), map[string]string{"2026-11-01T00:00": "newest common snapshot"})
	if got, want := kept(vs), []string{"2026-11-01T00:00", "2026-11-01T03:00", "2026-11-01T04:00"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("kept %v, want %v", got, want)
	}
	if got := Pruned(vs); !reflect.DeepEqual(got, []string{"2026-11-01T01:00", "2026-11-01T02:00"}) {
		t.Fatalf("pruned %v", got)
	}
	if vs[0].Reason() != "newest common snapshot" || !strings.Contains(vs[1].Reason(), "no rule") {
		t.Fatalf("reasons %q %q", vs[0].Reason(), vs[1].Reason())
	}
}

// "7d" keeps the first snapshot of today and of each of the 7 days before:
// btrbk compares "days ago" with <=.
func TestDailyFirstOfEachDay(t *testing.T) {
	items := series("2026-11-20T00:00", "2026-11-30T12:00", time.Hour)
	vs := Policy{Daily: 7}.Apply(items, at("2026-11-30T12:30"), nil)
	want := []string{"2026-11-23T00:00", "2026-11-24T00:00", "2026-11-25T00:00", "2026-11-26T00:00",
		"2026-11-27T00:00", "2026-11-28T00:00", "2026-11-29T00:00", "2026-11-30T00:00"}
	if got := kept(vs); !reflect.DeepEqual(got, want) {
		t.Fatalf("kept %v,\nwant %v", got, want)
	}
	for _, v := range vs {
		if v.Name == "2026-11-23T00:00" && v.Reason() != "daily: first of the day, 7 days ago" {
			t.Fatalf("reason %q", v.Reason())
		}
	}
}

// Days start at DayStart: with 6, the first snapshot at or after 06:00 is
// the day's, and the hours before belong to the day before.
func TestDayStartHour(t *testing.T) {
	items := series("2026-11-28T00:00", "2026-11-30T12:00", 2*time.Hour)
	vs := Policy{Daily: 1, DayStart: 6}.Apply(items, at("2026-11-30T12:00"), nil)
	want := []string{"2026-11-29T06:00", "2026-11-30T06:00"}
	if got := kept(vs); !reflect.DeepEqual(got, want) {
		t.Fatalf("kept %v, want %v", got, want)
	}
}

func TestHourlyBoundaries(t *testing.T) {
	items := series("2026-11-30T00:00", "2026-11-30T05:50", 10*time.Minute)
	vs := Policy{Hourly: 2}.Apply(items, at("2026-11-30T05:55"), nil)
	want := []string{"2026-11-30T03:00", "2026-11-30T04:00", "2026-11-30T05:00"}
	if got := kept(vs); !reflect.DeepEqual(got, want) {
		t.Fatalf("kept %v, want %v", got, want)
	}
}

// The weekly is the first daily of the week; a week with no snapshot on its
// first day keeps its first one. 2026-11-30 is a Monday.
func TestWeeklyFirstDailyOfWeek(t *testing.T) {
	var items []Item
	for _, d := range []string{"2026-11-03T12:00", "2026-11-04T12:00", "2026-11-09T12:00", "2026-11-12T12:00",
		"2026-11-17T12:00", "2026-11-23T12:00", "2026-11-26T12:00", "2026-11-30T12:00"} {
		items = append(items, Item{Name: d, Time: at(d)})
	}
	vs := Policy{Weekly: 3, WeekStart: time.Monday}.Apply(items, at("2026-11-30T13:00"), nil)
	// Weeks from Monday: 11-02 (Tue 03 first), 11-09, 11-16 (Tue 17),
	// 11-23, 11-30; 3 weeks back from the week of 11-30 is the week of 11-09.
	want := []string{"2026-11-09T12:00", "2026-11-17T12:00", "2026-11-23T12:00", "2026-11-30T12:00"}
	if got := kept(vs); !reflect.DeepEqual(got, want) {
		t.Fatalf("kept %v, want %v", got, want)
	}
	// btrbk's default week starts on Sunday: 11-29 starts the last week,
	// so 11-30 is its first snapshot, and 11-23 (Mon) follows 11-22 (Sun).
	vs = Policy{Weekly: 1}.Apply(items, at("2026-11-30T13:00"), nil)
	if got, want := kept(vs), []string{"2026-11-23T12:00", "2026-11-30T12:00"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("sunday weeks: kept %v, want %v", got, want)
	}
}

// A month starts on its first WeekStart: December 2026 starts on Sunday the
// 6th, so the 1st to the 5th count for November.
func TestMonthStartsOnFirstWeekStart(t *testing.T) {
	items := series("2026-11-20T12:00", "2026-12-20T12:00", 24*time.Hour)
	vs := Policy{Monthly: 1}.Apply(items, at("2026-12-20T13:00"), nil)
	if got, want := kept(vs), []string{"2026-11-20T12:00", "2026-12-06T12:00"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("kept %v, want %v", got, want)
	}
	for _, v := range vs {
		if v.Name == "2026-11-20T12:00" && v.Reason() != "monthly: first weekly of 2026-11, 1 month ago" {
			t.Fatalf("reason %q", v.Reason())
		}
	}
}

func TestYearly(t *testing.T) {
	var items []Item
	for _, d := range []string{"2023-06-07T00:00", "2024-01-03T00:00", "2024-03-06T00:00", "2025-02-05T00:00", "2026-01-07T00:00"} {
		items = append(items, Item{Name: d, Time: at(d)})
	}
	vs := Policy{Yearly: 2}.Apply(items, at("2026-11-30T00:00"), nil)
	// 2024-01-03 (a Wednesday) comes before January's first Sunday, so it
	// counts for December 2023 and so for 2023, whose first is 2023-06-07
	// (3 years back: pruned); 2024's first monthly is then 03-06.
	want := []string{"2024-03-06T00:00", "2025-02-05T00:00", "2026-01-07T00:00"}
	if got := kept(vs); !reflect.DeepEqual(got, want) {
		t.Fatalf("kept %v, want %v", got, want)
	}
}

// The calendar is the policy's zone, not the machine's: 23:30 and 00:30 UTC
// are two days in UTC and one evening in New York.
func TestTimeZone(t *testing.T) {
	items := []Item{{"a", at("2026-11-29T23:30")}, {"b", at("2026-11-30T00:30")}}
	now := at("2026-11-30T01:00")
	if got := kept(Policy{Daily: 3}.Apply(items, now, nil)); !reflect.DeepEqual(got, []string{"a", "b"}) {
		t.Fatalf("UTC: kept %v", got)
	}
	ny, err := time.LoadLocation("America/New_York")
	if err != nil {
		t.Fatal(err)
	}
	if got := kept(Policy{Daily: 3, Location: ny}.Apply(items, now, nil)); !reflect.DeepEqual(got, []string{"a"}) {
		t.Fatalf("New York: kept %v", got)
	}
}

// Across a DST change a day is still 24 wall-clock hours: the first
// snapshot after local midnight of each day is kept, also on the 23-hour
// and the 25-hour day.
func TestDaylightSaving(t *testing.T) {
	berlin, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		t.Fatal(err)
	}
	// Hourly UTC snapshots over 2026-03-28..30 (DST starts 03-29) and
	// 2026-10-24..26 (DST ends 10-25).
	for _, c := range []struct{ first, last, now string }{
		{"2026-03-27T20:00", "2026-03-30T20:00", "2026-03-30T21:00"},
		{"2026-10-23T20:00", "2026-10-26T20:00", "2026-10-26T21:00"},
	} {
		vs := Policy{Daily: All, Location: berlin}.Apply(series(c.first, c.last, time.Hour), at(c.now), nil)
		for _, name := range kept(vs) {
			local := at(name).In(berlin)
			if local.Hour() != 0 && name != c.first {
				t.Errorf("%s: kept %s (%s local), want only the first after local midnight", c.first, name, local)
			}
		}
		if n := len(kept(vs)); n != 4 {
			t.Errorf("%s: kept %d, want 4 days: %v", c.first, n, kept(vs))
		}
	}
}

func TestMin(t *testing.T) {
	items := series("2026-11-25T00:00", "2026-11-30T00:00", 12*time.Hour)
	now := at("2026-11-30T06:00")
	if got := kept(Policy{Min: Min{Newest: 3}}.Apply(items, now, nil)); len(got) != 3 || got[2] != "2026-11-30T00:00" {
		t.Fatalf("newest 3: %v", got)
	}
	got := kept(Policy{Min: Min{N: 2, Unit: 'd'}}.Apply(items, now, nil))
	if want := []string{"2026-11-28T00:00", "2026-11-28T12:00", "2026-11-29T00:00", "2026-11-29T12:00", "2026-11-30T00:00"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("2d: kept %v, want %v", got, want)
	}
	if got := kept(Policy{Min: Min{All: true}}.Apply(items, now, nil)); len(got) != len(items) {
		t.Fatalf("all: %v", got)
	}
}

func TestFutureIsKept(t *testing.T) {
	items := []Item{{"old", at("2026-01-01T00:00")}, {"ahead", at("2026-12-01T00:00")}}
	vs := Policy{Daily: 1}.Apply(items, at("2026-11-30T00:00"), nil)
	if got := kept(vs); !reflect.DeepEqual(got, []string{"ahead"}) || vs[1].Reason() != "dated in the future" {
		t.Fatalf("kept %v (%q)", got, vs[1].Reason())
	}
}

func TestParseMin(t *testing.T) {
	for in, want := range map[string]Min{"3": {Newest: 3}, "latest": {Newest: 1}, "all": {All: true}, "6h": {N: 6, Unit: 'h'}, "2d": {N: 2, Unit: 'd'}, "no": {}} {
		got, err := ParseMin(in)
		if err != nil || got != want {
			t.Errorf("ParseMin(%q) = %+v, %v; want %+v", in, got, err, want)
		}
	}
	for _, bad := range []string{"-1", "3x", "d", "h6", "1.5d"} {
		if _, err := ParseMin(bad); err == nil {
			t.Errorf("ParseMin(%q): no error", bad)
		}
	}
}

func TestString(t *testing.T) {
	p := Policy{Min: Min{Newest: 3}, Hourly: 24, Daily: 7, Weekly: 4, Monthly: All}
	if got := p.String(); got != "min 3, 24 hourly, 7 daily, 4 weekly, all monthly" {
		t.Fatal(got)
	}
	if got := (Policy{Count: 12}).String(); got != "newest 12" {
		t.Fatal(got)
	}
}

func TestSummary(t *testing.T) {
	items := series("2026-11-28T00:00", "2026-11-30T00:00", 12*time.Hour)
	vs := Policy{Min: Min{Newest: 1}, Daily: 1}.Apply(items, at("2026-11-30T01:00"), map[string]string{"2026-11-28T12:00": "newest common snapshot: parent"})
	if got, want := Summary(vs), "keeps 3 of 5 (1 newest common snapshot, 2 daily, 1 min), prunes 2"; got != want {
		t.Fatalf("got %q, want %q", got, want)
	}
}
