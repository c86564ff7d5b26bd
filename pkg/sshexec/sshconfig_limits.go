package sshexec

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"os"
	"os/user"
	"path/filepath"
	"strings"
)

// Bounds on ~/.ssh/config and the files it includes. The ssh_config
// library reads each file whole and follows Include globs wherever they
// point, so `Include /dev/zero` grew hoctl's memory until the kernel
// killed it. Real configs are a few KiB; the limits are far above that.
const (
	maxSSHConfigSize  = 1 << 20 // bytes per file
	maxSSHConfigFiles = 256     // files in all, the config included
	maxIncludeDepth   = 5       // the library's own limit, checked first
)

// readSSHConfig reads the config at path, and checks every file its
// Include lines reach (recursively, as the library will) before the
// library reads any of them: each must be a regular file within the size
// bound. home is where relative Include paths are resolved (~/.ssh).
func readSSHConfig(path, home string) ([]byte, error) {
	files := 0
	var walk func(path string, depth int) ([]byte, error)
	walk = func(path string, depth int) ([]byte, error) {
		if files++; files > maxSSHConfigFiles {
			return nil, fmt.Errorf("%s: more than %d files included", path, maxSSHConfigFiles)
		}
		data, err := readBounded(path)
		if err != nil {
			return nil, err
		}
		for _, pattern := range includes(data) {
			if depth >= maxIncludeDepth {
				return nil, fmt.Errorf("%s: Include nested more than %d levels deep", path, maxIncludeDepth)
			}
			matches, err := filepath.Glob(includePath(pattern, home))
			if err != nil {
				return nil, fmt.Errorf("%s: Include %s: %w", path, pattern, err)
			}
			for _, m := range matches {
				if _, err := walk(m, depth+1); err != nil {
					return nil, err
				}
			}
		}
		return data, nil
	}
	return walk(path, 0)
}

// readBounded reads a regular file of at most maxSSHConfigSize bytes.
func readBounded(path string) ([]byte, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%s: not a regular file (%s): refused as ssh config", path, fileKind(fi.Mode()))
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer func() { _ = f.Close() }()
	data, err := io.ReadAll(io.LimitReader(f, maxSSHConfigSize+1))
	if err != nil {
		return nil, err
	}
	if len(data) > maxSSHConfigSize {
		return nil, fmt.Errorf("%s: larger than %d KiB: refused as ssh config", path, maxSSHConfigSize>>10)
	}
	return data, nil
}

// includes lists the patterns of a file's Include lines (the keyword is
// case-insensitive and may be followed by '=', as ssh_config(5) allows).
func includes(data []byte) []string {
	var out []string
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 64<<10), maxSSHConfigSize)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if len(line) < len("include") || !strings.EqualFold(line[:len("include")], "include") {
			continue
		}
		rest := line[len("include"):]
		if rest == "" || !strings.ContainsAny(rest[:1], " \t=") {
			continue // a keyword that merely starts with "include"
		}
		rest = strings.TrimLeft(strings.TrimSpace(rest), "=")
		if i := strings.Index(rest, "#"); i >= 0 {
			rest = rest[:i]
		}
		out = append(out, strings.Fields(rest)...)
	}
	return out
}

// includePath resolves an Include pattern as ssh_config does for a user's
// config: absolute as is, ~/ from home's parent, else relative to ~/.ssh.
func includePath(pattern, sshDir string) string {
	switch {
	case filepath.IsAbs(pattern):
		return pattern
	case strings.HasPrefix(pattern, "~/"):
		return filepath.Join(filepath.Dir(sshDir), pattern[2:])
	default:
		return filepath.Join(sshDir, pattern)
	}
}

// includeHome is the home directory the ssh_config library resolves
// relative Include paths in: the account's, else $HOME.
func includeHome() string {
	if u, err := user.Current(); err == nil {
		return u.HomeDir
	}
	return os.Getenv("HOME")
}

func fileKind(m os.FileMode) string {
	switch {
	case m.IsDir():
		return "a directory"
	case m&os.ModeNamedPipe != 0:
		return "a FIFO"
	case m&os.ModeSocket != 0:
		return "a socket"
	case m&os.ModeDevice != 0:
		return "a device"
	}
	return "mode " + m.Type().String()
}
