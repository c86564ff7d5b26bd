package replicate

import (
	"strings"
	"testing"

	"github.com/hoctl/hoctl/pkg/inventory"
	"github.com/hoctl/hoctl/pkg/sshexec"
)

// The receive an unrestricted key's shell runs goes through hoctl's
// target filter like every other op there: the stream check and the
// dedicated-dir check are the filter's, and a plain `btrfs receive -C DIR`
// in the target's shell would skip both (a compromised source could then
// send a snapshot of any subvolume outside DIR). Relayed and direct, with
// and without zstd; a restricted key's filter gets the same line and
// treats it as the checked receive.
func TestReceiveGoesThroughTheFilter(t *testing.T) {
	inv, err := inventory.Parse("i.yaml", []byte(twoReplications))
	if err != nil {
		t.Fatal(err)
	}
	for _, compress := range []string{"", "zstd"} {
		r := &Run{Inv: inv, Ends: Ends{SourceHost: "zippy", TargetHost: "c1", TargetDir: standby, Base: "services", Compress: compress}}
		direct, ok := strings.CutPrefix(r.directScript(nil), "set -o pipefail; ")
		if !ok {
			t.Fatalf("direct script %q", r.directScript(nil))
		}
		stages, err := splitPipeline(direct)
		if err != nil {
			t.Fatalf("direct script %q: %v", direct, err)
		}
		ssh := stages[len(stages)-1]
		for how, line := range map[string]string{"relayed": r.receiverLine(nil), "direct": ssh[len(ssh)-1]} {
			argv, err := splitPipeline(line)
			if err != nil || len(argv) != 1 || len(argv[0]) != 5 || argv[0][1] != "hoctl" || argv[0][2] != "target-filter" || argv[0][3] != standby || argv[0][4] != "services" {
				t.Errorf("%s %q: the target's shell runs %q, not hoctl target-filter %s services", how, compress, line, standby)
				continue
			}
			inner, ok := strings.CutPrefix(argv[0][0], "SSH_ORIGINAL_COMMAND=")
			if !ok {
				t.Errorf("%s %q: %q sets no SSH_ORIGINAL_COMMAND", how, compress, line)
				continue
			}
			want := sshexec.QuoteArgv(ReceiveArgv(standby))
			if compress != "" {
				want = sshexec.QuoteArgv(DecompressArgv) + " | " + want
			}
			if inner != want {
				t.Errorf("%s %q: the filter is asked %q, want %q", how, compress, inner, want)
			}
			for _, f := range []Filter{{Dir: standby}, {Dir: standby, Base: "services"}} {
				for _, l := range []string{inner, line} {
					req, err := f.Allow(l)
					if err != nil || req.stream == nil {
						t.Errorf("%s %q: the filter %+v on %q: %+v %v, want the checked receive", how, compress, f, l, req, err)
					}
				}
			}
			// The line's base is the filter's own, or refused.
			if req, err := (Filter{Dir: standby, Base: "db"}).Allow(line); err == nil {
				t.Errorf("%s %q: a filter for db allows %q: %+v", how, compress, line, req)
			}
		}
	}
}
