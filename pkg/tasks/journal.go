package tasks

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/hoctl/hoctl/pkg/sshexec"
)

// Record is one line of a run's journal, and the same object is a live
// --json event (docs/json.md): Type, written as "event", says which fields
// matter.
type Record struct {
	Type string    `json:"event"` // plan, run_start, resume, step_start, check, action, undo, progress, step_end, run_end
	Time time.Time `json:"time,omitzero"`

	// plan (live only)
	Plan *Plan `json:"plan,omitempty"`

	// run_start / resume
	Run           string            `json:"run,omitempty"`
	Command       string            `json:"command,omitempty"`
	Name          string            `json:"name,omitempty"`
	Operator      string            `json:"operator,omitempty"`
	Workstation   string            `json:"workstation,omitempty"`
	PID           int               `json:"pid,omitempty"`
	ProcStart     string            `json:"proc_start,omitempty"` // boot id and start time of PID
	Retry         string            `json:"retry,omitempty"`      // what to do after a failure, where resume cannot
	Version       string            `json:"version,omitempty"`
	Inventory     string            `json:"inventory,omitempty"`
	InventoryHash string            `json:"inventory_hash,omitempty"`
	Kind          string            `json:"kind,omitempty"`
	Params        map[string]string `json:"params,omitempty"`
	Steps         []string          `json:"steps,omitempty"`
	FromStep      int               `json:"from_step,omitempty"`

	// step_* / check / action / undo
	Step     int      `json:"step,omitempty"` // 1-based
	Title    string   `json:"title,omitempty"`
	Hosts    []string `json:"hosts,omitempty"`
	Host     string   `json:"host,omitempty"`
	Phase    string   `json:"phase,omitempty"` // before, after
	Cmd      string   `json:"cmd,omitempty"`
	OK       *bool    `json:"ok,omitempty"`
	ExitCode *int     `json:"exit_code,omitempty"`
	Duration float64  `json:"duration_ms,omitempty"`
	Output   string   `json:"output,omitempty"`
	Attempt  int      `json:"attempt,omitempty"`

	// step_end / run_end
	Status string `json:"status,omitempty"` // ok, failed, refused, unverified, interrupted, not_confirmed
	Error  string `json:"error,omitempty"`
}

// UnmarshalJSON reads a record, also from journals written before the
// kind was named "event" (schema 0 called it "type").
func (r *Record) UnmarshalJSON(b []byte) error {
	type plain Record
	var x struct {
		plain
		Legacy string `json:"type"`
	}
	if err := json.Unmarshal(b, &x); err != nil {
		return err
	}
	*r = Record(x.plain)
	if r.Type == "" {
		r.Type = x.Legacy
	}
	return nil
}

// Step statuses and run results.
const (
	StatusOK           = "ok"
	StatusFailed       = "failed"
	StatusRefused      = "refused"
	StatusUnverified   = "unverified"
	StatusInterrupted  = "interrupted"
	StatusNotConfirmed = "not_confirmed"
	StatusRunning      = "running"
)

// StateDir is hoctl's XDG state directory.
func StateDir(getenv func(string) string) string {
	if d := getenv("XDG_STATE_HOME"); d != "" {
		return filepath.Join(d, "hoctl")
	}
	home := getenv("HOME")
	if home == "" {
		home, _ = os.UserHomeDir()
	}
	return filepath.Join(home, ".local", "state", "hoctl")
}

// Journal appends records to one run's JSON-lines file, syncing at step
// boundaries, so a crash or kill -9 leaves a journal that ends at the last
// completed step (or later). Secrets are replaced before anything is
// written.
type Journal struct {
	ID   string
	Path string

	mu      sync.Mutex
	f       *os.File
	secrets []string
}

// NewRunID returns a sortable run id: UTC time plus randomness.
func NewRunID(now time.Time) string {
	b := make([]byte, 3)
	_, _ = rand.Read(b)
	return now.UTC().Format("20060102T150405Z") + "-" + hex.EncodeToString(b)
}

// CreateJournal starts a new journal under dir/runs.
func CreateJournal(dir, id string, secrets []string) (*Journal, error) {
	return openJournal(filepath.Join(dir, "runs"), id, secrets, os.O_CREATE|os.O_EXCL|os.O_WRONLY|os.O_APPEND)
}

// ReopenJournal continues an existing journal (resume).
func ReopenJournal(dir, id string, secrets []string) (*Journal, error) {
	return openJournal(filepath.Join(dir, "runs"), id, secrets, os.O_WRONLY|os.O_APPEND)
}

func openJournal(runs, id string, secrets []string, flags int) (*Journal, error) {
	if err := os.MkdirAll(runs, 0o700); err != nil {
		return nil, err
	}
	p := filepath.Join(runs, id+".jsonl")
	f, err := os.OpenFile(p, flags, 0o600)
	if err != nil {
		return nil, fmt.Errorf("journal: %w", err)
	}
	return &Journal{ID: id, Path: p, f: f, secrets: nonEmpty(secrets)}, nil
}

