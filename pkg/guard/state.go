package guard

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// DefaultStateDir is where a host's guards keep their state: a tmpfs,
// so a reboot (which stops the unit too) forgets it.
const DefaultStateDir = "/run/hoctl-guard"

// FileState keeps Stored in a file, its time as CLOCK_BOOTTIME: the
// time since boot, which no one sets and which runs while the host is
// frozen or suspended, so a restarted guard finds the lease's true age
// whatever the wall clock did meanwhile. Its times are Clock's.
type FileState struct {
	Path  string
	Clock *BootClock
}

// NewFileState is the state of the guard of key, in dir, its times
// those of clock.
func NewFileState(dir, key string, clock *BootClock) *FileState {
	return &FileState{Path: StatePath(dir, key), Clock: clock}
}

// StatePath is the file of the guard of key in dir.
func StatePath(dir, key string) string {
	name := strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '.' {
			return r
		}
		return '_'
	}, key)
	return filepath.Join(dir, name+".json")
}

// StateFile is the state file's JSON (hoctl status reads it too).
type StateFile struct {
	LeaseEndBoottimeNS  int64  `json:"lease_end_boottime_ns"`
	ConfirmedBoottimeNS int64  `json:"confirmed_boottime_ns"` // 0: never`
	ModifyIndex         uint64 `json:"modify_index"`
	LeaseStopped        bool   `json:"lease_stopped"`
	Index               uint64 `json:"consul_index"`
	StopMark            string `json:"stop_mark,omitempty"`
	AnsweredBoottimeNS  int64  `json:"answered_boottime_ns"` // 0: never
}

// Load implements State.
func (f *FileState) Load() (Stored, bool, error) {
	b, err := os.ReadFile(f.Path)
	if errors.Is(err, fs.ErrNotExist) {
		return Stored{}, false, nil
	}
	if err != nil {
		return Stored{}, false, err
	}
	var s StateFile
	if err := json.Unmarshal(b, &s); err != nil {
		return Stored{}, false, fmt.Errorf("%s: %w", f.Path, err)
	}
	c := f.Clock
	st := Stored{LeaseEnd: c.At(time.Duration(s.LeaseEndBoottimeNS)), ModifyIndex: s.ModifyIndex, LeaseStopped: s.LeaseStopped, Index: s.Index, StopMark: s.StopMark}
	if s.ConfirmedBoottimeNS != 0 {
		st.Confirmed = c.At(time.Duration(s.ConfirmedBoottimeNS))
	}
	if s.AnsweredBoottimeNS != 0 {
		st.Answered = c.At(time.Duration(s.AnsweredBoottimeNS))
	}
	return st, true, nil
}

// Save implements State: written whole and renamed, so a guard killed
// while saving leaves the previous state.
func (f *FileState) Save(s Stored) error {
	c := f.Clock
	f2 := StateFile{LeaseEndBoottimeNS: int64(c.Boottime(s.LeaseEnd)), ModifyIndex: s.ModifyIndex, LeaseStopped: s.LeaseStopped, Index: s.Index, StopMark: s.StopMark}
	if !s.Confirmed.IsZero() {
		f2.ConfirmedBoottimeNS = int64(max(c.Boottime(s.Confirmed), 1))
	}
	if !s.Answered.IsZero() {
		f2.AnsweredBoottimeNS = int64(max(c.Boottime(s.Answered), 1))
	}
	b, err := json.Marshal(f2)
	if err != nil {
		return err
	}
	// Readable by all (hoctl status reads it over SSH, as any user);
	// written by root alone (--check-lease trusts no other writer).
	if err := os.MkdirAll(filepath.Dir(f.Path), 0o755); err != nil {
		return err
	}
	tmp := f.Path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, f.Path)
}

// Lease is what a unit's start check reads of its guard's state
// (hoctl guard --check-lease), as CLOCK_BOOTTIME.
type Lease struct {
	End       time.Duration // the unit has to stop then
	Confirmed time.Duration // 0: never confirmed
}

// ReadLease reads the lease the guard stored at path. The file must be
// a regular file (opened without following a link) owned by root and
// writable by no one else: whoever can write it could let the unit
// start without a lease.
func ReadLease(path string) (Lease, error) {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC|unix.O_NONBLOCK, 0)
	if err != nil {
		return Lease{}, &fs.PathError{Op: "open", Path: path, Err: err}
	}
	f := os.NewFile(uintptr(fd), path)
	defer func() { _ = f.Close() }() // read only
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return Lease{}, &fs.PathError{Op: "fstat", Path: path, Err: err}
	}
	switch {
	case st.Mode&unix.S_IFMT != unix.S_IFREG:
		return Lease{}, fmt.Errorf("%s: not a regular file", path)
	case st.Uid != 0:
		return Lease{}, fmt.Errorf("%s: owned by uid %d, not root", path, st.Uid)
	case st.Mode&0o022 != 0:
		return Lease{}, fmt.Errorf("%s: writable by group or others (mode %04o)", path, st.Mode&0o7777)
	}
	b, err := io.ReadAll(io.LimitReader(f, 1<<16))
	if err != nil {
		return Lease{}, err
	}
	var s StateFile
	if err := json.Unmarshal(b, &s); err != nil {
		return Lease{}, fmt.Errorf("%s: %w", path, err)
	}
	return Lease{End: time.Duration(s.LeaseEndBoottimeNS), Confirmed: time.Duration(s.ConfirmedBoottimeNS)}, nil
}

// Holds says why the lease does not hold at boottime now, or "" when it
// does: confirmed by a guard, and not run out.
func (l Lease) Holds(now time.Duration) string {
	switch {
	case l.Confirmed == 0:
		return "the guard has no confirmation from Consul yet"
	case now >= l.End:
		return fmt.Sprintf("the guard's lease ran out %s ago (last confirmed %s ago)", (now - l.End).Round(time.Millisecond), (now - l.Confirmed).Round(time.Millisecond))
	}
	return ""
}

// Boottime is the host's CLOCK_BOOTTIME now.
func Boottime() (time.Duration, error) { return boottime() }
