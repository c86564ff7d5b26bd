package cli

import (
	"time"

	nomadapi "github.com/hashicorp/nomad/api"

	"github.com/hoctl/hoctl/pkg/tasks"
)

// The JSON events the commands print (docs/json.md), one type per kind:
// a type's EventKind is its event name, and iostreams.Emit writes "schema" and
// "event" before its fields. A run's events are tasks.Record, the
// journal's type. TestJSONDocMatchesEventTypes holds docs/json.md to
// these types.

// ErrorEvent is the last event of a --json invocation that failed: the
// same exit code, and the error.
type ErrorEvent struct {
	ExitCode int    `json:"exit_code"`
	Error    string `json:"error"`
}

func (ErrorEvent) EventKind() string { return "error" }

// versionEvent is `version`'s one event; its fields in the order a
// map of them had.
type versionEvent struct {
	Commit  string `json:"commit"`
	Date    string `json:"date"`
	Go      string `json:"go"`
	Version string `json:"version"`
}

func (versionEvent) EventKind() string { return "version" }

// hostRow is one host of `hosts`.
type hostRow struct {
	Name    string   `json:"host"`
	Address string   `json:"address"`
	Roles   []string `json:"roles"`
	Groups  []string `json:"groups"`
	Managed bool     `json:"managed"`
}

func (hostRow) EventKind() string { return "host" }

type sshValue struct {
	Value  string `json:"value"`
	Origin string `json:"origin"`
}

// hostSSH is one host's effective connection, `hosts --ssh`.
type hostSSH struct {
	Host     string              `json:"host"`
	Local    bool                `json:"local"`
	Order    []string            `json:"-"`
	Settings map[string]sshValue `json:"settings"`
}

func (hostSSH) EventKind() string { return "host_ssh" }

// Kind of ping's result (PingResult, in ping.go).
func (PingResult) EventKind() string { return "ping" }

// RunResult is one host's outcome of `run`.
type RunResult struct {
	Host       string  `json:"host"`
	ExitCode   int     `json:"exit_code"`
	Signal     string  `json:"signal,omitempty"`
	Stdout     string  `json:"stdout"`
	Stderr     string  `json:"stderr"`
	DurationMS float64 `json:"duration_ms"`
	Error      string  `json:"error,omitempty"`
	Reason     string  `json:"reason,omitempty"`

	err error
}

func (RunResult) EventKind() string { return "host_result" }

// runPlanEvent is `run --dry-run`'s one event.
type runPlanEvent struct {
	Hosts    []string `json:"hosts"`
	Cmd      string   `json:"cmd"`
	Parallel int      `json:"parallel"`
	// StdinBytes is the size of the standard input every host would read.
	StdinBytes int `json:"stdin_bytes,omitempty"`
}

func (runPlanEvent) EventKind() string { return "run_plan" }

// statusCheckEvent is one check of `status`.
type statusCheckEvent struct {
	Area   string `json:"area"`
	Name   string `json:"name"`
	Level  string `json:"level"`
	Detail string `json:"detail"`
	Hint   string `json:"hint"`
}

func (statusCheckEvent) EventKind() string { return "status_check" }

// statusSummaryEvent is the last event of `status`.
type statusSummaryEvent struct {
	Level      string `json:"level"`
	Checks     int    `json:"checks"`
	Problems   int    `json:"problems"`
	DurationMS int64  `json:"duration_ms"`
}

func (statusSummaryEvent) EventKind() string { return "status_summary" }

// jobFileEvent is one job file of `migrate-jobs`.
type jobFileEvent struct {
	File     string   `json:"file"`
	Rewrites int      `json:"rewrites"`
	Mentions int      `json:"mentions"`
	Diff     string   `json:"diff"`
	Reports  []string `json:"reports"`
	Error    string   `json:"error,omitempty"`
}

func (jobFileEvent) EventKind() string { return "job_file" }

// jobsSummaryEvent is the totals of `migrate-jobs`.
type jobsSummaryEvent struct {
	Files       int `json:"files"`
	Changed     int `json:"changed"`
	Rewrites    int `json:"rewrites"`
	Reports     int `json:"reports"`
	ParseErrors int `json:"parse_errors"`
}

func (jobsSummaryEvent) EventKind() string { return "jobs_summary" }

// jobPlanEvent is Nomad's plan of one changed job, `migrate-jobs --plan`.
type jobPlanEvent struct {
	File           string            `json:"file"`
	Job            string            `json:"job"`
	Diff           *nomadapi.JobDiff `json:"diff"`
	JobModifyIndex uint64            `json:"job_modify_index"`
}

func (jobPlanEvent) EventKind() string { return "job_plan" }

// checkProblem is one problem `check` found.
type checkProblem struct {
	File   string `json:"file"`
	Line   int    `json:"line,omitempty"`
	Column int    `json:"column,omitempty"`
	Field  string `json:"field,omitempty"`
	Msg    string `json:"message"`
}

func (checkProblem) EventKind() string { return "problem" }

// checkSummary is the totals of `check`.
type checkSummary struct {
	OK       bool     `json:"ok"`
	Problems int      `json:"problems"`
	Files    []string `json:"files"`
	Hosts    int      `json:"hosts"`
	Runbooks int      `json:"runbooks"`
	Steps    int      `json:"steps"`
	Skipped  []string `json:"skipped,omitempty"`
	// Warnings are what runbook plan warns about too (a value pasted
	// into a command unquoted): said, not counted as problems.
	Warnings []string `json:"warnings,omitempty"`
}

func (checkSummary) EventKind() string { return "check_summary" }

// SnapshotRow is one snapshot of `snapshots`.
type SnapshotRow struct {
	Replication  string    `json:"replication"`
	Host         string    `json:"host"`
	Role         string    `json:"role"` // source or target
	Dir          string    `json:"dir"`
	Name         string    `json:"name"`
	UUID         string    `json:"uuid"`
	ReceivedUUID string    `json:"received_uuid,omitempty"`
	ParentUUID   string    `json:"parent_uuid,omitempty"`
	Created      time.Time `json:"created,omitzero"`
	ReadOnly     bool      `json:"readonly"`
	Common       bool      `json:"common"`
	NextParent   bool      `json:"next_parent"`
	PeerKnown    bool      `json:"peer_known"`
	// Kept and Why are the retention policy's verdict now: which rules
	// keep the snapshot, or that the next prune removes it. Writable
	// entries are not snapshots retention decides on.
	Kept bool   `json:"kept"`
	Why  string `json:"why,omitempty"`
}

func (SnapshotRow) EventKind() string { return "snapshot" }

// replicationResult is the outcome of one replication when `replicate`
// runs them all.
type replicationResult struct {
	Name    string  `json:"name"`
	Source  string  `json:"source"`
	Target  string  `json:"target"`
	OK      bool    `json:"ok"`
	Code    int     `json:"exit_code"`
	Summary string  `json:"summary,omitempty"`
	Error   string  `json:"error,omitempty"`
	Seconds float64 `json:"seconds"`
}

func (replicationResult) EventKind() string { return "replication" }

// runEntry is one run of `history`'s list.
type runEntry struct {
	*tasks.Summary
}

func (runEntry) EventKind() string { return "run" }
