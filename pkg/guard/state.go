package guard

import (
	"encoding/json"
	"errors"
	"fmt"
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
// whatever the wall clock did meanwhile.
type FileState struct{ Path string }

// NewFileState is the state of the guard of key, in dir.
func NewFileState(dir, key string) *FileState {
	name := strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '.' {
			return r
		}
		return '_'
	}, key)
	return &FileState{Path: filepath.Join(dir, name+".json")}
}

type storedFile struct {
	LeaseEndBoottimeNS  int64  `json:"lease_end_boottime_ns"`
	ConfirmedBoottimeNS int64  `json:"confirmed_boottime_ns"` // 0: never`
	ModifyIndex         uint64 `json:"modify_index"`
	LeaseStopped        bool   `json:"lease_stopped"`
	Index               uint64 `json:"consul_index"`
}

func boottime() (time.Duration, error) {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_BOOTTIME, &ts); err != nil {
		return 0, err
	}
	return time.Duration(ts.Nano()), nil
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
	var s storedFile
	if err := json.Unmarshal(b, &s); err != nil {
		return Stored{}, false, fmt.Errorf("%s: %w", f.Path, err)
	}
	now, err := boottime()
	if err != nil {
		return Stored{}, false, err
	}
	wall := time.Now()
	st := Stored{LeaseEnd: wall.Add(time.Duration(s.LeaseEndBoottimeNS) - now), ModifyIndex: s.ModifyIndex, LeaseStopped: s.LeaseStopped, Index: s.Index}
	if s.ConfirmedBoottimeNS != 0 {
		st.Confirmed = wall.Add(time.Duration(s.ConfirmedBoottimeNS) - now)
	}
	return st, true, nil
}

// Save implements State: written whole and renamed, so a guard killed
// while saving leaves the previous state.
func (f *FileState) Save(s Stored) error {
	now, err := boottime()
	if err != nil {
		return err
	}
	f2 := storedFile{LeaseEndBoottimeNS: int64(now + time.Until(s.LeaseEnd)), ModifyIndex: s.ModifyIndex, LeaseStopped: s.LeaseStopped, Index: s.Index}
	if !s.Confirmed.IsZero() {
		f2.ConfirmedBoottimeNS = int64(max(now-time.Since(s.Confirmed), 1))
	}
	b, err := json.Marshal(f2)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(f.Path), 0o700); err != nil {
		return err
	}
	tmp := f.Path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, f.Path)
}
