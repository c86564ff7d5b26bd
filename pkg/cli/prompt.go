package cli

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"strings"
)

// openTTY opens the controlling terminal, which confirmations are read
// from and asked on: stdin and stderr may be pipes (`hoctl … 2>&1 | tee
// run.log`) while the operator still sits at the terminal. It fails
// without one (cron, systemd, ssh without -t), and then a run needs --yes.
func openTTY() (io.ReadWriteCloser, error) {
	return os.OpenFile("/dev/tty", os.O_RDWR, 0)
}

// ttyPrompter asks yes/no questions on a terminal; anything but y/yes is
// no. Ctrl-C at the question cancels ctx (hoctl catches SIGINT), and the
// question returns at once with ctx's error: exit 130, nothing done.
type ttyPrompter struct {
	tty  io.ReadWriter
	r    *bufio.Reader
	bold func(string) string
}

func newTTYPrompter(tty io.ReadWriter, bold func(string) string) *ttyPrompter {
	return &ttyPrompter{tty: tty, r: bufio.NewReader(tty), bold: bold}
}

func (p *ttyPrompter) Confirm(ctx context.Context, q string) (bool, error) {
	if err := ctx.Err(); err != nil {
		return false, err
	}
	fmt.Fprintf(p.tty, "%s [y/N] ", p.bold(q))
	type answer struct {
		line string
		err  error
	}
	ch := make(chan answer, 1)
	// The read cannot take a context; on Ctrl-C it is abandoned, and
	// hoctl exits.
	go func() {
		line, err := p.r.ReadString('\n')
		ch <- answer{line, err}
	}()
	select {
	case <-ctx.Done():
		fmt.Fprintln(p.tty)
		return false, ctx.Err()
	case a := <-ch:
		if a.err != nil && a.line == "" {
			fmt.Fprintln(p.tty)
			return false, nil
		}
		s := strings.ToLower(strings.TrimSpace(a.line))
		return s == "y" || s == "yes", nil
	}
}
