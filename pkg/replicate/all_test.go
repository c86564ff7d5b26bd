package replicate

import (
	"errors"
	"reflect"
	"testing"

	"github.com/hoctl/hoctl/pkg/exitcode"
)

func TestReplicationWavesShareNoHost(t *testing.T) {
	job := func(name, src, dst string) *Job {
		return &Job{Ends: Ends{Name: name, SourceHost: src, TargetHost: dst}}
	}
	jobs := []*Job{
		job("a", "zippy", "c1"), job("b", "zippy", "c2"), job("c", "c3", "fractal"),
		job("d", "c1", "c2"), job("e", "sunny", "chilly"),
	}
	var got [][]string
	for _, w := range Waves(jobs) {
		var names []string
		for _, j := range w {
			names = append(names, j.Ends.Name)
		}
		got = append(got, names)
	}
	want := [][]string{{"a", "c", "e"}, {"b"}, {"d"}}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("waves %v, want %v", got, want)
	}
	if d := DescribeWaves(Waves(jobs[:2])); d != "a (zippy → c1); then b (zippy → c2)" {
		t.Errorf("DescribeWaves: %q", d)
	}
}

// One exit code for many replications: theirs when the failures agree,
// 1 when they differ.
func TestOutcome(t *testing.T) {
	refused, unreachable := errors.New("refused"), errors.New("unreachable")
	code := func(err error) int {
		switch err {
		case nil:
			return exitcode.OK
		case refused:
			return exitcode.Refused
		case unreachable:
			return exitcode.Unreachable
		}
		return exitcode.Failed
	}
	for _, c := range []struct {
		errs           []error
		exit, failures int
	}{
		{[]error{nil, nil}, exitcode.OK, 0},
		{[]error{nil, refused, refused}, exitcode.Refused, 2},
		{[]error{unreachable, nil}, exitcode.Unreachable, 1},
		{[]error{refused, unreachable}, exitcode.Failed, 2},
	} {
		var jobs []*Job
		for _, err := range c.errs {
			jobs = append(jobs, &Job{Err: err})
		}
		if exit, failed := Outcome(jobs, code); exit != c.exit || failed != c.failures {
			t.Errorf("%v: exit %d, %d failed; want %d, %d", c.errs, exit, failed, c.exit, c.failures)
		}
	}
}
