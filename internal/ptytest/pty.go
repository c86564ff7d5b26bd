// Package ptytest opens real pseudo-terminals for tests of output that
// depends on a terminal (colour, tables, redraws), so the code under test
// finds a terminal the way it does in use (isatty, TIOCGWINSZ), with
// nothing faked.
package ptytest

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"

	"golang.org/x/sys/unix"
)

// PTY is an open pseudo-terminal: Slave is the terminal side given to the
// code under test; everything written to it collects in Output.
type PTY struct {
	Master, Slave *os.File

	mu   sync.Mutex
	buf  bytes.Buffer
	done chan struct{}
}

// Open opens a pseudo-terminal of cols×rows and starts collecting what is
// written to its terminal side.
func Open(cols, rows int) (*PTY, error) {
	m, err := os.OpenFile("/dev/ptmx", os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		return nil, err
	}
	fd := int(m.Fd())
	if err := unix.IoctlSetPointerInt(fd, unix.TIOCSPTLCK, 0); err != nil {
		_ = m.Close()
		return nil, fmt.Errorf("unlockpt: %w", err)
	}
	n, err := unix.IoctlGetInt(fd, unix.TIOCGPTN)
	if err != nil {
		_ = m.Close()
		return nil, fmt.Errorf("ptsname: %w", err)
	}
	s, err := os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		_ = m.Close()
		return nil, err
	}
	if err := unix.IoctlSetWinsize(int(s.Fd()), unix.TIOCSWINSZ, &unix.Winsize{Col: uint16(cols), Row: uint16(rows)}); err != nil {
		_ = m.Close()
		_ = s.Close()
		return nil, err
	}
	p := &PTY{Master: m, Slave: s, done: make(chan struct{})}
	go func() {
		defer close(p.done)
		b := make([]byte, 4096)
		for {
			n, err := m.Read(b)
			p.mu.Lock()
			p.buf.Write(b[:n])
			p.mu.Unlock()
			if err != nil {
				return
			}
		}
	}()
	return p, nil
}

// Output closes the terminal side, waits until everything written to it
// has been read, and returns it with the terminal's \r\n turned back
// into \n.
func (p *PTY) Output() string {
	_ = p.Slave.Close()
	<-p.done // EIO once the last slave descriptor is closed
	p.mu.Lock()
	defer p.mu.Unlock()
	return strings.ReplaceAll(p.buf.String(), "\r\n", "\n")
}

// Screen is what was written to the terminal so far, as it came (\r\n
// kept), for tests that type into a program and wait for its answer.
func (p *PTY) Screen() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.buf.String()
}

// Close releases the terminal.
func (p *PTY) Close() error {
	_ = p.Slave.Close()
	err := p.Master.Close()
	return err
}

var _ io.Closer = (*PTY)(nil)