func nonEmpty(ss []string) []string {
	var out []string
	for _, s := range ss {
		if s != "" {
			out = append(out, s)
		}
	}
	return out
}

// Redact replaces every secret value in s.
func Redact(s string, secrets []string) string {
	for _, v := range secrets {
		if v != "" {
			s = strings.ReplaceAll(s, v, "***")
		}
	}
	return s
}

// Write appends r and syncs it to disk.
func (j *Journal) Write(r Record) error {
	if j == nil {
		return nil
	}
	if r.Time.IsZero() {
		r.Time = time.Now().UTC()
	}
	r.Command = Redact(r.Command, j.secrets)
	r.Cmd = Redact(r.Cmd, j.secrets)
	// Redacted first: a cut through a secret would leave part of it.
	r.Output = clip(Redact(r.Output, j.secrets), MaxRecordOutput)
	r.Error = Redact(r.Error, j.secrets)
	for k, v := range r.Params {
		r.Params[k] = Redact(v, j.secrets)
	}
	b, err := json.Marshal(r)
	if err != nil {
		return err
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	if _, err := j.f.Write(append(b, '\n')); err != nil {
		return fmt.Errorf("journal: %w", err)
	}
	// Every record is written at once, so a killed hoctl leaves all of
	// them (the kernel keeps them); the file is synced at step boundaries
	// so that a machine crash loses at most the step under way. Syncing
	// every host's record made a 20-host runbook measurably slower.
	switch r.Type {
	case "run_start", "resume", "step_start", "step_end", "run_end":
		return j.f.Sync()
	}
	return nil
}

// Close closes the file.
func (j *Journal) Close() error {
	if j == nil {
		return nil
	}
	return j.f.Close()
}

// MaxRecordOutput bounds the output a journal record or JSON event
// carries; a shell step's streams are already bounded (OutputHead,
// OutputTail), this catches everything else.
const MaxRecordOutput = 2 * (OutputHead + OutputTail)

// clip keeps the head and, larger, the tail of long output (the last
// lines say what went wrong), with a marker saying how much was dropped.
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	head := n / 4
	dropped := len(s) - n
	return s[:head] + sshexec.TruncationMarker(int64(dropped)) + s[len(s)-(n-head):]
}

// ReadJournal reads a run's records. A torn last line (a crash mid-write)
// is ignored.
func ReadJournal(dir, id string) ([]Record, error) {
	if strings.ContainsAny(id, "/\\") || id == "" || strings.HasPrefix(id, ".") {
		return nil, fmt.Errorf("bad run id %q", id)
	}
	f, err := os.Open(filepath.Join(dir, "runs", id+".jsonl"))
	if err != nil {
		if os.IsNotExist(err) {
			return nil, &NoRunError{ID: id}
		}
		return nil, err
	}
	defer func() { _ = f.Close() }()
	var out []Record
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		var r Record
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			continue
		}
		out = append(out, r)
	}
	return out, sc.Err()
}

// NoRunError is an unknown run id.
type NoRunError struct{ ID string }

func (e *NoRunError) Error() string {
	return fmt.Sprintf("no run %q in the journal (see hoctl history)", e.ID)
}

// Summary describes one run, from its journal.
type Summary struct {
	ID            string            `json:"run"`
	Command       string            `json:"command"`
	Name          string            `json:"name,omitempty"`
	Operator      string            `json:"operator,omitempty"`
	Start         time.Time         `json:"start"`
	End           time.Time         `json:"end,omitzero"`
	Status        string            `json:"status"`
	FailedStep    int               `json:"failed_step,omitempty"`
	FailedTitle   string            `json:"failed_title,omitempty"`
	Error         string            `json:"error,omitempty"`
	Steps         []string          `json:"steps,omitempty"`
	Done          map[int]string    `json:"steps_done,omitempty"` // step (1-based): its status
	Kind          string            `json:"kind,omitempty"`
	Params        map[string]string `json:"params,omitempty"`
	InventoryPath string            `json:"inventory,omitempty"`
	InventoryHash string            `json:"inventory_hash,omitempty"`
	PID           int               `json:"pid,omitempty"`
	ProcStart     string            `json:"-"`
	Resumes       int               `json:"resumes,omitempty"`
	Retry         string            `json:"retry,omitempty"`

	// hostState is each host's last outcome per step: acted, verified,
	// failed, unverified, undone.
	hostState map[int]map[string]string
}

