package replicate

import (
	"context"
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/hoctl/hoctl/pkg/exitcode"
	"github.com/hoctl/hoctl/pkg/sshexec"
	"github.com/hoctl/hoctl/pkg/sshexec/sshexectest"
)

// Output as btrfs-progs prints it for /persist/services with two nested
// subvolumes and, in the second case, the snapshot dir inside it.
func TestNestedLeavesOutExcludedAndOwnSnapshots(t *testing.T) {
	list := "services\n--\nID 257 gen 7 top level 256 path services/immich/cache\nID 259 gen 7 top level 256 path services/docker\n" +
		"ID 260 gen 8 top level 256 path services/.snap/services@20261126T090000Z\nID 261 gen 8 top level 256 path services/.snap/other@20261126T090000Z\n"
	e := Ends{Name: "services", Base: "services", Subvolume: "/persist/services", SourceDir: "/persist/services/.snap", TargetHost: "c1"}
	c1, f := answering(list, "", 0)
	got, err := Nested(context.Background(), f, e)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{".snap/other@20261126T090000Z", "docker", "immich/cache"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("nested %v, want %v", got, want)
	}
	if !strings.Contains(lastLine(c1), "btrfs subvolume list -o /persist/services") {
		t.Fatalf("ran %q", lastLine(c1))
	}
	e.ExcludeNested = []string{"immich", "docker", ".snap/other@20261126T090000Z"}
	if got, _ := Nested(context.Background(), f, e); len(got) != 0 {
		t.Fatalf("nested %v with all excluded", got)
	}
	msg := NestedError("zippy", e, []string{"docker"}).Error()
	for _, want := range []string{"zippy: /persist/services holds nested subvolumes", "empty directories): docker", "replication.services.source.exclude_nested"} {
		if !strings.Contains(msg, want) {
			t.Errorf("%q lacks %q", msg, want)
		}
	}
}

func TestNestedFailsWithTheHostsReason(t *testing.T) {
	_, f := answering("", "ERROR: can't perform the search: Operation not permitted\n", 1)
	_, err := Nested(context.Background(), f, Ends{Subvolume: "/persist/services"})
	if err == nil || !strings.Contains(err.Error(), "c1: listing subvolumes nested in /persist/services: ERROR: can't perform the search") {
		t.Fatalf("err = %v", err)
	}
}

// A host lost while its subvolumes are listed stays a *ConnError through
// the message that names the step, so the run exits 4 (unreachable), not
// 1: before, the reason was flattened to text with %s.
func TestNestedKeepsAnUnreachableHost(t *testing.T) {
	lost := &sshexec.ConnError{Host: "zippy", Addr: "127.0.0.1:22", Reason: sshexec.ReasonTimeout, Err: errors.New("i/o timeout")}
	run := &sshexectest.Func{Host: "zippy", Fn: func(context.Context, sshexec.Cmd) (*sshexec.Result, error) {
		return nil, lost
	}}
	_, err := Nested(context.Background(), run, Ends{SourceHost: "zippy", Subvolume: "/persist/services"})
	var ce *sshexec.ConnError
	if !errors.As(err, &ce) || exitcode.Of(err) != exitcode.Unreachable {
		t.Fatalf("err = %v (exit %d), want the *ConnError (exit 4)", err, exitcode.Of(err))
	}
	if !strings.Contains(err.Error(), "listing subvolumes nested in /persist/services") {
		t.Fatalf("err = %v", err)
	}
}
