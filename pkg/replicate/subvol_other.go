//go:build !linux

package replicate

import (
	"context"
	"errors"
	"io"
)

// The target filter runs on the Linux host that receives; elsewhere its
// snapshot operations only refuse.
type targetDir struct{}

var errNotLinux = errors.New("hoctl target-filter runs on Linux only")

func openTargetDir(string) (*targetDir, error)               { return nil, errNotLinux }
func (d *targetDir) close()                                  {}
func (d *targetDir) show(string, io.Writer) error            { return errNotLinux }
func (d *targetDir) list(string, io.Writer, io.Writer) error { return errNotLinux }
func (d *targetDir) destroy(string) error                    { return errNotLinux }

func (d *targetDir) lock(context.Context, string, string, string, io.Reader, io.Writer) error {
	return errNotLinux
}

func (d *targetDir) listEntries(string, io.Writer) error { return errNotLinux }
func (d *targetDir) showEntry(string, io.Writer) error   { return errNotLinux }
func (d *targetDir) destroyID(string, uint64) error      { return errNotLinux }
func (d *targetDir) writeDirection(string, string) error { return errNotLinux }

func (d *targetDir) snapshotInto(string, string, io.Writer) error { return errNotLinux }
func (d *targetDir) send(context.Context, string, string, string, io.Writer, io.Writer) error {
	return errNotLinux
}
func (d *targetDir) promote(string, string, string, string, string, io.Writer) error {
	return errNotLinux
}
func (d *targetDir) streamUUIDs() (map[[16]byte]bool, error)   { return nil, errNotLinux }
func (d *targetDir) dedicated() error                          { return errNotLinux }
func (d *targetDir) taken([16]byte) (bool, error)              { return false, errNotLinux }
func (d *targetDir) resolvesInDir([16]byte) (bool, error)      { return false, errNotLinux }
func (d *targetDir) missingMountOptions() []string             { return safeMountOptions }
func (d *targetDir) kindIn([16]byte, string) (pathKind, error) { return 0, errNotLinux }
func (d *targetDir) exclusive() error                          { return errNotLinux }
func (d *targetDir) inspectTarget(string, io.Writer) error     { return errNotLinux }
func (d *targetDir) inspectSource(context.Context, string, string, io.Writer) error {
	return errNotLinux
}