// Summarize folds a run's records into its state. A run without a
// run_end whose process is gone was interrupted (kill -9, a crash).
func Summarize(id string, recs []Record) *Summary {
	s := &Summary{ID: id, Status: StatusRunning, Done: map[int]string{}, hostState: map[int]map[string]string{}}
	setHost := func(step int, host, state string) {
		if s.hostState[step] == nil {
			s.hostState[step] = map[string]string{}
		}
		s.hostState[step][host] = state
	}
	for _, r := range recs {
		switch r.Type {
		case "run_start":
			s.Command, s.Name, s.Operator, s.Start = r.Command, r.Name, r.Operator, r.Time
			s.Steps, s.Kind, s.Params, s.Retry = r.Steps, r.Kind, r.Params, r.Retry
			s.InventoryPath, s.InventoryHash, s.PID, s.ProcStart = r.Inventory, r.InventoryHash, r.PID, r.ProcStart
		case "resume":
			s.Resumes++
			s.Status, s.End, s.FailedStep, s.FailedTitle, s.Error = StatusRunning, time.Time{}, 0, "", ""
			s.PID, s.ProcStart = r.PID, r.ProcStart
			if r.InventoryHash != "" {
				s.InventoryHash = r.InventoryHash
			}
		case "action":
			setHost(r.Step, r.Host, map[bool]string{true: "acted", false: "failed"}[r.OK != nil && *r.OK])
		case "check":
			if r.Phase == "after" {
				setHost(r.Step, r.Host, map[bool]string{true: "verified", false: "unverified"}[r.OK != nil && *r.OK])
			}
		case "undo":
			setHost(r.Step, r.Host, "undone")
		case "step_end":
			s.Done[r.Step] = r.Status
		case "run_end":
			s.Status, s.End, s.Error = r.Status, r.Time, r.Error
			if r.Step > 0 {
				s.FailedStep, s.FailedTitle = r.Step, r.Title
			}
		}
	}
	if s.Status == StatusRunning && !processAlive(s.PID, s.ProcStart) {
		s.Status = StatusInterrupted
		s.FailedStep = s.NextStep()
		if s.FailedStep > 0 && s.FailedStep <= len(s.Steps) {
			s.FailedTitle = s.Steps[s.FailedStep-1]
		}
	}
	return s
}

// HostsDone lists the hosts that finished step i (1-based) in this run:
// its action succeeded and, when the step has an after check
// (hasAfter), that check passed last. Resume skips them.
func (s *Summary) HostsDone(i int, hasAfter bool) map[string]bool {
	done := map[string]bool{}
	for h, st := range s.hostState[i] {
		if st == "verified" || st == "acted" && !hasAfter {
			done[h] = true
		}
	}
	return done
}

// NextStep is the first step not finished (1-based), or len(Steps)+1.
// A step that failed but was allowed to (continue_on_error) is finished.
func (s *Summary) NextStep() int {
	for i := 1; i <= len(s.Steps); i++ {
		st, ok := s.Done[i]
		if !ok || (st != StatusOK && st != "continued") {
			return i
		}
	}
	return len(s.Steps) + 1
}

// History lists every run, newest first.
func History(dir string) ([]*Summary, error) {
	runs, _, err := ListRuns(dir, RunFilter{})
	return runs, err
}

// RunFilter selects runs for ListRuns.
type RunFilter struct {
	Limit  int       // at most this many (0: all)
	Failed bool      // only runs that did not end ok (nor still run)
	Kind   string    // only runs of this kind (Summary.KindName)
	Since  time.Time // only runs started at or after this
}

// ListRuns lists the runs f selects, newest first, and whether more would
// have matched beyond f.Limit. It reads journals newest first and stops
// at the limit, skipping runs older than f.Since by their id alone, and
// decodes only the records a summary needs, so that it stays fast with
// thousands of runs.
func ListRuns(dir string, f RunFilter) ([]*Summary, bool, error) {
	ids, err := runIDs(dir)
	if err != nil {
		return nil, false, err
	}
	var out []*Summary
	more := false
	for i := len(ids) - 1; i >= 0; i-- {
		id := ids[i]
		if !f.Since.IsZero() {
			// Ids begin with the run's UTC start to the second.
			if t, err := time.Parse("20060102T150405Z", strings.SplitN(id, "-", 2)[0]); err == nil && t.Before(f.Since.Truncate(time.Second)) {
				break
			}
		}
		s, err := summarizeFile(dir, id)
		if err != nil {
			continue
		}
		if !f.Since.IsZero() && s.Start.Before(f.Since) ||
			f.Failed && (s.Status == StatusOK || s.Status == StatusRunning) ||
			f.Kind != "" && s.KindName() != f.Kind {
			continue
		}
		if f.Limit > 0 && len(out) == f.Limit {
			more = true
			break
		}
		out = append(out, s)
	}
	// Newest first, by start time: run IDs have whole seconds and a
	// random suffix, so two runs in one second would come out in any order.
	sort.SliceStable(out, func(i, j int) bool {
		if !out[i].Start.Equal(out[j].Start) {
			return out[i].Start.After(out[j].Start)
		}
		return out[i].ID > out[j].ID
	})
	return out, more, nil
}

