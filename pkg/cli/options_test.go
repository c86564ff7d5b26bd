package cli

import (
	"context"
	"testing"
	"time"

	"github.com/spf13/cobra"
)

// exec runs one command built with a runF on args, alone under a root.
func execOnly(t *testing.T, cmd *cobra.Command, args ...string) {
	t.Helper()
	root := &cobra.Command{Use: "x"}
	root.AddCommand(cmd)
	root.SetArgs(args)
	if err := root.Execute(); err != nil {
		t.Fatal(err)
	}
}

// The commands whose run functions hold an Invocation, not the Factory:
// their flags and the global ones arrive in their options, and the
// inventory comes through the Invocation.
func TestRunbookCommandsParseIntoOptions(t *testing.T) {
	h := newHarness(t)
	var fo *FailoverOptions
	execOnly(t, NewCmdFailover(h.f, func(o *FailoverOptions) error { fo = o; return nil }),
		"failover", "--to", "c1", "--service", "data", "--primary-down", "--accept-lag", "--dry-run")
	if fo.To != "c1" || fo.Service != "data" || !fo.PrimaryDown || !fo.AcceptLag || !fo.DryRun || fo.IO != h.f.IO {
		t.Errorf("failover: %+v", fo)
	}
	if inv, err := fo.Inventory(context.Background()); err != nil || inv.Host("c1") == nil {
		t.Errorf("failover's inventory: %v", err)
	}

	var do *DeployOptions
	execOnly(t, NewCmdDeploy(h.f, func(o *DeployOptions) error { do = o; return nil }),
		"deploy", "c1", "c2", "--parallel", "2", "--wait", "1m", "--limit", "c2", "--confirm-timeout", "30s", "--yes")
	if len(do.Targets) != 2 || do.Parallel != 2 || do.Wait != time.Minute || do.Limit != "c2" || do.ConfirmTimeout != 30*time.Second || !do.confirmTimeoutSet || !do.Yes || do.DryRun {
		t.Errorf("deploy: %+v", do)
	}

	var ro *ReplicateOptions
	execOnly(t, NewCmdReplicate(h.f, func(o *ReplicateOptions) error { ro = o; return nil }),
		"replicate", "zippy", "c1", "--full", "--transport", "direct")
	if ro.Src != "zippy" || ro.Dst != "c1" || !ro.Full || ro.Transport != "direct" {
		t.Errorf("replicate: %+v", ro)
	}

	var mo *MigrateJobsOptions
	execOnly(t, NewCmdMigrateJobs(h.f, func(o *MigrateJobsOptions) error { mo = o; return nil }),
		"migrate-jobs", "--dir", "d", "--from", "/a", "--to", "/b", "--plan", "--submit", "--allow-missing", "--wait", "5s")
	if mo.Dir != "d" || mo.From[0] != "/a" || mo.To[0] != "/b" || !mo.ShowPlan || !mo.Submit || !mo.AllowMissing || mo.Wait != 5*time.Second || mo.Engine == nil {
		t.Errorf("migrate-jobs: %+v", mo)
	}

	var so *ResumeOptions
	execOnly(t, NewCmdResume(h.f, func(o *ResumeOptions) error { so = o; return nil }),
		"resume", "last", "--force", "--all-hosts", "--limit", "c2")
	if so.RunID != "last" || !so.Force || !so.AllHosts || so.Limit != "c2" || so.DefaultInventory == nil {
		t.Errorf("resume: %+v", so)
	}
}
