package inventory

import (
	"strings"
	"testing"
	"time"

	"github.com/hoctl/hoctl/pkg/retention"
)

const keepHosts = "hosts:\n  z: {address: x}\n  c: {address: y}\nreplication:\n  s:\n    source: {host: z, subvolume: /persist/s}\n    target: {host: c, dir: /persist/t}\n"

func TestKeepCalendarPolicy(t *testing.T) {
	inv, err := parse(t, keepHosts+"    keep:\n      source: 5\n      target: {min: 3, hourly: 24, daily: 7, weekly: 4, monthly: all, timezone: Europe/Berlin, week_start: monday, day_start: 6}\n")
	if err != nil {
		t.Fatal(err)
	}
	k := inv.Replication["s"].Keep
	if k.Source.Count != 5 || k.Source.IsCalendar() {
		t.Fatalf("source %+v", k.Source)
	}
	p := k.Target
	if !p.IsCalendar() || p.Min.Newest != 3 || p.Hourly != 24 || p.Daily != 7 || p.Weekly != 4 || p.Monthly != retention.All ||
		p.Location == nil || p.Location.String() != "Europe/Berlin" || p.WeekStart != time.Monday || p.DayStart != 6 {
		t.Fatalf("target %+v", p)
	}
	inv, err = parse(t, keepHosts+"    keep: {target: {min: 2d, daily: 7}}\n")
	if err != nil {
		t.Fatal(err)
	}
	if k := inv.Replication["s"].Keep; k.Source.Count != DefaultKeepSource || k.Target.Min.Unit != 'd' || k.Target.Min.N != 2 {
		t.Fatalf("keep %+v", k)
	}
}

func TestKeepErrors(t *testing.T) {
	for name, c := range map[string]struct{ keep, want string }{
		"zero":     {"{source: 0}", "test.yaml:8:20: replication.s.keep.source: expected at least 1 snapshot kept, got 0"},
		"text":     {"{target: lots}", "replication.s.keep.target: expected a number of snapshots (48) or a policy like"},
		"unknown":  {"{target: {daily: 7, dayly: 3}}", `test.yaml:8:38: replication.s.keep.target.dayly: unknown field "dayly"; expected one of min, hourly`},
		"nothing":  {"{target: {timezone: UTC}}", "replication.s.keep.target: the policy keeps nothing"},
		"bad zone": {"{target: {daily: 1, timezone: Mars/Olympus}}", "replication.s.keep.target.timezone: expected a time zone name"},
		// "Local" is the machine's own zone, which the docs promise is never used.
		"local zone":  {"{target: {daily: 1, timezone: Local}}", "replication.s.keep.target.timezone: expected a time zone name"},
		"bad weekday": {"{target: {weekly: 1, week_start: funday}}", "keep.target.week_start: expected a day of the week"},
		"bad hour":    {"{target: {daily: 1, day_start: 24}}", "keep.target.day_start: expected the hour a day starts, 0 to 23, got 24"},
		"bad min":     {"{target: {min: soon}}", `keep.target.min: expected a number of snapshots, latest, all, or a period`},
		"negative":    {"{target: {daily: -3}}", "keep.target.daily: expected a number of days back, or all; got -3"},
		"float":       {"{target: {hourly: 1.5}}", "keep.target.hourly: expected a number of hours back"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := parse(t, keepHosts+"    keep: "+c.keep+"\n")
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error = %v\nwant it to contain %q", err, c.want)
			}
		})
	}
}

// An address is shown in tables and errors: control characters (an
// escape sequence) are refused at load, as spaces are.
func TestAddressWithControlCharactersIsRefused(t *testing.T) {
	_, err := parse(t, "hosts:\n  z: {address: \"10.0.0.1\\e]0;x\\a\"}\n")
	if err == nil || !strings.Contains(err.Error(), "hosts.z.address: expected a host name") {
		t.Fatalf("error = %v", err)
	}
}

// A bad value is said once, not again as "the policy keeps nothing".
func TestKeepBadValueIsOneProblem(t *testing.T) {
	_, err := parse(t, keepHosts+"    keep: {target: {daily: lots}}\n")
	if err == nil || !strings.Contains(err.Error(), "keep.target.daily") || strings.Contains(err.Error(), "keeps nothing") {
		t.Fatalf("error = %v", err)
	}
}