// KindName is the run's kind as history names it: runbook, failover,
// deploy, replicate, migrate-jobs.
func (s *Summary) KindName() string {
	if s.Kind == KindFile {
		return "runbook"
	}
	return s.Kind
}

// summarizeFile is Summarize for a list: the per-host records (checks,
// actions, undos: most of a journal, with their output) are skipped
// without decoding. Records are written with their kind ("event") first.
func summarizeFile(dir, id string) (*Summary, error) {
	f, err := os.Open(filepath.Join(dir, "runs", id+".jsonl"))
	if err != nil {
		return nil, err
	}
	defer func() { _ = f.Close() }()
	var recs []Record
	r := bufio.NewReaderSize(f, 64<<10)
	for {
		line, err := r.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			// A long record: only per-host records get this long; skip it.
			for errors.Is(err, bufio.ErrBufferFull) {
				_, err = r.ReadSlice('\n')
			}
			continue
		}
		if len(line) > 0 && !perHostRecord(line) {
			var rec Record
			if json.Unmarshal(line, &rec) == nil {
				recs = append(recs, rec)
			}
		}
		if err != nil {
			break
		}
	}
	return Summarize(id, recs), nil
}

func perHostRecord(line []byte) bool {
	for _, t := range []string{`{"event":"check"`, `{"event":"action"`, `{"event":"undo"`, `{"type":"check"`, `{"type":"action"`, `{"type":"undo"`} {
		if bytes.HasPrefix(line, []byte(t)) {
			return true
		}
	}
	return false
}

// ResolveRunID turns what an operator typed into a run id: "last" is the
// newest run, a unique prefix is the run it starts, and text no id starts
// with is the one run whose id holds it (its random suffix). Text more
// than one run matches is an *AmbiguousRunError listing the candidates.
func ResolveRunID(dir, arg string) (string, error) {
	if strings.ContainsAny(arg, "/\\") || arg == "" || strings.HasPrefix(arg, ".") {
		return "", fmt.Errorf("bad run id %q", arg)
	}
	ids, err := runIDs(dir)
	if err != nil {
		return "", err
	}
	if arg == "last" {
		if len(ids) == 0 {
			return "", &NoRunError{ID: arg}
		}
		return newest(dir, ids), nil
	}
	// As git finds a commit: the whole id, else a prefix; and, since
	// what an operator copies is often the random suffix ("cab475"), any
	// other part of an id when no id starts with it.
	var found, inside []string
	for _, id := range ids {
		if id == arg {
			return id, nil
		}
		switch {
		case strings.HasPrefix(id, arg):
			found = append(found, id)
		case strings.Contains(id, arg):
			inside = append(inside, id)
		}
	}
	if len(found) == 0 {
		found = inside
	}
	switch len(found) {
	case 0:
		return "", &NoRunError{ID: arg}
	case 1:
		return found[0], nil
	}
	return "", &AmbiguousRunError{Prefix: arg, Candidates: found}
}

// AmbiguousRunError is a part of a run id that more than one run matches.
type AmbiguousRunError struct {
	Prefix     string
	Candidates []string
}

func (e *AmbiguousRunError) Error() string {
	c := e.Candidates
	more := ""
	if len(c) > 10 {
		c, more = c[len(c)-10:], fmt.Sprintf(" (and %d more)", len(e.Candidates)-10)
	}
	return fmt.Sprintf("run id %q is ambiguous: %s%s", e.Prefix, strings.Join(c, ", "), more)
}

// runIDs lists the journaled run ids, sorted.
func runIDs(dir string) ([]string, error) {
	entries, err := os.ReadDir(filepath.Join(dir, "runs"))
	if os.IsNotExist(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var ids []string
	for _, e := range entries {
		if id, ok := strings.CutSuffix(e.Name(), ".jsonl"); ok {
			ids = append(ids, id)
		}
	}
	sort.Strings(ids)
	return ids, nil
}

// newest is the id of the run started last. Ids begin with their start
// time to the second, so only runs of the newest second need reading.
func newest(dir string, ids []string) string {
	last := ids[len(ids)-1]
	sec, _, _ := strings.Cut(last, "-")
	best, bestStart := last, time.Time{}
	for i := len(ids) - 1; i >= 0 && strings.HasPrefix(ids[i], sec+"-"); i-- {
		recs, err := ReadJournal(dir, ids[i])
		if err != nil || len(recs) == 0 {
			continue
		}
		if st := recs[0].Time; st.After(bestStart) {
			best, bestStart = ids[i], st
		}
	}
	return best
}
