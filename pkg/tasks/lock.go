package tasks

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"syscall"
	"time"

	"github.com/hoctl/hoctl/pkg/format"
)

// LocalLock is an flock on $XDG_STATE_HOME/hoctl/locks/<scope>.lock held
// for a run. The kernel drops it when the process dies, so a kill -9 never
// leaves a stale lock behind.
type LocalLock struct {
	f *os.File
}

// LockHolder is who holds a lock, as written into the lock file.
type LockHolder struct {
	PID   int       `json:"pid"`
	Run   string    `json:"run"`
	Start time.Time `json:"start"`
	User  string    `json:"user,omitempty"`
}

// LockedError is a scope another run holds.
type LockedError struct {
	Scope  string
	Holder LockHolder
}

func (e *LockedError) Error() string {
	h := e.Holder
	if h.PID == 0 {
		return fmt.Sprintf("lock %q is held by another hoctl run", e.Scope)
	}
	return fmt.Sprintf("lock %q is held by pid %d (run %s, started %s by %s); wait for it or check `hoctl history %s`",
		e.Scope, h.PID, h.Run, h.Start.Local().Format(format.TimeFormat), h.User, h.Run)
}

var scopeRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]*$`)

// AcquireLocal takes the lock for scope without waiting.
func AcquireLocal(stateDir, scope string, holder LockHolder) (*LocalLock, error) {
	if !scopeRE.MatchString(scope) {
		return nil, fmt.Errorf("lock scope %q: expected letters, digits, '.', '-' and '_'", scope)
	}
	dir := filepath.Join(stateDir, "locks")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(filepath.Join(dir, scope+".lock"), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		var h LockHolder
		data, _ := os.ReadFile(f.Name())
		_ = json.Unmarshal(data, &h)
		_ = f.Close()
		return nil, &LockedError{Scope: scope, Holder: h}
	}
	b, _ := json.Marshal(holder)
	if err := f.Truncate(0); err == nil {
		_, _ = f.WriteAt(b, 0)
		_ = f.Sync()
	}
	return &LocalLock{f: f}, nil
}

// Release drops the lock.
func (l *LocalLock) Release() error {
	if l == nil {
		return nil
	}
	_ = l.f.Truncate(0)
	_ = syscall.Flock(int(l.f.Fd()), syscall.LOCK_UN)
	return l.f.Close()
}
