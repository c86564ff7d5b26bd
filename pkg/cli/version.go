package cli

import (
	"runtime"
	"runtime/debug"
)

// BuildInfo is what the Makefile stamps into the binary with -ldflags.
// A binary built without them (go install, go build) falls back to what
// the Go toolchain recorded.
type BuildInfo struct {
	Version, Commit, Date string
	GoVersion             string
}

// resolved fills what the linker did not set from debug.ReadBuildInfo,
// and "unknown" where neither knows. version is the Factory's, for tests
// that set only that.
func (b BuildInfo) resolved(version string) BuildInfo {
	if b.Version == "" {
		b.Version = version
	}
	b.GoVersion = runtime.Version()
	if info, ok := debug.ReadBuildInfo(); ok {
		if (b.Version == "" || b.Version == "dev") && info.Main.Version != "" && info.Main.Version != "(devel)" {
			b.Version = info.Main.Version
		}
		var modified bool
		for _, s := range info.Settings {
			switch s.Key {
			case "vcs.revision":
				if b.Commit == "" {
					b.Commit = s.Value
				}
			case "vcs.time":
				if b.Date == "" {
					b.Date = s.Value
				}
			case "vcs.modified":
				modified = s.Value == "true"
			}
		}
		if modified && b.Commit != "" && len(b.Commit) == 40 {
			b.Commit += "-dirty"
		}
	}
	for _, p := range []*string{&b.Version, &b.Commit, &b.Date} {
		if *p == "" {
			*p = "unknown"
		}
	}
	return b
}
