package cli

import (
	"reflect"
	"testing"

	"github.com/hoctl/hoctl/pkg/replicate"
)

func TestReplicationWavesShareNoHost(t *testing.T) {
	job := func(name, src, dst string) *replicationJob {
		return &replicationJob{ends: replicate.Ends{Name: name, SourceHost: src, TargetHost: dst}}
	}
	jobs := []*replicationJob{
		job("a", "zippy", "c1"), job("b", "zippy", "c2"), job("c", "c3", "fractal"),
		job("d", "c1", "c2"), job("e", "sunny", "chilly"),
	}
	var got [][]string
	for _, w := range replicationWaves(jobs) {
		var names []string
		for _, j := range w {
			names = append(names, j.ends.Name)
		}
		got = append(got, names)
	}
	want := [][]string{{"a", "c", "e"}, {"b"}, {"d"}}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("waves %v, want %v", got, want)
	}
}
