package replicate

import (
	"slices"
	"strings"
	"testing"

	"github.com/hoctl/hoctl/pkg/inventory"
)

// Direct transport's ssh offers AES-GCM first: with AES instructions it
// costs the source and the target about half the CPU per byte of
// OpenSSH's default first choice, chacha20-poly1305 (docs/benchmarks.md),
// and it is what the relay's Go client negotiates. The offer is OpenSSH's
// whole default set, reordered, so a target that allows only some of them
// still agrees on one.
func TestDirectSSHPrefersAESGCM(t *testing.T) {
	inv, err := inventory.Parse("i.yaml", []byte(twoReplications))
	if err != nil {
		t.Fatal(err)
	}
	r := &Run{Inv: inv, Ends: Ends{SourceHost: "zippy", TargetHost: "c1", TargetDir: standby, Base: "services"}}
	direct, _ := strings.CutPrefix(r.directScript(nil), "set -o pipefail; ")
	stages, err := splitPipeline(direct)
	if err != nil {
		t.Fatalf("direct script %q: %v", direct, err)
	}
	ssh := stages[len(stages)-1]
	if ssh[0] != "ssh" {
		t.Fatalf("the last stage is %q, not ssh", ssh)
	}
	var offer []string
	for i := 1; i+1 < len(ssh); i++ {
		if v, ok := strings.CutPrefix(ssh[i+1], "Ciphers="); ssh[i] == "-o" && ok {
			offer = strings.Split(v, ",")
		}
	}
	if len(offer) == 0 || !strings.HasSuffix(offer[0], "-gcm@openssh.com") {
		t.Fatalf("direct's ssh offers %q first, want AES-GCM (argv %q)", offer, ssh)
	}
	openSSHDefault := []string{"chacha20-poly1305@openssh.com", "aes128-ctr", "aes192-ctr", "aes256-ctr", "aes128-gcm@openssh.com", "aes256-gcm@openssh.com"}
	got := slices.Sorted(slices.Values(offer))
	if want := slices.Sorted(slices.Values(openSSHDefault)); !slices.Equal(got, want) {
		t.Errorf("direct's ssh offers %q, want OpenSSH's default set %q reordered", offer, openSSHDefault)
	}
}

// The filter's lines about the bits it cleared reach the run's summary
// as warnings of the target dir, on either transport (the receive's
// stderr, relayed or through the source's ssh); nothing else the target
// prints does, and however many it prints, at most the check's own
// bound of lines.
func TestStreamWarningsReachTheSummary(t *testing.T) {
	line := StreamWarning + `cleared the setuid bit of "user-tool" (4755 -> 0755): the copy carries no privilege`
	got := streamWarnings("c1", "/persist/services-standby", "At snapshot services@x\n"+line+"\nsome other line\n")
	if got != "\nWARNING c1:/persist/services-standby: "+strings.TrimPrefix(line, StreamWarning) {
		t.Errorf("%q", got)
	}
	flood := strings.Repeat(line+"\n", 10000)
	if got := streamWarnings("c1", "/d", flood); strings.Count(got, "\n") != maxStripWarnings+1 {
		t.Errorf("%d lines from a flood", strings.Count(got, "\n"))
	}
	if got := streamWarnings("c1", "/d", "WARNING: cleared nothing\n"); got != "" {
		t.Errorf("%q", got)
	}
}
