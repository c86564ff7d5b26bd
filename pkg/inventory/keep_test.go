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

// An address with a user or a port in it is handed to SSH as a host name
// and cannot work: the message says which fields to use instead.
func TestAddressWithUserOrPortIsRefused(t *testing.T) {
	for addr, want := range map[string]string{
		"127.0.0.2:22":         `test.yaml:2:16: hosts.z.address: expected the host alone, got "127.0.0.2:22": write address: 127.0.0.2 and port: 22`,
		"root@host":            `hosts.z.address: expected the host alone, got "root@host": write address: host and user: root`,
		"root@127.0.0.9:2222":  `got "root@127.0.0.9:2222": write address: 127.0.0.9 and user: root and port: 2222`,
		"[fd00::1]:22":         `got "[fd00::1]:22": write address: fd00::1 and port: 22`,
		"[fd00::1]":            `an IPv6 address is written without brackets, and a port goes in port:`,
		"zippy.example.org:x1": `expected a host name, an IP address or "local", got "zippy.example.org:x1"`,
	} {
		_, err := parse(t, "hosts:\n  z: {address: \""+addr+"\"}\n")
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("address %s: error = %v\nwant it to contain %q", addr, err, want)
		}
	}
	for _, addr := range []string{"127.0.0.2", "fd00::1", "::1", "zippy", "zippy.example.org", "local"} {
		if _, err := parse(t, "hosts:\n  z: {address: \""+addr+"\"}\n"); err != nil {
			t.Errorf("address %s: %v", addr, err)
		}
	}
}

// A key given twice is one problem among the file's others, not the only
// one reported.
func TestDuplicateKeyIsReportedWithTheOtherProblems(t *testing.T) {
	_, err := parse(t, "hosts:\n  a: {address: x}\n  a: {address: y}\n  b: {address: z, port: 1, port: 2}\ngroups:\n  g: [zz]\n")
	want := []string{
		`test.yaml:3:3: hosts.a: key "a" is given twice here: first on line 2; a key may appear once in a mapping, so merge the two or rename one`,
		`test.yaml:4:28: hosts.b.port: key "port" is given twice here: first on line 4`,
		`test.yaml:6:7: groups.g.0: "zz" is not a host of this inventory`,
	}
	if err == nil {
		t.Fatal("accepted")
	}
	for _, w := range want {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error = %v\nwant it to contain %q", err, w)
		}
	}
}
